package egress

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Defaults of a destination, applied by WithDefaults.
const (
	// DefaultProtocol is the protocol of a destination that names none.
	DefaultProtocol       = "mllp"
	DefaultAckTimeout     = 30 * time.Second
	DefaultMaxAttempts    = 10
	DefaultMaxRetryTime   = time.Hour
	DefaultInitialBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = time.Minute
	DefaultConnections    = 1
	// MaxConnections bounds connections: MLLP receivers are rarely built
	// for more than a handful of parallel senders.
	MaxConnections = 64
)

// Retry is a destination's retry policy for a message that failed: answered
// AE (or CE), answered with an ACK that does not acknowledge it (a wrong
// MSA-2), or not answered after it was sent. A destination that cannot be
// reached at all is not a failure of the message: it is held and probed,
// and counts no attempt (see the package doc).
type Retry struct {
	// MaxAttempts bounds the failed attempts of one message; the next
	// failure after it dead-letters the message to dlq.egress. Default 10.
	// There is no "forever": an outage counts no attempt, so a finite
	// limit costs nothing when a destination is down, and a message no
	// receiver will ever take must not hold its patient back for good.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxRetryTime bounds the time from a message's first failed attempt
	// to its last retry, not counting time the destination was
	// unreachable. Whichever of the two limits comes first dead-letters.
	// Default 1h.
	MaxRetryTime time.Duration `yaml:"max_retry_time"`
	// InitialBackoff is the wait after a message's first failed attempt;
	// it doubles up to MaxBackoff. Defaults 500ms and 1m. Only that
	// message's patient (its ordering key) waits; others keep flowing.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// AckCheck says how strictly a receiver's ACK is checked. MSA-2 must always
// equal the MSH-10 sent: an ACK naming another message is never taken as
// delivery, whatever is set here.
type AckCheck struct {
	// LenientVersion accepts an ACK whose MSH-12 differs from the
	// message's. Default false: a different version is read as an ACK that
	// is not ours (a desynchronised stream or the wrong peer).
	LenientVersion bool `yaml:"lenient_version"`
	// LenientType accepts an ACK whose MSH-9 is not ACK (some receivers
	// echo the message's type). Default false.
	LenientType bool `yaml:"lenient_type"`
}

// Destination is one outbound endpoint.
type Destination struct {
	Name string `yaml:"name"`
	// Protocol picks the adapter that delivers (see sender.go): mllp, the
	// default, is the only one so far.
	Protocol string `yaml:"protocol"`
	// Address is where the receiver listens, in the protocol's form
	// (host:port for mllp); the protocol's adapter validates it.
	Address string `yaml:"address"`
	// AckTimeout bounds the wait for the receiver's answer (the ACK, for
	// mllp) after the message was sent. Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// Connections is how many messages are in flight to the destination at
	// once, each on its own connection. Default 1. Messages of one
	// ordering key (patient) are never in flight together, whatever the
	// value.
	Connections int   `yaml:"connections"`
	Retry       Retry `yaml:"retry"`
	// Ack says how strictly an HL7 ACK is read (mllp).
	Ack AckCheck `yaml:"ack"`
	// Rules are the destination's outbound rules (destinations[].rules),
	// run by the route stage on the copy it writes for this destination;
	// egress does not use them. The root configuration compiles them
	// (mapping.Compile, scope Outbound).
	Rules []mapping.Rule `yaml:"rules"`
}

// Config is the egress stage's configuration.
type Config struct {
	Destinations []Destination
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Adapters are the protocols destinations may name, by
	// destinations[].protocol. Nil means DefaultAdapters(); tests pass
	// their own.
	Adapters map[string]Adapter
}

// adapters is the protocol table in force.
func (c Config) adapters() map[string]Adapter {
	if c.Adapters != nil {
		return c.Adapters
	}
	return DefaultAdapters()
}

// Validate reports problems, each naming its key. The settings every
// destination has are checked here; the protocol's own (address, ack) by
// its adapter.
func (c Config) Validate() error {
	var errs []error
	adapters := c.adapters()
	names := map[string]bool{}
	for i, d := range c.Destinations {
		key := fmt.Sprintf("destinations[%d]", i)
		switch {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case names[d.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, d.Name))
		case !destName.MatchString(d.Name):
			// The name becomes part of a topic name (out.<name>).
			errs = append(errs, fmt.Errorf("%s.name: %q may only hold letters, digits, '_' and '-'", key, d.Name))
		}
		names[d.Name] = true
		d = d.WithDefaults()
		if a, ok := adapters[d.Protocol]; ok {
			errs = append(errs, a.Validate(key, d)...)
		} else {
			errs = append(errs, fmt.Errorf("%s.protocol: %q is not supported (%s)", key, d.Protocol, strings.Join(slices.Sorted(maps.Keys(adapters)), ", ")))
		}
		if d.Connections < 0 || d.Connections > MaxConnections {
			errs = append(errs, fmt.Errorf("%s.connections: %d is not between 1 and %d", key, d.Connections, MaxConnections))
		}
		if d.Retry.MaxAttempts < 0 {
			errs = append(errs, fmt.Errorf("%s.retry.max_attempts: must be at least 1 (0 or unset means %d; there is no unlimited)", key, DefaultMaxAttempts))
		}
		for _, v := range []struct {
			k string
			d time.Duration
		}{{"ack_timeout", d.AckTimeout}, {"retry.max_retry_time", d.Retry.MaxRetryTime},
			{"retry.initial_backoff", d.Retry.InitialBackoff}, {"retry.max_backoff", d.Retry.MaxBackoff}} {
			if v.d < 0 {
				errs = append(errs, fmt.Errorf("%s.%s: must not be negative", key, v.k))
			}
		}
		if r := d.Retry; r.InitialBackoff > r.MaxBackoff {
			errs = append(errs, fmt.Errorf("%s.retry.initial_backoff: %v is more than retry.max_backoff %v", key, r.InitialBackoff, r.MaxBackoff))
		}
	}
	return errors.Join(errs...)
}

var destName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// WithDefaults returns d with what the configuration left unset filled
// in: the values in force (config print shows them).
func (d Destination) WithDefaults() Destination {
	if d.Protocol == "" {
		d.Protocol = DefaultProtocol
	}
	if d.AckTimeout == 0 {
		d.AckTimeout = DefaultAckTimeout
	}
	if d.Connections == 0 {
		d.Connections = DefaultConnections
	}
	if d.Retry.MaxAttempts == 0 {
		d.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if d.Retry.MaxRetryTime == 0 {
		d.Retry.MaxRetryTime = DefaultMaxRetryTime
	}
	if d.Retry.InitialBackoff == 0 {
		d.Retry.InitialBackoff = DefaultInitialBackoff
	}
	if d.Retry.MaxBackoff == 0 {
		d.Retry.MaxBackoff = max(DefaultMaxBackoff, d.Retry.InitialBackoff)
	}
	return d
}

// policy is the retry policy of the runtime (pipeline.RetryPolicy) that
// paces r's retries: retry.initial_backoff doubling to retry.max_backoff,
// the same Backoff every stage uses. It has no jitter: a destination's
// messages are paced by one worker, not by many instances in step, and
// the waits stay what the operator configured. Attempts and the retry
// time stay egress's own (MaxAttempts, MaxRetryTime): the design's egress
// retry contract counts only failures of the message, and the policy's
// in-place Attempts mean nothing here.
func (r Retry) policy() pipeline.RetryPolicy {
	return pipeline.RetryPolicy{Initial: r.InitialBackoff, Max: r.MaxBackoff, Multiplier: 2, Jitter: -1}
}

// backoff is the wait after the n-th failed attempt (n from 1).
func (r Retry) backoff(n int) time.Duration { return pipeline.Backoff(r.policy(), n) }
