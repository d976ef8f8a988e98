package config

import (
	"fmt"
	"time"
)

// CheckDuration reports a duration setting no default can repair, naming
// key: a negative one, or one below a millisecond — a bare number in a
// configuration decodes as nanoseconds, so `30` would mean 30 ns. Zero
// (unset: the default applies) passes.
func CheckDuration(key string, d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s: must not be negative", key)
	case d > 0 && d < time.Millisecond:
		return fmt.Errorf("%s: %v is too short; a duration needs a unit (for example 30s)", key, d)
	}
	return nil
}
