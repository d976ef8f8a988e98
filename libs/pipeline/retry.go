package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RetryPolicy is the one retry policy of every stage: how a transient
// failure is retried in place, and how long a driver backs off before it
// tries again after the in-place retries are spent. A transient failure is
// never dead-lettered, whatever the count: the partition is held (the
// stage shows stalled and not ready after StallAfter) until the cause
// passes.
type RetryPolicy struct {
	// Initial is the first wait. Default 200 ms.
	Initial time.Duration `yaml:"initial_backoff"`
	// Max bounds every wait. Default 5 s: short enough that a stage
	// resumes within seconds of an outage's end.
	Max time.Duration `yaml:"max_backoff"`
	// Multiplier grows the wait after each failure. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter spreads each wait by up to ±Jitter of itself, so the
	// partitions of many instances do not retry in step. Default 0.2;
	// negative means none.
	Jitter float64 `yaml:"jitter"`
	// Attempts is how many times one record is tried in place before the
	// driver gives up on the batch (aborts its transaction) and backs off.
	// Default 3: long enough to ride out a blip without redoing the batch,
	// short enough that the transaction stays far below its timeout.
	Attempts int `yaml:"attempts"`
}

// Default values of RetryPolicy, in one place.
const (
	DefaultRetryInitial    = 200 * time.Millisecond
	DefaultRetryMax        = 5 * time.Second
	DefaultRetryMultiplier = 2
	DefaultRetryJitter     = 0.2
	DefaultRetryAttempts   = 3
)

// WithDefaults fills the zero fields of p with the defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = DefaultRetryInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryMax
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	if p.Multiplier < 1 {
		p.Multiplier = DefaultRetryMultiplier
	}
	if p.Jitter == 0 {
		p.Jitter = DefaultRetryJitter
	}
	// A negative jitter stays negative (none), so that WithDefaults can
	// be applied again without bringing the default back.
	p.Jitter = min(p.Jitter, 1)
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetryAttempts
	}
	return p
}

// Validate reports a policy no defaults can make sense of, naming the key
// under prefix (for example "retry").
func (p RetryPolicy) Validate(prefix string) error {
	var errs []error
	if p.Initial < 0 {
		errs = append(errs, fmt.Errorf("%s.initial_backoff: must not be negative", prefix))
	}
	if p.Max < 0 {
		errs = append(errs, fmt.Errorf("%s.max_backoff: must not be negative", prefix))
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("%s.multiplier: %v is below 1 (the wait would shrink)", prefix, p.Multiplier))
	}
	if p.Jitter > 1 {
		errs = append(errs, fmt.Errorf("%s.jitter: %v is above 1", prefix, p.Jitter))
	}
	if p.Attempts < 0 {
		errs = append(errs, fmt.Errorf("%s.attempts: must not be negative", prefix))
	}
	return errors.Join(errs...)
}

// Backoff returns the wait after the n-th consecutive failure (n ≥ 1):
// Initial × Multiplier^(n-1), capped at Max, spread by Jitter. p is used
// with its defaults.
func Backoff(p RetryPolicy, n int) time.Duration {
	p = p.WithDefaults()
	d := float64(p.Initial)
	for i := 1; i < n && d < float64(p.Max); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.Max))
	if p.Jitter > 0 {
		d *= 1 + p.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(d)
}

// ShouldRetry is the classifier: a failure is retried unless it is
// Permanent (see IsPermanent).
func ShouldRetry(err error) bool { return err != nil && !IsPermanent(err) }

// attemptsError carries how often a record was tried and when it first
// failed, for its dead letter.
type attemptsError struct {
	err      error
	attempts int
	first    time.Time
}

func (e attemptsError) Error() string { return e.err.Error() }
func (e attemptsError) Unwrap() error { return e.err }

// Attempts returns how many times the record that failed with err was
// tried (1 when Retry did not see it) and when it first failed (zero when
// unknown).
func Attempts(err error) (n int, first time.Time) {
	var a attemptsError
	if errors.As(err, &a) {
		return a.attempts, a.first
	}
	return 1, time.Time{}
}

// Retry retries a record in place while it fails transiently, up to
// p.Attempts tries with Backoff between them, and returns the last error
// (with Attempts) once they are spent or the failure is permanent. The
// driver then dead-letters a permanent failure, or aborts the batch and
// backs off for a transient one: Retry never turns a transient failure
// into a permanent one.
func Retry(p RetryPolicy) Middleware {
	p = p.WithDefaults()
	return func(next RecordHandler) RecordHandler {
		return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			var first time.Time
			for n := 1; ; n++ {
				outs, id, err := next(ctx, rec)
				if err == nil {
					return outs, id, nil
				}
				if first.IsZero() {
					first = time.Now()
				}
				if !ShouldRetry(err) || n >= p.Attempts {
					return nil, id, attemptsError{err: err, attempts: n, first: first}
				}
				select {
				case <-ctx.Done():
					return nil, id, attemptsError{err: err, attempts: n, first: first}
				case <-time.After(Backoff(p, n)):
				}
			}
		}
	}
}
