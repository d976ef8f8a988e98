package telemetry

import (
	"testing"

	"go.uber.org/goleak"
)

// Serve starts the HTTP server and its shutdown watcher; both must end with
// the context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
