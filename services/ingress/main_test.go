package ingress

import (
	"testing"

	"go.uber.org/goleak"
)

// The service runs a goroutine per listener plus the MLLP server's per
// connection; Close must end them all.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
