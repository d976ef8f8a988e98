package pipeline

import (
	"errors"
	"fmt"
	"time"
)

// Runtime is what an operator tunes of the stage runtime: one value, the
// root configuration's `stages` section, given to every transactional
// stage, so that a registry outage is ridden out the same way everywhere.
type Runtime struct {
	// Retry is the retry policy of every stage (RetryPolicy's defaults).
	Retry RetryPolicy `yaml:"retry"`
	// RecordTimeout bounds each try of one record. Default
	// DefaultRecordTimeout.
	RecordTimeout time.Duration `yaml:"record_timeout"`
	// StallAfter is how long a stage may hold fetched records without
	// committing before it reports itself stalled and not ready. Default
	// DefaultStallAfter.
	StallAfter time.Duration `yaml:"stall_after"`
}

// WithDefaults fills the zero fields of r with the defaults.
func (r Runtime) WithDefaults() Runtime {
	r.Retry = r.Retry.WithDefaults()
	if r.RecordTimeout <= 0 {
		r.RecordTimeout = DefaultRecordTimeout
	}
	if r.StallAfter <= 0 {
		r.StallAfter = DefaultStallAfter
	}
	return r
}

// Validate reports settings no default can repair, each naming its key
// under prefix (for example "stages").
func (r Runtime) Validate(prefix string) error {
	errs := []error{r.Retry.Validate(prefix + ".retry")}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"record_timeout", r.RecordTimeout}, {"stall_after", r.StallAfter}} {
		switch {
		case d.v < 0:
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative", prefix, d.key))
		case d.v > 0 && d.v < time.Millisecond:
			// A bare number decodes as nanoseconds.
			errs = append(errs, fmt.Errorf("%s.%s: %v is too short; a duration needs a unit (for example 10s)", prefix, d.key, d.v))
		}
	}
	return errors.Join(errs...)
}
