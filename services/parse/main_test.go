package parse

import (
	"testing"

	"go.uber.org/goleak"
)

// The stage's tests run the transactional driver and broker clients in
// goroutines; none may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
