package standalone

import (
	"testing"

	"go.uber.org/goleak"
)

// Standalone serves the embedded registry and runs the broker and every
// stage in goroutines; shutdown must end them all.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
