package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/kafka"
)

func TestValidate(t *testing.T) {
	good := Destination{Name: "lis", Protocol: "mllp", Address: "127.0.0.1:2575"}
	for _, tc := range []struct {
		name string
		edit func(*Destination)
		want string // "" for valid
	}{
		{"defaults", func(*Destination) {}, ""},
		{"everything set", func(d *Destination) {
			d.Connections, d.AckTimeout = 4, 5*time.Second
			d.Retry = Retry{MaxAttempts: 3, MaxRetryTime: 10 * time.Minute, InitialBackoff: time.Second, MaxBackoff: 30 * time.Second}
			d.Ack = AckCheck{LenientVersion: true, LenientType: true}
		}, ""},
		{"negative max_attempts", func(d *Destination) { d.Retry.MaxAttempts = -1 }, "destinations[0].retry.max_attempts: must be at least 1"},
		{"negative max_retry_time", func(d *Destination) { d.Retry.MaxRetryTime = -time.Second }, "destinations[0].retry.max_retry_time: must not be negative"},
		{"negative ack_timeout", func(d *Destination) { d.AckTimeout = -time.Second }, "destinations[0].ack_timeout: must not be negative"},
		{"backoffs reversed", func(d *Destination) { d.Retry.InitialBackoff, d.Retry.MaxBackoff = time.Minute, time.Second },
			"destinations[0].retry.initial_backoff: 1m0s is more than retry.max_backoff 1s"},
		{"too many connections", func(d *Destination) { d.Connections = MaxConnections + 1 }, "destinations[0].connections: 65 is not between 1 and 64"},
		{"negative connections", func(d *Destination) { d.Connections = -1 }, "destinations[0].connections"},
		{"protocol", func(d *Destination) { d.Protocol = "http" }, `destinations[0].protocol: "http" is not supported`},
		{"address", func(d *Destination) { d.Address = "nowhere" }, "destinations[0].address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			tc.edit(&d)
			err := Config{Destinations: []Destination{d}}.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	d := Destination{}.WithDefaults()
	want := Destination{Protocol: "mllp", AckTimeout: 30 * time.Second, Connections: 1,
		Retry: Retry{MaxAttempts: 10, MaxRetryTime: time.Hour, InitialBackoff: 500 * time.Millisecond, MaxBackoff: time.Minute}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("defaults %+v, want %+v", d, want)
	}
	// A long initial backoff alone raises the default cap with it.
	if d := (Destination{Retry: Retry{InitialBackoff: 2 * time.Minute}}).WithDefaults(); d.Retry.MaxBackoff != 2*time.Minute {
		t.Errorf("max_backoff %v, want 2m", d.Retry.MaxBackoff)
	}
}

func TestBackoff(t *testing.T) {
	r := Retry{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		if got := r.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

// fakeAdapter is a protocol whose address must be "fake:" something.
type fakeAdapter struct{}

func (fakeAdapter) Validate(key string, d Destination) []error {
	if !strings.HasPrefix(d.Address, "fake:") {
		return []error{fmt.Errorf("%s.address: %q is not fake:...", key, d.Address)}
	}
	return nil
}

func (fakeAdapter) NewSender(Destination, *slog.Logger) (Sender, error) {
	return nil, errors.New("not for sending")
}

// Validate hands each destination's protocol settings to the adapter of
// its protocol, from the table the Config carries.
func TestValidateByAdapter(t *testing.T) {
	fake := map[string]Adapter{"fake": fakeAdapter{}}
	for _, tc := range []struct {
		name     string
		adapters map[string]Adapter
		d        Destination
		want     string // "" for valid
	}{
		{"no protocol is mllp", nil, Destination{Name: "a", Address: "127.0.0.1:2575"}, ""},
		{"no protocol, bad mllp address", nil, Destination{Name: "a", Address: "nowhere"}, "destinations[0].address: address nowhere: missing port"},
		{"the adapter validates", fake, Destination{Name: "a", Protocol: "fake", Address: "fake:x"}, ""},
		{"the adapter's error", fake, Destination{Name: "a", Protocol: "fake", Address: "127.0.0.1:2575"}, `destinations[0].address: "127.0.0.1:2575" is not fake:...`},
		{"only the table's protocols", fake, Destination{Name: "a", Address: "127.0.0.1:2575"}, `destinations[0].protocol: "mllp" is not supported (fake)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Config{Destinations: []Destination{tc.d}, Adapters: tc.adapters}.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Run refuses a destination whose protocol has no adapter before it
// touches Kafka.
func TestRunUnknownProtocol(t *testing.T) {
	s := New(Config{Destinations: []Destination{{Name: "a", Protocol: "http"}}}, kafka.Config{}, nil, slog.New(slog.DiscardHandler))
	if err := s.Run(context.Background()); !errors.Is(err, ErrUnknownProtocol) {
		t.Errorf("Run = %v, want ErrUnknownProtocol", err)
	}
}
