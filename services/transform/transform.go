// Package transform is the transform stage: it reads parsed records and
// writes transformed ones, the message with the normalisations every route
// needs in its typed projections (MSH-7 in UTC with the sender's offset
// kept, trimmed identifiers, the patient). The message bytes themselves are
// passed through unchanged (segment terminators made CR), so a destination
// receives what the sender sent, MSH-10 included; rule-driven transforms
// come later.
package transform

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Config is the transform stage's configuration.
type Config struct {
	// Instance distinguishes instances of the stage (see pipeline.Stage).
	Instance string
	// Runtime is the stage runtime's retry policy, record timeout and
	// stall threshold (the root configuration's stages section; zero
	// fields take pipeline's defaults).
	Runtime pipeline.Runtime
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Parser is the process's one parser, built by the composition root
	// from the parser section (hl7v2.ParserConfig), so transform reads
	// payload exactly as ingress and parse did. nil: hl7v2.NewParser().
	Parser *hl7v2.Parser
	// Rules are the inbound rules and the configuration version; nil
	// applies none. SetRules swaps them while the stage runs.
	Rules *Rules
}

// Rules is what transform applies, swapped whole on reload.
// SKELETON: the services helper applies them in Handle.
type Rules struct {
	// Version is the configuration version written as config_version.
	Version string
	// Interfaces holds each interface's inbound rule set (its
	// interfaces[].rules), by interface name.
	Interfaces map[string]*mapping.RuleSet
}

// Service is a transform stage.
type Service struct {
	cfg    Config
	kc     kafka.Config
	serde  *canonical.Serde
	log    *slog.Logger
	parser *hl7v2.Parser
	// out is the transformed topic.
	out string
	// rules are the rules in force, swapped whole by SetRules.
	rules atomic.Pointer[Rules]
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	p := cfg.Parser
	if p == nil {
		p = hl7v2.NewParser()
	}
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: p, out: kc.Topic(kafka.TopicTransformed)}
	s.rules.Store(cfg.Rules)
	return s
}

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "transform", Instance: s.cfg.Instance, Retry: s.cfg.Runtime.Retry, Timeout: s.cfg.Runtime.RecordTimeout, StallAfter: s.cfg.Runtime.StallAfter,
		Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicParsed),
		Outputs: map[string]string{s.out: schemas.Transformed},
		Handle:  pipeline.Typed(s.serde, s.Handle),
	})
}

// Handle is the stage's handler: a parsed record in, its transformed
// record out, under the input's key (so per-patient order holds
// downstream). The parsed record holds the message once, as payload (no
// tree: see docs/benchmarks.md, "Parse once"), so transform parses it; the
// header is the one ingress computed, carried unchanged.
func (s *Service) Handle(_ context.Context, p *canonical.Parsed) ([]pipeline.Output, error) {
	m, err := s.parser.Parse(p.Payload)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("parsing payload: %w", err))
	}
	t := &canonical.Transformed{
		MessageID: p.MessageID, Interface: p.Interface, ReceivedAt: p.ReceivedAt, OrderingKey: p.OrderingKey,
		Header: p.Header, Message: m.Bytes(), Patient: canonical.PatientOf(m),
	}
	if utc, offset, ok := canonical.MessageTimeOf(m); ok {
		t.MessageTime, t.MessageTimeOffset = utc, offset
	}
	return []pipeline.Output{{Topic: s.out, Record: t}}, nil
}
