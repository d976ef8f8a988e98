package standalone

import (
	"testing"

	"go.uber.org/goleak"
)

// The embedded registry serves in a goroutine; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
