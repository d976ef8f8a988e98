package load

import (
	"testing"

	"go.uber.org/goleak"
)

// The load generator runs senders, a receiver and a reporter in
// goroutines; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
