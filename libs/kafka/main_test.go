package kafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// client, session and hook a test builds must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
