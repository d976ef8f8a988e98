package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// defaultRulesConfig is the configuration `hl7bus rules` reads without
// --config: the sample's, as `hl7bus tail` does, so the repository's own
// cases run from its root with no flags.
const defaultRulesConfig = "deploy/standalone/hl7bus.yaml"

const rulesUsage = `usage: hl7bus rules test [--config FILE] [--update] [DIR|FILE...]
       hl7bus rules explain [--config FILE] --interface NAME MSGFILE

test runs the cases of every *.test.yaml file (default: the rules-tests
directory beside the configuration) through the configuration's real
parse, transform and route handlers, and prints PASS or FAIL per case and
a closing "N passed, M failed". explain prints what the rules and routes
do with one message: the transform outcome, every route's verdict and the
message each destination would receive. Neither touches Kafka.

Exit status: 0 all passed, 1 a case failed, 2 usage, configuration or
test-file errors. See docs/rules-guide.md.
`

func runRules(args []string, env Env) int {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, rulesUsage)
		return ExitUsage
	}
	switch args[0] {
	case "test":
		return runRulesTest(args[1:], env)
	case "explain":
		return runRulesExplain(args[1:], env)
	case "-h", "--help", "help":
		fmt.Fprint(env.Stdout, rulesUsage)
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "hl7bus rules: unknown subcommand %q\n\n%s", args[0], rulesUsage)
	return ExitUsage
}

// exchange is a configuration's parse, transform and route stages, built
// as the composition root builds them but never run: rules test and rules
// explain call their handlers directly, so what they show is what the
// running exchange does, without Kafka.
type exchange struct {
	file     *config.File
	compiled *config.Compiled
	parser   *hl7v2.Parser
	parse    *parse.Service
	trans    *transform.Service
	route    *route.Service
	kc       kafka.Config
	// interfaces and destinations are the configured ones by name.
	interfaces   map[string]ingress.Interface
	destinations map[string]bool
}

// loadExchange loads, validates and compiles the configuration at path.
func loadExchange(path string) (*exchange, error) {
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if len(f.Kafka.Brokers) == 0 && f.Registry.URL == "" {
		// A standalone file names neither; its embedded ones are never
		// contacted here, but validation wants them named.
		f.ForStandalone()
	}
	compiled, err := f.Checked()
	if err != nil {
		return nil, fmt.Errorf("%s is invalid:\n%w", path, err)
	}
	parser, err := f.Parser.NewParser()
	if err != nil {
		return nil, fmt.Errorf("parser: %w", err)
	}
	profiles, err := f.Profiles()
	if err != nil {
		return nil, err
	}
	ex := &exchange{file: f, compiled: compiled, parser: parser, kc: f.Kafka,
		interfaces: map[string]ingress.Interface{}, destinations: map[string]bool{}}
	for _, d := range f.Destinations {
		ex.destinations[d.Name] = true
	}
	for _, it := range f.Interfaces {
		ex.interfaces[it.Name] = it
	}
	// The handlers log nothing a case needs; their errors come back as
	// values.
	log := slog.New(slog.DiscardHandler)
	ex.parse = parse.New(parse.Config{Profiles: profiles, Parser: parser}, f.Kafka, nil, log)
	ex.trans = transform.New(transform.Config{Parser: parser, Rules: compiled.Transform}, f.Kafka, nil, log)
	// The same parser as parse and transform, so route reads a payload
	// as they did (the parser section's fallback charset).
	ex.route = route.New(route.Config{Parser: parser, Rules: compiled.Route}, f.Kafka, nil, log)
	return ex, nil
}

// deadLetter is one dead letter a stage wrote, whole (Destination "") or
// for one destination's copy.
type deadLetter struct {
	Stage       string
	Destination string
	Reason      string
}

func (d deadLetter) String() string {
	if d.Destination != "" {
		return fmt.Sprintf("dead-lettered at %s for destination %s: %s", d.Stage, d.Destination, d.Reason)
	}
	return fmt.Sprintf("dead-lettered at %s: %s", d.Stage, d.Reason)
}

// filtering is one filter rule that dropped the message (Destination "")
// or one destination's copy.
type filtering struct {
	Destination string
	Rule        string
	Reason      string
}

func (f filtering) String() string {
	if f.Destination != "" {
		return fmt.Sprintf("%s's copy filtered by rule %s (%s)", f.Destination, f.Rule, f.Reason)
	}
	return fmt.Sprintf("filtered by rule %s (%s)", f.Rule, f.Reason)
}

// trace is everything the stages did with one message.
type trace struct {
	// Transformed are transform's records: one, several after a split,
	// none when filtered or dead-lettered.
	Transformed []*canonical.Transformed
	// Decisions are route's decisions, one per transformed record.
	Decisions []*canonical.Decision
	Filtered  []filtering
	Dead      []deadLetter
	// Out holds what each destination receives, in order; Order the
	// destinations in the order they first received something.
	Out   map[string][]*canonical.Out
	Order []string
	// Parsed holds one trace per message parse wrote: one for a message,
	// one per message of a batch (parse's split, not a rule's), so a
	// reader can follow each message of a batch apart. The fields above
	// hold the union of them, plus parse's own dead letter.
	Parsed []*trace
}

// add appends what sub holds to tr (a batch message's trace to the
// whole payload's).
func (tr *trace) add(sub *trace) {
	tr.Transformed = append(tr.Transformed, sub.Transformed...)
	tr.Decisions = append(tr.Decisions, sub.Decisions...)
	tr.Filtered = append(tr.Filtered, sub.Filtered...)
	tr.Dead = append(tr.Dead, sub.Dead...)
	for _, d := range sub.Order {
		if _, seen := tr.Out[d]; !seen {
			tr.Order = append(tr.Order, d)
		}
		tr.Out[d] = append(tr.Out[d], sub.Out[d]...)
	}
}

// receipt says how a simulated message was received.
type receipt struct {
	Interface string
	// MessageID is the message's ID; a deterministic one, so a rule that
	// uses receipt.message_id gives the same result on every run.
	MessageID string
}

// run passes payload through parse, transform and route as the exchange
// would had ingress received it on the interface.
func (ex *exchange) run(ctx context.Context, rc receipt, payload []byte) (*trace, error) {
	it, ok := ex.interfaces[rc.Interface]
	if !ok {
		return nil, fmt.Errorf("interface %q is not configured", rc.Interface)
	}
	tr := &trace{Out: map[string][]*canonical.Out{}}
	raw := &canonical.Raw{MessageID: rc.MessageID, Interface: it.Name, Protocol: it.Protocol, Payload: payload,
		Ordering: it.WithDefaults().Ordering, ReceivedAt: time.Unix(0, 0).UTC()}
	m, perr := ex.parser.Parse(payload)
	if perr == nil {
		raw.Header = canonical.HeaderOf(m)
		raw.ReceivedAt = receivedAt(m)
	} else {
		m = nil
	}
	raw.OrderingKey = canonical.OrderingKey(raw.Ordering, it.Name, m, rc.MessageID)
	outs, err := ex.parse.Handle(ctx, raw)
	if err != nil {
		tr.Dead = append(tr.Dead, deadLetter{Stage: "parse", Reason: err.Error()})
		return tr, nil
	}
	for _, o := range outs {
		p, ok := o.Record.(*canonical.Parsed)
		if !ok {
			continue
		}
		sub := &trace{Out: map[string][]*canonical.Out{}}
		if err := ex.transform(ctx, sub, p); err != nil {
			return nil, err
		}
		tr.Parsed = append(tr.Parsed, sub)
		tr.add(sub)
	}
	return tr, nil
}

// transform runs transform's handler on p, and route's on what it wrote.
func (ex *exchange) transform(ctx context.Context, tr *trace, p *canonical.Parsed) error {
	outs, err := ex.trans.Handle(ctx, p)
	if err := tr.deadLetters("transform", outs, err); err != nil {
		return err
	}
	for _, o := range outs {
		switch r := o.Record.(type) {
		case *canonical.Transformed:
			tr.Transformed = append(tr.Transformed, r)
			if err := ex.routeOne(ctx, tr, r); err != nil {
				return err
			}
		case *canonical.Decision:
			if r.Filter != nil {
				tr.Filtered = append(tr.Filtered, filtering{Rule: r.Filter.Rule, Reason: r.Filter.Reason})
			}
		}
	}
	return nil
}

// routeOne runs route's handler on t.
func (ex *exchange) routeOne(ctx context.Context, tr *trace, t *canonical.Transformed) error {
	outs, err := ex.route.Handle(ctx, t)
	if err := tr.deadLetters("route", outs, err); err != nil {
		return err
	}
	for _, o := range outs {
		switch r := o.Record.(type) {
		case *canonical.Out:
			if _, seen := tr.Out[r.Destination]; !seen {
				tr.Order = append(tr.Order, r.Destination)
			}
			tr.Out[r.Destination] = append(tr.Out[r.Destination], r)
		case *canonical.Decision:
			tr.Decisions = append(tr.Decisions, r)
			for _, d := range r.Destinations {
				if d.Outcome == canonical.OutcomeFiltered {
					tr.Filtered = append(tr.Filtered, filtering{Destination: d.Destination, Rule: d.Rule, Reason: d.Reason})
				}
			}
		}
	}
	return nil
}

// deadLetters records what a handler dead-lettered: its permanent error
// (the whole input) and its scoped dead letters. A transient error would
// be retried by the running stage; here it means the harness itself is
// broken, and is returned.
func (tr *trace) deadLetters(stage string, outs []pipeline.Output, err error) error {
	if err != nil {
		if !pipeline.IsPermanent(err) {
			return fmt.Errorf("%s: %w", stage, err)
		}
		// The reason the dead-letter record would say: with the error's
		// detail (an unmapped code), which the stage's logs leave out.
		tr.Dead = append(tr.Dead, deadLetter{Stage: stage, Reason: pipeline.DeadLetterReason(err)})
	}
	for _, o := range outs {
		if s := o.DeadLetter; s != nil {
			tr.Dead = append(tr.Dead, deadLetter{Stage: stage, Destination: s.Destination, Reason: s.DeadLetterReason()})
		}
	}
	return nil
}

// receivedAt is the simulated receipt time: the message's own MSH-7 when
// it reads as a time, so receipt.received_at is stable from run to run,
// else the Unix epoch.
func receivedAt(m *hl7v2.Message) time.Time {
	if utc, _, ok := canonical.MessageTimeOf(m); ok {
		if t, err := time.Parse(time.RFC3339Nano, utc); err == nil {
			return t
		}
	}
	return time.Unix(0, 0).UTC()
}

// messageID is the deterministic message ID of the nth simulated message.
func messageID(prefix string, n int) string { return prefix + "-" + strconv.Itoa(n) }
