package route

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// Reasons a route did not match, besides the lists' (see mismatch).
const (
	reasonWhenFalse = "when is false"
	reasonNotNeeded = "not needed: another route matched"
	// reasonUndecided is the default route's when another route's when
	// failed: whether it would have matched cannot be known.
	reasonUndecided = "not decided: a route's when failed"
	// reasonWhenFailed prefixes a when's evaluation error (an EvalError:
	// no message content).
	reasonWhenFailed = "when failed: "
)

// Handle is the stage's handler: a transformed record in; every route
// evaluated in order over it; one out record per destination the matched
// routes name (each once, in the order first named), after that
// destination's own rules on its own copy of the message, each to its
// destination's topic under the input's key (so per-patient order holds
// downstream); and always one decision (topic decisions, keyed by message
// ID) saying which routes matched, which did not and why, and what each
// destination got. A destination whose rules filter its copy gets nothing;
// one whose rules fail has its copy dead-lettered, the others go on. A
// message no route matches (and no default) is dead-lettered whole, beside
// its decision. A when that fails at run time is like no route matching:
// the decision (that route not matched, the reason "when failed: ...";
// the other routes still evaluated, for the record) and the whole message
// dead-lettered with a reason naming the route, and nothing delivered: a
// message whose routing could not be decided goes nowhere rather than to
// a subset of its destinations.
//
// A record a replay job re-sent into route with the header
// hl7bus-replay-destinations (kafka.HeaderReplayDestinations: "a,b")
// goes only to those of the selected destinations: the others already
// have the message (the job skipped them as delivered), so their copies
// are neither written nor run through their rules, and the decision
// lists only the destinations written (the routes' verdicts stay whole).
// A listed destination the routes no longer select gets nothing: the
// rules in force decide, the header only narrows.
func (s *Service) Handle(ctx context.Context, t *canonical.Transformed) ([]pipeline.Output, error) {
	only, replay := replayDestinations(ctx)
	return s.handle(t, only, replay)
}

// handle is Handle, with the replay header's destinations (only, when
// replay) already read.
func (s *Service) handle(t *canonical.Transformed, only []string, replay bool) ([]pipeline.Output, error) {
	rules := s.rules.Load() // once: one record sees one configuration
	var (
		version string
		m       *hl7v2.Message
	)
	if rules != nil {
		version = rules.Version
		if rules.parse {
			var err error
			if m, err = s.parser.Parse(t.Message); err != nil {
				return nil, pipeline.Permanent(fmt.Errorf("parsing message: %w", err))
			}
		}
	}
	vars := mapping.Vars{Msg: m, Interface: t.Interface,
		Receipt: mapping.Receipt{MessageID: t.MessageID, ParentMessageID: t.ParentMessageID, ReceivedAt: t.ReceivedAt}}
	d := &canonical.Decision{MessageID: t.MessageID, ParentMessageID: t.ParentMessageID, Interface: t.Interface,
		ControlID: t.Header.ControlID, MessageType: canonical.MessageTypeOf(t.Header), Stage: canonical.StageRoute,
		DecidedAt: s.now(), ConfigVersion: version, Routes: make([]canonical.RouteDecision, rules.Len())}
	var dests, by, failed []string
	if rules != nil {
		dests, by, failed = rules.evaluate(&t.Header, &vars, d.Routes)
	}
	if len(failed) > 0 {
		d.Outcome = canonical.OutcomeDeadLettered
		return []pipeline.Output{s.decision(d), {DeadLetter: &pipeline.Scoped{Reason: strings.Join(failed, "; ")}}}, nil
	}
	if replay && len(dests) > 0 {
		dests, by = narrow(dests, by, only)
		if len(dests) == 0 {
			// The routes matched, but none of the destinations the job
			// asked for is among theirs any more: nothing to write and
			// nothing failed (no filter dropped it either).
			d.Outcome = canonical.OutcomeRouted
			return []pipeline.Output{s.decision(d)}, nil
		}
	}
	if len(dests) == 0 {
		// Default-deny: the decision says why, and the whole message
		// (Destination "") is dead-lettered beside it.
		d.Outcome = canonical.OutcomeDeadLettered
		return []pipeline.Output{s.decision(d), {DeadLetter: &pipeline.Scoped{Reason: noRoute(t, d.Routes)}}}, nil
	}
	outs := make([]pipeline.Output, 0, len(dests)+1)
	d.Destinations = make([]canonical.DestinationDecision, len(dests))
	for i, dest := range dests {
		dd := &d.Destinations[i]
		dd.Destination, dd.Outcome = dest, canonical.OutcomeRouted
		payload := t.Message
		if rs := rules.Destinations[dest]; rs.Len() > 0 {
			// Its own copy: the other destinations get the message as
			// transformed.
			c := m.Clone()
			v := vars
			v.Msg, v.Destination = c, dest
			res, err := rs.Apply(c, v)
			for _, is := range res.Issues {
				s.metrics.Flags.WithLabelValues("route", is.Rule).Inc()
			}
			switch {
			case err != nil:
				// Only this destination's copy fails. A RuleError's text
				// names the rule, without content: the decision and the
				// logs get it; its detail (the code a table lacks) goes to
				// the dead-letter record's reason alone.
				dd.Outcome, dd.Reason = canonical.OutcomeDeadLettered, err.Error()
				if re, ok := errors.AsType[*mapping.RuleError](err); ok {
					dd.Rule = re.Rule
				}
				outs = append(outs, pipeline.Output{DeadLetter: &pipeline.Scoped{Destination: dest, Reason: err.Error(), Detail: pipeline.DetailOf(err)}})
				continue
			case res.Filtered != nil:
				dd.Outcome, dd.Rule, dd.Reason = canonical.OutcomeFiltered, res.Filtered.Rule, res.Filtered.Reason
				s.metrics.Filtered.WithLabelValues(t.Interface, res.Filtered.Rule, dest).Inc()
				continue
			case len(res.Messages) != 1:
				// Compile refuses split in destination rules.
				return nil, pipeline.Permanent(fmt.Errorf("destination %s: the rules made %d messages, want 1", dest, len(res.Messages)))
			}
			payload = res.Messages[0].Bytes()
		}
		outs = append(outs, pipeline.Output{Topic: s.kc.OutTopic(dest), Record: &canonical.Out{MessageID: t.MessageID, Interface: t.Interface,
			ReceivedAt: t.ReceivedAt, OrderingKey: t.OrderingKey, ControlID: t.Header.ControlID, Destination: dest, Route: by[i],
			ContentType: canonical.ContentTypeV2, Payload: payload, ConfigVersion: version}})
	}
	d.Outcome = outcome(d.Destinations)
	return append(outs, s.decision(d)), nil
}

// evaluate runs every route in order over the message (h its header,
// vars.Msg its tree when r.parse), writing each route's verdict to
// routes (len(r.routes) of them). It returns the destinations selected,
// each once, in the order first named, and by each the route that named
// it first; or, when a when failed at run time, failed: the dead-letter
// reason of each failing route ("route <name>: when: ..."), the routes
// after it still evaluated so the decision is complete.
func (r *Rules) evaluate(h *canonical.Header, vars *mapping.Vars, routes []canonical.RouteDecision) (dests, by, failed []string) {
	add := func(cr *compiledRoute) {
		for _, dest := range cr.Destinations {
			if !contains(dests, dest) {
				dests, by = append(dests, dest), append(by, cr.Name)
			}
		}
	}
	matched := false
	for i := range r.routes {
		cr := &r.routes[i]
		rd := &routes[i]
		rd.Route, rd.Destinations = cr.Name, cr.Destinations
		if cr.Default {
			continue // decided below, once the others are
		}
		reason := cr.mismatch(h)
		if reason == "" && cr.when != nil {
			ok, err := cr.when.EvalBool(vars)
			switch {
			case err != nil:
				// An EvalError's text has no message content.
				reason = reasonWhenFailed + err.Error()
				failed = append(failed, fmt.Sprintf("route %s: when: %v", cr.Name, err))
			case !ok:
				reason = reasonWhenFalse
			}
		}
		if reason != "" {
			rd.Reason = reason
			continue
		}
		rd.Matched, matched = true, true
		add(cr)
	}
	if r.def >= 0 {
		switch {
		case failed != nil:
			routes[r.def].Reason = reasonUndecided
		case matched:
			routes[r.def].Reason = reasonNotNeeded
		default:
			routes[r.def].Matched = true
			add(&r.routes[r.def])
		}
	}
	if failed != nil {
		return nil, nil, failed
	}
	return dests, by, nil
}

// decision is d's output: the decisions topic, keyed by message ID (a
// message's decisions, one per stage that decided, are read together).
func (s *Service) decision(d *canonical.Decision) pipeline.Output {
	return pipeline.Output{Topic: s.decisions, Key: []byte(d.MessageID), Record: d}
}

// outcome is the message's outcome from its destinations': routed when
// one got it, dead-lettered when none did and one failed, filtered when
// every destination's rules filtered it.
func outcome(dests []canonical.DestinationDecision) string {
	out := canonical.OutcomeFiltered
	for _, dd := range dests {
		switch dd.Outcome {
		case canonical.OutcomeRouted:
			return canonical.OutcomeRouted
		case canonical.OutcomeDeadLettered:
			out = canonical.OutcomeDeadLettered
		}
	}
	return out
}

// noRoute is the dead-letter reason of a message no route matched: its
// type and sending facility (routing metadata, not PHI) and each route's
// reason.
func noRoute(t *canonical.Transformed, routes []canonical.RouteDecision) string {
	fac, _, _ := strings.Cut(t.Header.SendingFacility, "^")
	var b strings.Builder
	b.WriteString("no route matches ")
	b.WriteString(canonical.MessageTypeOf(t.Header))
	b.WriteString(" from facility ")
	b.WriteString(fac)
	b.WriteString(" (")
	b.WriteString(strconv.Itoa(len(routes)))
	b.WriteString(" routes")
	for i, r := range routes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(r.Route)
		b.WriteString(": ")
		b.WriteString(r.Reason)
	}
	b.WriteString(")")
	return b.String()
}

// replayDestinations returns the destinations of the input's replay
// header, and whether it has one.
func replayDestinations(ctx context.Context) ([]string, bool) {
	v, ok := pipeline.InputHeader(ctx, kafka.HeaderReplayDestinations)
	if !ok {
		return nil, false
	}
	var only []string
	for _, d := range strings.Split(string(v), ",") {
		if d = strings.TrimSpace(d); d != "" {
			only = append(only, d)
		}
	}
	return only, true
}

// narrow keeps the destinations (and the routes that chose them, by) that
// only lists, in their order.
func narrow(dests, by, only []string) ([]string, []string) {
	var d, b []string
	for i, dest := range dests {
		if contains(only, dest) {
			d, b = append(d, dest), append(b, by[i])
		}
	}
	return d, b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
