package kafkatest

import (
	"testing"

	"go.uber.org/goleak"
)

// Read starts a client per call; it and the broker must be gone after each
// test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
