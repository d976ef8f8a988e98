package pipeline_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// driver's watcher, its abort goroutines and every client must be gone
// once Run returns and the session closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
