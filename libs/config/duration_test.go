package config

import (
	"testing"
	"time"
)

func TestCheckDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string // "" for no error
	}{
		{0, ""},
		{time.Millisecond, ""},
		{30 * time.Second, ""},
		{-time.Second, "k.d: must not be negative"},
		{30, "k.d: 30ns is too short; a duration needs a unit (for example 30s)"},
	}
	for _, tt := range tests {
		err := CheckDuration("k.d", tt.d)
		if got := ""; err != nil {
			got = err.Error()
			if got != tt.want {
				t.Errorf("%v: %q, want %q", tt.d, got, tt.want)
			}
		} else if tt.want != "" {
			t.Errorf("%v: no error, want %q", tt.d, tt.want)
		}
	}
}
