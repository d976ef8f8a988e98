// Package parse is the parse stage: it reads raw records, parses and
// validates each message, and writes parsed records (header, bounded
// validation report, original bytes). A raw record holding an FHS/BHS
// batch yields one parsed record per message, each with a derived message
// ID (<parent>-<n>) and parent_message_id. What ingress refused (a raw
// record with a verdict) is dead-lettered to dlq.parse with class
// rejected_at_ingress and never parsed; a message that cannot be parsed is
// dead-lettered with the reason.
package parse

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

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
	// Runtime is the stage runtime's retry policy, record timeout and
	// stall threshold (the root configuration's stages section; zero
	// fields take pipeline's defaults).
	Runtime pipeline.Runtime
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Profiles maps an interface name to its conformance profile.
	Profiles map[string]*hl7v2.Profile
	// Parser is the process's one parser, built by the composition root
	// from the parser section (hl7v2.ParserConfig), so parse reads a
	// message exactly as ingress did. nil: hl7v2.NewParser().
	Parser *hl7v2.Parser
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
	// out is the parsed topic.
	out string
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	parser := cfg.Parser
	if parser == nil {
		parser = hl7v2.NewParser()
	}
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: parser,
		validators: map[string]*hl7v2.Validator{}, plain: hl7v2.NewValidator(nil), out: kc.Topic(kafka.TopicParsed)}
	for iface, p := range cfg.Profiles {
		s.validators[iface] = hl7v2.NewValidator(p)
	}
	return s
}

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "parse", Instance: s.cfg.Instance, Retry: s.cfg.Runtime.Retry, Timeout: s.cfg.Runtime.RecordTimeout, StallAfter: s.cfg.Runtime.StallAfter,
		Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicRaw),
		Outputs: map[string]string{s.out: schemas.Parsed},
		Handle:  pipeline.Typed(s.serde, s.Handle),
	})
}

// Handle is the stage's handler: a raw record in, its parsed records out
// (one for a message, one per message for a batch, none for an empty
// batch). A single message is written under its input's key, the messages
// of a batch each under its own ordering key, so a batch of several
// patients keeps per-patient order downstream, like messages sent one by
// one.
func (s *Service) Handle(_ context.Context, raw *canonical.Raw) ([]pipeline.Output, error) {
	ps, err := s.messages(raw)
	if err != nil {
		return nil, err
	}
	outs := make([]pipeline.Output, 0, len(ps))
	for _, p := range ps {
		o := pipeline.Output{Topic: s.out, Record: p}
		if p.ParentMessageID != "" {
			o.Key = []byte(p.OrderingKey)
		}
		outs = append(outs, o)
	}
	return outs, nil
}

// messages parses and validates the message (or the batch) of raw.
func (s *Service) messages(raw *canonical.Raw) ([]*canonical.Parsed, error) {
	if r := raw.Rejected; r != nil {
		// The sender was told AR (or AE, or nothing for an ACK): the
		// record is the evidence, never a message to route.
		return nil, pipeline.PermanentClass(canonical.ErrorRejectedAtIngress,
			fmt.Errorf("rejected at ingress: %s: %s", r.Code, r.Reason))
	}
	if isBatch(raw.Payload) {
		return s.batch(raw)
	}
	m, err := s.parser.Parse(raw.Payload)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("parsing message: %w", err))
	}
	// The header is the one ingress computed from this payload with the
	// same parser configuration; only a record without one (not written
	// by ingress: every message ingress accepts has MSH-9 and MSH-10) gets
	// it derived here.
	h := raw.Header
	if h == (canonical.Header{}) {
		h = canonical.HeaderOf(m)
	}
	p := s.parsed(raw, m, h, raw.MessageID, raw.OrderingKey)
	p.Payload = raw.Payload
	return []*canonical.Parsed{p}, nil
}

// batch splits a batch frame into its messages. Ingress checked its counts
// and every message before accepting it; a batch that still fails here
// (written by an older ingress, or replayed) is dead-lettered whole.
func (s *Service) batch(raw *canonical.Raw) ([]*canonical.Parsed, error) {
	f, err := s.parser.ParseBatch(raw.Payload)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("parsing batch: %w", err))
	}
	var out []*canonical.Parsed
	for n, m := range f.Messages() {
		child := raw.MessageID + "-" + strconv.Itoa(n+1)
		key := raw.OrderingKey
		switch raw.Ordering {
		case canonical.OrderNone:
			key = child
		case canonical.OrderInterface:
		default:
			key = canonical.OrderingKey(canonical.OrderPatient, raw.Interface, m, child)
		}
		// Each message of a batch has its own MSH: raw.Header is the
		// first one's.
		p := s.parsed(raw, m, canonical.HeaderOf(m), child, key)
		p.ParentMessageID = raw.MessageID
		p.Payload = m.Bytes()
		out = append(out, p)
	}
	return out, nil
}

// parsed builds the parsed record of m, whose header is h. Every string is valid UTF-8: the
// header is decoded with the message's character set by hl7v2, and what
// could still carry stray bytes (the delimiters, issue texts naming a
// declared character set) is decoded or replaced here.
func (s *Service) parsed(raw *canonical.Raw, m *hl7v2.Message, h canonical.Header, id, key string) *canonical.Parsed {
	v := s.validators[raw.Interface]
	if v == nil {
		v = s.plain
	}
	report := v.Validate(m)
	p := &canonical.Parsed{
		MessageID: id, Interface: raw.Interface, ReceivedAt: raw.ReceivedAt, OrderingKey: key,
		Header: h, Delimiters: decodeText(m, m.Delimiters().String()),
		Validation: canonical.Validation{Version: report.Version, Structure: report.Structure, Valid: report.Valid()},
	}
	issues := report.Issues
	if len(issues) > canonical.MaxIssues {
		p.Validation.IssuesTruncated = len(issues) - canonical.MaxIssues
		issues = issues[:canonical.MaxIssues]
	}
	for _, is := range issues {
		p.Validation.Issues = append(p.Validation.Issues, canonical.Issue{Severity: string(is.Severity), Code: int(is.Code),
			Location: is.Location.String(), Rule: is.Rule, Text: validText(is.Text)})
	}
	return p
}

// decodeText decodes s, bytes of m, with m's character set into valid
// UTF-8.
func decodeText(m *hl7v2.Message, s string) string {
	if enc := m.Charset().Encoding(); enc != nil {
		if b, err := enc.NewDecoder().String(s); err == nil {
			s = b
		}
	}
	return validText(s)
}

// validText replaces any byte sequence that is not UTF-8: an Avro string
// must be, or the analysts' readers (fastavro, Java) fail on the record.
func validText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// isBatch reports whether a frame starts with FHS or BHS.
func isBatch(payload []byte) bool {
	payload = bytes.TrimLeft(bytes.TrimPrefix(payload, []byte{0xEF, 0xBB, 0xBF}), "\r\n \t")
	return bytes.HasPrefix(payload, []byte("FHS")) || bytes.HasPrefix(payload, []byte("BHS"))
}
