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
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Config is the transform stage's configuration.
type Config struct {
	// Instance distinguishes instances of the stage (see pipeline.Stage).
	Instance string
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
}

// Service is a transform stage.
type Service struct {
	cfg    Config
	kc     kafka.Config
	serde  *canonical.Serde
	log    *slog.Logger
	parser *hl7v2.Parser
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: hl7v2.NewParser()}
}

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	out := s.kc.Topic(kafka.TopicTransformed)
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "transform", Instance: s.cfg.Instance, Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicParsed),
		Outputs: map[string]string{out: schemas.Transformed},
		Handle:  s.handler(out),
	})
}

// handler writes the record Handle returns to topic out under its input's
// key (so per-patient order holds downstream).
func (s *Service) handler(out string) pipeline.RecordHandler {
	return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		t, id, err := s.Handle(ctx, rec.Value)
		if err != nil {
			return nil, id, err
		}
		v, err := s.serde.Encode(t)
		if err != nil {
			return nil, id, pipeline.Permanent(err)
		}
		return []*kgo.Record{{Topic: out, Key: rec.Key, Value: v}}, id, nil
	}
}

// Handle turns a parsed record's value into a transformed record.
func (s *Service) Handle(ctx context.Context, value []byte) (*canonical.Transformed, pipeline.Ident, error) {
	p, err := pipeline.Decode[*canonical.Parsed](ctx, s.serde, value)
	if err != nil {
		return nil, pipeline.Ident{}, err
	}
	m, err := s.parser.Parse(p.Payload)
	if err != nil {
		return nil, pipeline.Ident{MessageID: p.MessageID, ControlID: p.Header.ControlID}, pipeline.Permanent(fmt.Errorf("re-parsing message: %w", err))
	}
	t := &canonical.Transformed{
		MessageID: p.MessageID, Interface: p.Interface, ReceivedAt: p.ReceivedAt, OrderingKey: p.OrderingKey,
		Header: p.Header, Message: m.Bytes(), Patient: PatientOf(m),
	}
	t.Header.Version = strings.TrimSpace(t.Header.Version)
	if utc, offset, ok := ToUTC(m.Header(7)); ok {
		t.MessageTime, t.MessageTimeOffset = utc, offset
	}
	return t, pipeline.Ident{MessageID: p.MessageID, ControlID: p.Header.ControlID}, nil
}

// PatientOf projects the first PID, or returns nil when there is none.
func PatientOf(m *hl7v2.Message) *canonical.Patient {
	pid, ok := m.Segment("PID", 1)
	if !ok {
		return nil
	}
	p := &canonical.Patient{
		FamilyName: strings.TrimSpace(pid.Field(5).Comp(1).Sub(1).String()),
		GivenName:  strings.TrimSpace(pid.Field(5).Comp(2).String()),
		Sex:        strings.TrimSpace(pid.Field(8).Comp(1).String()),
	}
	if d, _, ok := ToUTC(pid.Field(7).Comp(1).String()); ok && len(d) >= 10 {
		p.BirthDate = d[:10]
	}
	for _, r := range pid.Field(3).Reps() {
		id := strings.TrimSpace(r.Comp(1).String())
		if id == "" || r.IsNull() {
			continue
		}
		p.Identifiers = append(p.Identifiers, canonical.Identifier{
			Value: id, Authority: strings.TrimSpace(r.Comp(4).Sub(1).String()), Type: strings.TrimSpace(r.Comp(5).String())})
	}
	return p
}

// ToUTC converts an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) to
// RFC 3339 in UTC and returns the sender's offset ("+01:00", "" when the
// value had none, in which case the time is taken as UTC).
func ToUTC(dtm string) (utc, offset string, ok bool) {
	s := strings.TrimSpace(dtm)
	zone := time.UTC
	if i := strings.LastIndexAny(s, "+-"); i >= 4 {
		z := s[i+1:]
		if len(z) != 4 {
			return "", "", false
		}
		h, m := atoi(z[:2]), atoi(z[2:])
		if h < 0 || m < 0 || h > 14 || m > 59 {
			return "", "", false
		}
		secs := h*3600 + m*60
		if s[i] == '-' {
			secs = -secs
		}
		offset = fmt.Sprintf("%c%s:%s", s[i], z[:2], z[2:])
		zone = time.FixedZone(offset, secs)
		s = s[:i]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
	}
	layouts := map[int]string{4: "2006", 6: "200601", 8: "20060102", 10: "2006010215", 12: "200601021504", 14: "20060102150405"}
	layout, known := layouts[len(s)]
	if !known {
		return "", "", false
	}
	t, err := time.ParseInLocation(layout, s, zone)
	if err != nil {
		return "", "", false
	}
	if frac != "" && len(s) == 14 {
		for len(frac) < 9 {
			frac += "0"
		}
		if ns := atoi(frac[:9]); ns >= 0 {
			t = t.Add(time.Duration(ns))
		}
	}
	return t.UTC().Format(time.RFC3339Nano), offset, true
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
