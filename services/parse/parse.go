// Package parse is the parse stage: it reads raw records, parses and
// validates each message, and writes parsed records (lossless tree,
// validation report, original bytes). A message that cannot be parsed is
// dead-lettered to dlq.parse with the reason.
package parse

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Config is the parse stage's configuration.
type Config struct {
	// Instance distinguishes instances of the stage (see pipeline.Stage).
	Instance string
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Profiles maps an interface name to its conformance profile.
	Profiles map[string]*hl7v2.Profile
}

// Service is a running parse stage.
type Service struct {
	cfg        Config
	kc         kafka.Config
	serde      *canonical.Serde
	log        *slog.Logger
	parser     *hl7v2.Parser
	validators map[string]*hl7v2.Validator
	plain      *hl7v2.Validator
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: hl7v2.NewParser(),
		validators: map[string]*hl7v2.Validator{}, plain: hl7v2.NewValidator(nil)}
	for iface, p := range cfg.Profiles {
		s.validators[iface] = hl7v2.NewValidator(p)
	}
	return s
}

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	out := s.kc.Topic(kafka.TopicParsed)
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "parse", Instance: s.cfg.Instance, Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicRaw),
		Outputs: map[string]string{out: schemas.Parsed},
		Handle:  pipeline.OneToOne(s.serde, out, s.Handle),
	})
}

// Handle turns a raw record's value into a parsed record.
func (s *Service) Handle(ctx context.Context, value []byte) (*canonical.Parsed, kafka.Ident, error) {
	raw, err := pipeline.Decode[*canonical.Raw](ctx, s.serde, value)
	if err != nil {
		return nil, kafka.Ident{}, err
	}
	m, err := s.parser.Parse(raw.Payload)
	if err != nil {
		return nil, kafka.Ident{MessageID: raw.MessageID, ControlID: raw.Header.ControlID}, kafka.Permanent(fmt.Errorf("parsing message: %w", err))
	}
	v := s.validators[raw.Interface]
	if v == nil {
		v = s.plain
	}
	report := v.Validate(m)
	p := &canonical.Parsed{
		MessageID: raw.MessageID, Interface: raw.Interface, ReceivedAt: raw.ReceivedAt, OrderingKey: raw.OrderingKey,
		Header: canonical.HeaderOf(m), Delimiters: m.Delimiters().String(), Payload: raw.Payload,
		Validation: canonical.Validation{Version: report.Version, Structure: report.Structure, Valid: report.Valid()},
	}
	// No segments tree: a record holds the message once (the payload), so
	// a message up to the interface limit fits the record limit.
	for _, is := range report.Issues {
		p.Validation.Issues = append(p.Validation.Issues, canonical.Issue{Severity: string(is.Severity), Code: int(is.Code),
			Location: is.Location.String(), Rule: is.Rule, Text: is.Text})
	}
	return p, kafka.Ident{MessageID: raw.MessageID, ControlID: m.ControlID()}, nil
}
