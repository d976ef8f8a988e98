// Package route is the route stage: it reads transformed records and, by
// the configured rules, writes one out record per destination a message
// should reach. A message no rule matches is dead-lettered to dlq.route.
package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Rule sends the messages it matches to its destinations. Empty match lists
// match everything.
type Rule struct {
	Name string `yaml:"name"`
	// MessageTypes lists CODE or CODE^EVENT (ADT, ORU^R01).
	MessageTypes []string `yaml:"message_types"`
	// SendingFacilities lists MSH-4.1 values.
	SendingFacilities []string `yaml:"sending_facilities"`
	Destinations      []string `yaml:"destinations"`
	// When is a CEL bool predicate over the transformed message (see
	// libs/mapping Vars); empty matches everything the lists above let
	// through.
	When string `yaml:"when"`
	// Default makes this the catch-all: it matches only a message no
	// other route matched. Without one, routes are default-deny.
	Default bool `yaml:"default"`
}

// Rules are the compiled routes and destination rules, swapped whole on
// reload. SKELETON: the services helper implements Compile and applies them.
type Rules struct {
	// Version is the configuration version written as config_version.
	Version string
	// Destinations holds each destination's outbound rule set (its
	// destinations[].rules), by destination name.
	Destinations map[string]*mapping.RuleSet
	routes       []Rule
}

// Compile compiles routes (at key "routes") against env, with the
// destinations' rule sets; known lists the configured destinations.
// Every problem at once, each naming its key (routes[2].when: column 7: ...).
func Compile(routes []Rule, env *mapping.Env, dests map[string]*mapping.RuleSet, known map[string]bool) (*Rules, error) {
	return &Rules{Destinations: dests, routes: routes}, (Config{Rules: routes}).Validate(known)
}

// Config is the route stage's configuration.
type Config struct {
	// Instance distinguishes instances of the stage (see pipeline.Stage).
	Instance string
	// Runtime is the stage runtime's retry policy, record timeout and
	// stall threshold (the root configuration's stages section; zero
	// fields take pipeline's defaults).
	Runtime pipeline.Runtime
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	Rules     []Rule
	// AllDestinations are every configured destination: Run declares an
	// out topic for each, besides those Rules name, so a reloaded route
	// (SetRules) may send to any of them.
	AllDestinations []string
}

// Validate reports problems with the rules, each naming its key. known
// lists the configured destinations.
func (c Config) Validate(known map[string]bool) error {
	var errs []error
	names := map[string]bool{}
	for i, r := range c.Rules {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, r.Name))
		}
		names[r.Name] = true
		if len(r.Destinations) == 0 {
			errs = append(errs, fmt.Errorf("%s.destinations: at least one is required", key))
		}
		for j, d := range r.Destinations {
			if !known[d] {
				errs = append(errs, fmt.Errorf("%s.destinations[%d]: %q is not a configured destination", key, j, d))
			}
		}
		for j, mt := range r.MessageTypes {
			code, ev, _ := strings.Cut(mt, "^")
			if len(code) != 3 || (ev != "" && len(ev) != 3) {
				errs = append(errs, fmt.Errorf("%s.message_types[%d]: %q is not CODE or CODE^EVENT", key, j, mt))
			}
		}
	}
	return errors.Join(errs...)
}

// Service is a route stage.
type Service struct {
	cfg   Config
	kc    kafka.Config
	serde *canonical.Serde
	log   *slog.Logger
	// rules are the compiled rules in force, swapped whole by SetRules.
	rules atomic.Pointer[Rules]
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log}
}

// Destinations returns every destination a rule names and every one of
// AllDestinations, sorted.
func (c Config) Destinations() []string {
	set := map[string]bool{}
	for _, d := range c.AllDestinations {
		set[d] = true
	}
	for _, r := range c.Rules {
		for _, d := range r.Destinations {
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	outputs := map[string]string{}
	for _, d := range s.cfg.Destinations() {
		outputs[s.kc.OutTopic(d)] = schemas.Out
	}
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "route", Instance: s.cfg.Instance, Retry: s.cfg.Runtime.Retry, Timeout: s.cfg.Runtime.RecordTimeout, StallAfter: s.cfg.Runtime.StallAfter,
		Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicTransformed), Outputs: outputs,
		Handle: pipeline.Typed(s.serde, s.Handle),
	})
}

// Handle is the stage's handler: a transformed record in, one out record
// per destination its matching rules name, each to its destination's
// topic under the input's key (so per-patient order holds downstream).
func (s *Service) Handle(_ context.Context, t *canonical.Transformed) ([]pipeline.Output, error) {
	var outs []pipeline.Output
	seen := map[string]bool{}
	for _, r := range s.cfg.Rules {
		if !r.matches(t.Header) {
			continue
		}
		for _, d := range r.Destinations {
			if seen[d] {
				continue
			}
			seen[d] = true
			outs = append(outs, pipeline.Output{Topic: s.kc.OutTopic(d), Record: &canonical.Out{MessageID: t.MessageID, Interface: t.Interface,
				ReceivedAt: t.ReceivedAt, OrderingKey: t.OrderingKey, ControlID: t.Header.ControlID, Destination: d, Route: r.Name,
				ContentType: canonical.ContentTypeV2, Payload: t.Message}})
		}
	}
	if len(outs) == 0 {
		// Type and facility are routing metadata, not PHI.
		return nil, pipeline.Permanent(fmt.Errorf("no route matches %s^%s from facility %q",
			t.Header.MessageCode, t.Header.TriggerEvent, t.Header.SendingFacility))
	}
	return outs, nil
}

func (r Rule) matches(h canonical.Header) bool {
	if len(r.MessageTypes) > 0 {
		ok := false
		for _, mt := range r.MessageTypes {
			if mt == h.MessageCode || mt == h.MessageCode+"^"+h.TriggerEvent {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.SendingFacilities) > 0 {
		fac, _, _ := strings.Cut(h.SendingFacility, "^")
		for _, f := range r.SendingFacilities {
			if f == fac {
				return true
			}
		}
		return false
	}
	return true
}
