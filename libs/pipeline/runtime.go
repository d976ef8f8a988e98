package pipeline

import (
	"errors"
	"time"

	"github.com/hl7bus/hl7bus/libs/config"
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
		if err := config.CheckDuration(prefix+"."+d.key, d.v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
