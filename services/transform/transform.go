// Package transform is the transform stage: it reads parsed records and
// writes transformed ones, the message with the normalisations every route
// needs in its typed projections (MSH-7 in UTC with the sender's offset
// kept, trimmed identifiers, the patient), after the interface's inbound
// rules (libs/mapping: set, map, normalize, split, filter, ...). Without
// rules the message bytes are passed through unchanged (segment
// terminators made CR), so a destination receives what the sender sent,
// MSH-10 included. A message a filter drops leaves only its decision on the
// decisions topic.
package transform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

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

// Rules is what transform applies, swapped whole on reload (SetRules).
// A Rules is never changed once the stage has it, so a record in flight
// finishes on the one it started with.
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
	// rules are the rules in force; Handle loads them once per record.
	rules atomic.Pointer[Rules]
	// metrics count inbound filters (destination "") and flags (stage
	// "transform"); route counts destination rules on the same metrics.
	metrics *mapping.Metrics
	// out is the transformed topic, decisions the decisions topic.
	out, decisions string
	// now is the decisions' clock.
	now func() time.Time
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	p := cfg.Parser
	if p == nil {
		p = hl7v2.NewParser()
	}
	tel := cfg.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: p, out: kc.Topic(kafka.TopicTransformed),
		decisions: kc.Topic(kafka.TopicDecisions), now: time.Now,
		metrics: mapping.NewMetrics(tel)}
	s.rules.Store(cfg.Rules)
	return s
}

// SetRules puts r in force for the records the stage handles from now on
// (a record being handled finishes on the rules it started with). nil
// applies no rules.
func (s *Service) SetRules(r *Rules) { s.rules.Store(r) }

// CurrentRules returns the rules in force (nil: none).
func (s *Service) CurrentRules() *Rules { return s.rules.Load() }

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "transform", Instance: s.cfg.Instance, Retry: s.cfg.Runtime.Retry, Timeout: s.cfg.Runtime.RecordTimeout, StallAfter: s.cfg.Runtime.StallAfter,
		Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicParsed),
		Outputs: map[string]string{s.out: schemas.Transformed, s.decisions: schemas.Decisions},
		Handle:  pipeline.Typed(s.serde, s.Handle),
	})
}

// Handle is the stage's handler: a parsed record in, the interface's
// inbound rules applied, and out one transformed record (several after a
// split, one per child) under the input's key, so per-patient order holds
// downstream; or, when a filter rule dropped the message, its decision
// (topic decisions, keyed by message ID) and no transformed record; after
// a split, one such decision per child a filter dropped (message ID
// <id>-<n>, the input as parent), beside the survivors' records. A rule
// that fails on the message dead-letters it (a permanent error whose
// reason names the rule). The parsed record holds the message once, as
// payload (no tree: see docs/benchmarks.md, "Parse once"), so transform
// parses it.
func (s *Service) Handle(_ context.Context, p *canonical.Parsed) ([]pipeline.Output, error) {
	m, err := s.parser.Parse(p.Payload)
	if err != nil {
		return nil, pipeline.Permanent(fmt.Errorf("parsing payload: %w", err))
	}
	rules := s.rules.Load() // once: one record sees one configuration
	var rs *mapping.RuleSet
	version := ""
	if rules != nil {
		rs, version = rules.Interfaces[p.Interface], rules.Version
	}
	if rs.Len() == 0 {
		// No rules: the header ingress computed is the message's, carried
		// unchanged.
		return []pipeline.Output{{Topic: s.out, Record: s.transformed(p, m, p.Header, p.MessageID, p.ParentMessageID, version, nil)}}, nil
	}
	res, err := rs.Apply(m, mapping.Vars{Interface: p.Interface,
		Receipt: mapping.Receipt{MessageID: p.MessageID, ParentMessageID: p.ParentMessageID, ReceivedAt: p.ReceivedAt}})
	if err != nil {
		// A RuleError's text is "rule <name>: <why>", without content;
		// its detail (an unmapped code) reaches the dead-letter record's
		// reason alone (pipeline.Detailed).
		return nil, pipeline.Permanent(err)
	}
	for _, is := range res.Issues {
		s.metrics.Flags.WithLabelValues("transform", is.Rule).Inc()
	}
	var outs []pipeline.Output
	if f := res.Filtered; f != nil && len(res.Dropped) == 0 {
		// An unsplit message dropped whole: its decision, under its ID.
		s.metrics.Filtered.WithLabelValues(p.Interface, f.Rule, "").Inc()
		return []pipeline.Output{s.filteredDecision(p, p.MessageID, p.ParentMessageID, p.Header, version, f)}, nil
	}
	// Each split child a filter dropped has its decision, under the ID it
	// would have had, so a child a filter swallows is as visible as a
	// whole message.
	for i := range res.Dropped {
		d := &res.Dropped[i]
		s.metrics.Filtered.WithLabelValues(p.Interface, d.Rule, "").Inc()
		outs = append(outs, s.filteredDecision(p, childID(p.MessageID, d.Index), p.MessageID, headerOf(d.Message, p.Header), version, &d.Filtered))
	}
	switch {
	case len(res.Messages) == 0 && len(outs) == 0:
		return nil, pipeline.Permanent(errors.New("the rules left no message and no filter"))
	case res.Indexes == nil && len(res.Messages) == 1:
		out := res.Messages[0]
		return []pipeline.Output{{Topic: s.out, Record: s.transformed(p, out, headerOf(out, p.Header), p.MessageID, p.ParentMessageID, version, issuesOf(res.Issues, 0))}}, nil
	case len(res.Indexes) != len(res.Messages):
		return nil, pipeline.Permanent(fmt.Errorf("the rules left %d messages, numbered %d", len(res.Messages), len(res.Indexes)))
	}
	// A split: each child is a message of its own (its own MSH-10, so its
	// own header), with a derived ID (its child number: a sibling dropped
	// leaves a gap, the IDs do not shift), the input as its parent, and
	// the input's ordering key (the children stay in order with the
	// patient's other messages). Each carries the flags raised on it and
	// those raised before the split, not its siblings'.
	for i, c := range res.Messages {
		n := res.Indexes[i]
		outs = append(outs, pipeline.Output{Topic: s.out, Record: s.transformed(p, c, headerOf(c, p.Header),
			childID(p.MessageID, n), p.MessageID, version, issuesOf(res.Issues, n))})
	}
	return outs, nil
}

// childID is the message ID of split child n of the message id.
func childID(id string, n int) string { return id + "-" + strconv.Itoa(n) }

// filteredDecision is the decision of a message (or split child) an
// inbound filter dropped, h its header, keyed by its message ID.
func (s *Service) filteredDecision(p *canonical.Parsed, id, parent string, h canonical.Header, version string, f *mapping.Filtered) pipeline.Output {
	return pipeline.Output{Topic: s.decisions, Key: []byte(id), Record: &canonical.Decision{
		MessageID: id, ParentMessageID: parent, Interface: p.Interface, ControlID: h.ControlID,
		MessageType: canonical.MessageTypeOf(h), Stage: canonical.StageTransform, DecidedAt: s.now(),
		ConfigVersion: version, Outcome: canonical.OutcomeFiltered, Filter: &canonical.FilterDecision{Rule: f.Rule, Reason: f.Reason}}}
}

// transformed is the record of m, the message after the rules: the
// projections are computed from it, not from the payload received.
func (s *Service) transformed(p *canonical.Parsed, m *hl7v2.Message, h canonical.Header, id, parent, version string, issues []canonical.Issue) *canonical.Transformed {
	t := &canonical.Transformed{
		MessageID: id, ParentMessageID: parent, Interface: p.Interface, ReceivedAt: p.ReceivedAt, OrderingKey: p.OrderingKey,
		Header: h, Message: m.Bytes(), Patient: canonical.PatientOf(m), ConfigVersion: version, Issues: issues,
	}
	if utc, offset, ok := canonical.MessageTimeOf(m); ok {
		t.MessageTime, t.MessageTimeOffset = utc, offset
	}
	return t
}

// headerOf is the header of m after rules (they may have changed MSH-5,
// the version or, in a split child, MSH-10), with the charset the message
// was received in (the rules change no bytes' encoding).
func headerOf(m *hl7v2.Message, received canonical.Header) canonical.Header {
	h := canonical.HeaderOf(m)
	h.Charset = received.Charset
	return h
}

// issuesOf turns the rules' flags that concern child (0: the message not
// split; n: split child n) into the record's issues: those raised before
// any split (Child 0) and, for a child, those raised on it. They are
// warnings (the message goes on) with the HL7 error code of what the rule
// found (103 an unmapped code, 102 a time without an offset).
func issuesOf(in []mapping.Issue, child int) []canonical.Issue {
	var out []canonical.Issue
	for _, is := range in {
		if is.Child != 0 && is.Child != child {
			continue
		}
		code := is.Code
		if code == 0 {
			// A flag without a code of its own is still about an
			// application rule: HL7's application internal error.
			code = hl7v2.CodeInternalError
		}
		out = append(out, canonical.Issue{Severity: string(hl7v2.SeverityWarning), Code: int(code), Location: is.Path, Rule: is.Rule, Text: is.Reason})
	}
	return out
}
