package route

import (
	"testing"

	"go.uber.org/goleak"
)

// The stage runs on the transactional loop (its watcher and the Kafka
// clients' goroutines); all must end with Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
