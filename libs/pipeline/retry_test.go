package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBackoff(t *testing.T) {
	noJitter := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: -1}
	tests := []struct {
		name     string
		p        RetryPolicy
		n        int
		min, max time.Duration
	}{
		{"first wait is Initial", noJitter, 1, 100 * time.Millisecond, 100 * time.Millisecond},
		{"doubles", noJitter, 3, 400 * time.Millisecond, 400 * time.Millisecond},
		{"capped at Max", noJitter, 10, time.Second, time.Second},
		{"far past the cap", noJitter, 1000, time.Second, time.Second},
		{"defaults: 200 ms ±20%", RetryPolicy{}, 1, 160 * time.Millisecond, 240 * time.Millisecond},
		{"defaults cap at 5 s ±20%", RetryPolicy{}, 50, 4 * time.Second, 6 * time.Second},
		{"multiplier 3", RetryPolicy{Initial: 10 * time.Millisecond, Max: time.Second, Multiplier: 3, Jitter: -1}, 3, 90 * time.Millisecond, 90 * time.Millisecond},
	}
	for _, tt := range tests {
		for range 20 { // jitter is random: every draw must be in range
			if d := Backoff(tt.p, tt.n); d < tt.min || d > tt.max {
				t.Errorf("%s: Backoff(%d) = %v, want in [%v, %v]", tt.name, tt.n, d, tt.min, tt.max)
				break
			}
		}
	}
}

func TestRetryPolicyDefaultsAndValidate(t *testing.T) {
	p := RetryPolicy{}.WithDefaults()
	want := RetryPolicy{Initial: DefaultRetryInitial, Max: DefaultRetryMax, Multiplier: DefaultRetryMultiplier,
		Jitter: DefaultRetryJitter, Attempts: DefaultRetryAttempts}
	if p != want {
		t.Errorf("defaults %+v, want %+v", p, want)
	}
	if p := (RetryPolicy{Jitter: -1}).WithDefaults().WithDefaults(); p.Jitter >= 0 {
		t.Errorf("no jitter became %v after applying the defaults twice", p.Jitter)
	}
	tests := []struct {
		p    RetryPolicy
		want string
	}{
		{RetryPolicy{}, ""},
		{RetryPolicy{Initial: -1}, "retry.initial"},
		{RetryPolicy{Max: -1}, "retry.max"},
		{RetryPolicy{Multiplier: 0.5}, "retry.multiplier"},
		{RetryPolicy{Jitter: 2}, "retry.jitter"},
		{RetryPolicy{Attempts: -1}, "retry.attempts"},
	}
	for _, tt := range tests {
		err := tt.p.Validate("retry")
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want an error naming %q", tt.p, err, tt.want)
		}
	}
}

// failing returns a handler failing with errs in turn, then succeeding,
// and the count of its calls.
func failing(errs ...error) (RecordHandler, *int) {
	calls := 0
	return func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
		calls++
		if calls <= len(errs) {
			return nil, Ident{MessageID: "M"}, errs[calls-1]
		}
		return []*kgo.Record{{Topic: "out"}}, Ident{MessageID: "M"}, nil
	}, &calls
}

func TestRetry(t *testing.T) {
	transient := errors.New("registry unavailable")
	permanent := Permanent(errors.New("not a message"))
	p := RetryPolicy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}
	tests := []struct {
		name      string
		errs      []error
		calls     int
		ok        bool
		permanent bool
		attempts  int
	}{
		{"success at once", nil, 1, true, false, 0},
		{"a blip is ridden out in place", []error{transient, transient}, 3, true, false, 0},
		{"transient past the attempts: returned transient, never permanent", []error{transient, transient, transient, transient}, 3, false, false, 3},
		{"permanent is not retried", []error{permanent}, 1, false, true, 1},
		{"permanent after a transient counts both tries", []error{transient, permanent}, 2, false, true, 2},
	}
	for _, tt := range tests {
		h, calls := failing(tt.errs...)
		outs, id, err := Retry(p)(h)(context.Background(), &kgo.Record{})
		if *calls != tt.calls || (err == nil) != tt.ok || id.MessageID != "M" {
			t.Errorf("%s: %d calls, err %v, id %+v", tt.name, *calls, err, id)
			continue
		}
		if tt.ok {
			if len(outs) != 1 {
				t.Errorf("%s: outputs %v", tt.name, outs)
			}
			continue
		}
		n, first := Attempts(err)
		if IsPermanent(err) != tt.permanent || n != tt.attempts || first.IsZero() || !errors.Is(err, tt.errs[0]) && !errors.Is(err, tt.errs[len(tt.errs)-1]) {
			t.Errorf("%s: permanent %v, attempts %d, first %v, err %v", tt.name, IsPermanent(err), n, first, err)
		}
	}
}
