package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// The replay runner's goroutines (the follower, the lease's leader, the
// Kafka clients') must all end with Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
