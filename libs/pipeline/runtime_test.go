package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestRuntimeDefaults(t *testing.T) {
	got := Runtime{}.WithDefaults()
	want := Runtime{Retry: RetryPolicy{}.WithDefaults(), RecordTimeout: DefaultRecordTimeout, StallAfter: DefaultStallAfter}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	set := Runtime{Retry: RetryPolicy{Max: 9 * time.Second}, RecordTimeout: time.Second, StallAfter: time.Minute}.WithDefaults()
	if set.Retry.Max != 9*time.Second || set.RecordTimeout != time.Second || set.StallAfter != time.Minute {
		t.Errorf("set values replaced: %+v", set)
	}
	if again := set.WithDefaults(); again != set {
		t.Errorf("WithDefaults is not idempotent: %+v then %+v", set, again)
	}
}

func TestRuntimeValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Runtime
		want []string // substrings; none for a valid runtime
	}{
		{"zero", Runtime{}, nil},
		{"set", Runtime{RecordTimeout: 5 * time.Second, StallAfter: time.Minute}, nil},
		{"negative", Runtime{RecordTimeout: -time.Second, StallAfter: -time.Second},
			[]string{"stages.record_timeout: must not be negative", "stages.stall_after: must not be negative"}},
		{"no unit", Runtime{RecordTimeout: 10}, []string{"stages.record_timeout: 10ns is too short"}},
		{"retry keys", Runtime{Retry: RetryPolicy{Multiplier: 0.5}}, []string{"stages.retry.multiplier"}},
	}
	for _, tt := range tests {
		err := tt.r.Validate("stages")
		if (err == nil) != (len(tt.want) == 0) {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v lacks %q", tt.name, err, w)
			}
		}
	}
}
