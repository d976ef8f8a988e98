package cli

import (
	"testing"

	"go.uber.org/goleak"
)

// The embedded registry serves in a goroutine and the commands start
// signal watchers; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
