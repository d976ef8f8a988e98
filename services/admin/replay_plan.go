package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Planning limits.
const (
	// sampleSize is how many items a plan shows.
	sampleSize = 10
	// maxProblems is how many unreplayable records a plan lists (it
	// counts them all).
	maxProblems = 100
)

// statusDelivered is the index's status of a destination that has the
// message.
const statusDelivered = "delivered"

// The stages whose dead letters a replay sends back, by the name their
// dead-letter topic has (dlq.<stage>).
const (
	stageParse     = "parse"
	stageTransform = canonical.StageTransform
	stageRoute     = canonical.StageRoute
	stageEgress    = "egress"
)

// planItem is one record a job sends: where it is read from and where it
// goes.
type planItem struct {
	canonical.ReplayItem
	ControlID, Type string
	// Only, when set, goes into the hl7bus-replay-destinations header of
	// a record sent into route: the destinations not skipped.
	Only []string
	// Reopens are the destinations a record sent into a stage (parse,
	// transform, route) goes to again. The job writes an item for each
	// (item/<job>/<message>/<destination>) beside the message's own:
	// the index projects those as the destination replayed, which opens
	// the destination's new cycle. Without it the re-send's outcome
	// (routed, ack_error, rejected) would rank below the old cycle's
	// delivered and the index would go on saying delivered.
	Reopens []string
}

// plan is a computed plan.
type plan struct {
	target        string
	rate          float64
	items         []planItem
	skipped       int64
	warnings      []api.ReplayWarning
	notReplayable int64
	problems      []api.ReplayProblem
}

// answer is the plan as the API shows it.
func (p *plan) answer() *api.ReplayPlan {
	a := &api.ReplayPlan{Count: int64(len(p.items)), Skipped: p.skipped, Sample: []api.ReplayItem{}, Warnings: p.warnings,
		NotReplayable: p.notReplayable, Problems: p.problems}
	for _, it := range p.items[:min(sampleSize, len(p.items))] {
		d := it.Destination
		if d == "" && len(it.Only) > 0 {
			d = strings.Join(it.Only, ",")
		}
		a.Sample = append(a.Sample, api.ReplayItem{MessageID: it.MessageID, ControlID: it.ControlID, Type: it.Type, Destination: d, TargetTopic: it.TargetTopic})
	}
	return a
}

func (p *plan) problem(message, dest, reason string) {
	p.notReplayable++
	if len(p.problems) < maxProblems {
		p.problems = append(p.problems, api.ReplayProblem{MessageID: message, Destination: dest, Reason: reason})
	}
}

// isFilter reports whether s selects by a filter (rather than by message
// IDs or dead letters). Destination is not a filter field: it narrows
// message IDs too ("this message to that destination").
func isFilter(s api.ReplaySelector) bool {
	return s.ControlID != "" || s.Interface != "" || s.Type != "" || s.Status != "" || !s.Since.IsZero() || !s.Until.IsZero()
}

// validate checks req and returns the job's rate and target ("" for dead
// letters: each goes back where it came from).
func (r *Replay) validate(req api.ReplayRequest) (target string, rate float64, err error) {
	s := req.Selector
	modes := 0
	for _, set := range []bool{len(s.MessageIDs) > 0, len(s.DeadLetters) > 0, isFilter(s)} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		return "", 0, &FieldError{Param: "selector", Msg: "give message_ids, dead_letters or a filter (since, until, control_id, interface, type, status)"}
	case modes > 1:
		return "", 0, &FieldError{Param: "selector", Msg: "give only one of message_ids, dead_letters or a filter"}
	case isFilter(s) && s.Since.IsZero():
		return "", 0, &FieldError{Param: "selector.since", Msg: "a filter needs since"}
	case !s.Until.IsZero() && s.Until.Before(s.Since):
		return "", 0, &FieldError{Param: "selector.until", Msg: "until is before since"}
	case len(s.MessageIDs) > r.limits.MaxMessages || len(s.DeadLetters) > r.limits.MaxMessages:
		return "", 0, tooMany(r.limits.MaxMessages)
	}
	for i, id := range s.MessageIDs {
		if err := checkMessageID(fmt.Sprintf("selector.message_ids[%d]", i), id); err != nil {
			return "", 0, err
		}
	}
	for i, id := range s.DeadLetters {
		if _, _, _, ok := parseDeadLetterID(id); !ok {
			return "", 0, &FieldError{Param: fmt.Sprintf("selector.dead_letters[%d]", i), Msg: "not a dead letter ID (<stage>:<partition>:<offset>)"}
		}
	}
	if s.Destination != "" && !slices.Contains(r.cfg.Destinations, s.Destination) {
		return "", 0, &FieldError{Param: "selector.destination", Msg: "no destination " + s.Destination}
	}
	if len(s.DeadLetters) > 0 {
		switch {
		case req.Target != "":
			return "", 0, &FieldError{Param: "target", Msg: "a dead letter goes back to the topic it came from; leave target empty"}
		case s.Destination != "":
			return "", 0, &FieldError{Param: "selector.destination", Msg: "a dead letter names its destination itself; leave destination empty"}
		}
	}
	target = req.Target
	switch {
	case len(s.DeadLetters) > 0:
	case target == "" && s.Destination != "":
		target = api.TargetDestinationPrefix + s.Destination
	case target == "":
		target = api.TargetRoute
	case target == api.TargetParse, target == api.TargetTransform, target == api.TargetRoute:
	case strings.HasPrefix(target, api.TargetDestinationPrefix):
		if d := strings.TrimPrefix(target, api.TargetDestinationPrefix); !slices.Contains(r.cfg.Destinations, d) {
			return "", 0, &FieldError{Param: "target", Msg: "no destination " + d}
		}
	default:
		return "", 0, &FieldError{Param: "target", Msg: "parse, transform, route or destination:<name>"}
	}
	rate = req.Rate
	switch {
	case rate < 0:
		return "", 0, &FieldError{Param: "rate", Msg: "must be positive"}
	case rate == 0:
		rate = r.limits.Rate
	case rate > r.limits.MaxRate:
		return "", 0, &FieldError{Param: "rate", Msg: fmt.Sprintf("above max_rate %g records/s", r.limits.MaxRate)}
	}
	return target, rate, nil
}

// checkMessageID refuses anything but an hl7bus message ID: a ULID (26
// characters of Crockford's base32, upper case, as ingress writes them),
// then a -<n> for each split (a batch's children, a transform's). The
// selector goes verbatim into the audit trail and the job record, so a
// patient's MRN or name typed where a message ID belongs must be refused,
// and the error never quotes it.
func checkMessageID(param, id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return &FieldError{Param: param, Msg: "empty"}
	case !isMessageID(id):
		return &FieldError{Param: param, Msg: "not an hl7bus message ID (a ULID, then -<n> for a split message)"}
	}
	return nil
}

// isMessageID reports whether id is a ULID followed by any number of
// -<digits> suffixes.
func isMessageID(id string) bool {
	const ulidLen = 26
	if len(id) < ulidLen || len(id) > maxMessageIDLen {
		return false
	}
	// A ULID's first character is at most 7: 26 characters hold 130
	// bits, the first two of them zero.
	if id[0] < '0' || id[0] > '7' {
		return false
	}
	for i := 1; i < ulidLen; i++ {
		if !strings.ContainsRune(crockford, rune(id[i])) {
			return false
		}
	}
	for rest := id[ulidLen:]; rest != ""; {
		if rest[0] != '-' {
			return false
		}
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 {
			return false
		}
		rest = rest[n:]
	}
	return true
}

// crockford is the alphabet of Crockford's base32 (no I, L, O, U).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// maxMessageIDLen bounds a message ID: a ULID and a few split suffixes.
const maxMessageIDLen = 64

func tooMany(n int) error {
	return &FieldError{Param: "selector", Msg: fmt.Sprintf("matches more than %d messages; narrow it", n)}
}

// plan validates req and computes what it sends. The same request over
// the same index gives the same items in the same order (oldest message
// first, dead letters in the order named), which is what lets a runner
// resume a job.
func (r *Replay) plan(ctx context.Context, req api.ReplayRequest) (*plan, error) {
	target, rate, err := r.validate(req)
	if err != nil {
		return nil, err
	}
	p := &plan{target: target, rate: rate}
	entries, err := r.cfg.Index.Select(ctx, req.Selector, r.limits.MaxMessages)
	if err != nil {
		return nil, fmt.Errorf("selecting messages: %w", err)
	}
	if len(entries) > r.limits.MaxMessages {
		return nil, tooMany(r.limits.MaxMessages)
	}
	if len(req.Selector.DeadLetters) > 0 {
		err = r.planDeadLetters(ctx, p, req.Selector.DeadLetters, req.Resend, entries)
	} else {
		err = r.planMessages(ctx, p, req, entries)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// planDeadLetters sends each dead letter's record back to the topic it
// came from. Unless resend, it skips a dead letter whose pair the index
// now shows delivered (its destination delivered; for a dead letter of no
// destination, the message delivered overall): a dead letter stays listed
// after the message got through another way (an earlier replay, a
// resend by hand), and sending it again would deliver it twice.
func (r *Replay) planDeadLetters(ctx context.Context, p *plan, ids []string, resend bool, entries []IndexEntry) error {
	byMessage := map[string]*IndexEntry{}
	for i := range entries {
		byMessage[entries[i].MessageID] = &entries[i]
	}
	seen := map[string]bool{}
	for i, id := range ids {
		dl, err := r.cfg.Index.DeadLetter(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return &FieldError{Param: fmt.Sprintf("selector.dead_letters[%d]", i), Msg: "no dead letter " + id}
		}
		if err != nil {
			return fmt.Errorf("looking up dead letter %s: %w", id, err)
		}
		stage, part, off, _ := parseDeadLetterID(id)
		it := planItem{ReplayItem: canonical.ReplayItem{MessageID: dl.MessageID, Destination: dl.Destination,
			TargetTopic: r.stageInput(stage, dl.Destination), DeadLetterID: id,
			Source: canonical.RecordRef{Topic: r.kc.DLQTopic(stage), Partition: part, Offset: off}}, ControlID: dl.ControlID}
		if stage == stageRoute && dl.Destination != "" {
			// One destination's rules failed in route: route re-runs that
			// destination only.
			it.Only = []string{dl.Destination}
		}
		// One record per (message, destination) and job: the item's key.
		k := itemMessage(it.ReplayItem) + "/" + it.Destination
		if seen[k] {
			continue
		}
		seen[k] = true
		if e := byMessage[dl.MessageID]; e != nil {
			if !resend && delivered(e, dl.Destination) {
				p.skipped++
				continue
			}
			it.Type = e.Type
			if dl.Destination != "" {
				if err := r.warn(ctx, p, e, dl.Destination); err != nil {
					return err
				}
			}
		}
		p.items = append(p.items, it)
	}
	return nil
}

// delivered reports whether the index shows e delivered to dest, or, for
// dest "", delivered overall.
func delivered(e *IndexEntry, dest string) bool {
	if dest == "" {
		return e.Status == statusDelivered
	}
	i := slices.IndexFunc(e.Destinations, func(d api.DestinationStatus) bool { return d.Name == dest })
	return i >= 0 && e.Destinations[i].Status == statusDelivered
}

// planMessages computes a message selector's items for the target.
func (r *Replay) planMessages(ctx context.Context, p *plan, req api.ReplayRequest, entries []IndexEntry) error {
	if ids := req.Selector.MessageIDs; len(ids) > 0 {
		found := map[string]bool{}
		for _, e := range entries {
			found[e.MessageID] = true
		}
		for _, id := range ids {
			if !found[id] {
				p.problem(id, "", "not in the index")
			}
		}
	}
	for i := range entries {
		e := &entries[i]
		var err error
		switch {
		case p.target == api.TargetParse:
			err = r.planStage(ctx, p, e, req.Resend, r.kc.Topic(kafka.TopicRaw), "")
		case p.target == api.TargetTransform:
			err = r.planStage(ctx, p, e, req.Resend, r.kc.Topic(kafka.TopicParsed), "")
		case p.target == api.TargetRoute:
			err = r.planStage(ctx, p, e, req.Resend, r.kc.Topic(kafka.TopicTransformed), "route")
		default:
			err = r.planDestination(ctx, p, e, req.Resend, strings.TrimPrefix(p.target, api.TargetDestinationPrefix))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// planStage re-sends a message's record of topic into the stage that
// reads it. Into route, the destinations already delivered are skipped
// through the replay destinations header; into parse or transform, which
// cannot carry the header on, the message is skipped only when every
// destination has it. Either way the item reopens every destination it goes
// to again (planItem.Reopens).
func (r *Replay) planStage(ctx context.Context, p *plan, e *IndexEntry, resend bool, topic, stage string) error {
	src, ok := recordOn(e, topic)
	if !ok {
		p.problem(e.MessageID, "", "no record of "+topic+" in the index")
		return nil
	}
	var all, send []string
	for _, d := range e.Destinations {
		all = append(all, d.Name)
		if resend || d.Status != statusDelivered {
			send = append(send, d.Name)
		}
	}
	skipped := len(all) - len(send)
	it := planItem{ReplayItem: canonical.ReplayItem{MessageID: e.MessageID, TargetTopic: topic, Source: src}, ControlID: e.ControlID, Type: e.Type}
	switch {
	case len(all) > 0 && len(send) == 0:
		p.skipped += int64(skipped)
		return nil
	case stage == "route" && skipped > 0:
		p.skipped += int64(skipped)
		it.Only = send
	case skipped > 0:
		// Parse and transform route the message afresh: every
		// destination gets it again.
		send = all
	}
	it.Reopens = send
	for _, d := range send {
		if err := r.warn(ctx, p, e, d); err != nil {
			return err
		}
	}
	p.items = append(p.items, it)
	return nil
}

// planDestination re-sends a message's out.<dest> record: the one the
// index points at, or the one an egress dead letter for dest holds.
func (r *Replay) planDestination(ctx context.Context, p *plan, e *IndexEntry, resend bool, dest string) error {
	i := slices.IndexFunc(e.Destinations, func(d api.DestinationStatus) bool { return d.Name == dest })
	if i < 0 {
		p.problem(e.MessageID, dest, "never routed to "+dest)
		return nil
	}
	if !resend && e.Destinations[i].Status == statusDelivered {
		p.skipped++
		return nil
	}
	topic := r.kc.OutTopic(dest)
	it := planItem{ReplayItem: canonical.ReplayItem{MessageID: e.MessageID, Destination: dest, TargetTopic: topic}, ControlID: e.ControlID, Type: e.Type}
	if src, ok := recordOn(e, topic); ok {
		it.Source = src
	} else if dl, ok := egressDeadLetter(e, dest); ok {
		stage, part, off, _ := parseDeadLetterID(dl.ID)
		it.Source = canonical.RecordRef{Topic: r.kc.DLQTopic(stage), Partition: part, Offset: off}
		it.DeadLetterID = dl.ID
	} else {
		p.problem(e.MessageID, dest, "no record of "+topic+" in the index")
		return nil
	}
	if err := r.warn(ctx, p, e, dest); err != nil {
		return err
	}
	p.items = append(p.items, it)
	return nil
}

// warn adds a warning when a newer message of e's patient already reached
// dest.
func (r *Replay) warn(ctx context.Context, p *plan, e *IndexEntry, dest string) error {
	if e.PatientKey == "" {
		return nil
	}
	newer, err := r.cfg.Index.NewerDelivered(ctx, e.PatientKey, dest, e.ReceivedAt, e.MessageID)
	if err != nil {
		return fmt.Errorf("checking for newer messages: %w", err)
	}
	if newer != "" {
		p.warnings = append(p.warnings, api.ReplayWarning{MessageID: e.MessageID, Destination: dest, NewerMessageID: newer,
			Reason: "a newer message of the same patient was already delivered to " + dest})
	}
	return nil
}

// recordOn returns e's first record on topic (the original, before any
// replay's copies).
func recordOn(e *IndexEntry, topic string) (canonical.RecordRef, bool) {
	var best *api.Record
	for i := range e.Records {
		rec := &e.Records[i]
		if rec.Topic == topic && (best == nil || rec.Partition == best.Partition && rec.Offset < best.Offset) {
			best = rec
		}
	}
	if best == nil {
		return canonical.RecordRef{}, false
	}
	return canonical.RecordRef{Topic: best.Topic, Partition: best.Partition, Offset: best.Offset}, true
}

// egressDeadLetter returns e's latest egress dead letter for dest.
func egressDeadLetter(e *IndexEntry, dest string) (api.DeadLetter, bool) {
	var best api.DeadLetter
	ok := false
	for _, dl := range e.DeadLetters {
		if dl.Stage == stageEgress && dl.Destination == dest && (!ok || dl.FailedAt.After(best.FailedAt)) {
			best, ok = dl, true
		}
	}
	return best, ok
}

// stageInput is the topic a stage's dead letter came from (for the plan's
// display: the runner sends to the dead letter's own source_topic).
func (r *Replay) stageInput(stage, dest string) string {
	switch stage {
	case stageParse:
		return r.kc.Topic(kafka.TopicRaw)
	case stageTransform:
		return r.kc.Topic(kafka.TopicParsed)
	case stageRoute:
		return r.kc.Topic(kafka.TopicTransformed)
	case stageEgress:
		if dest != "" {
			return r.kc.OutTopic(dest)
		}
	}
	return ""
}

// parseDeadLetterID splits <stage>:<partition>:<offset>.
func parseDeadLetterID(id string) (stage string, partition int32, offset int64, ok bool) {
	rest, o, found := cutLast(id, ":")
	if !found {
		return "", 0, 0, false
	}
	stage, pp, found := cutLast(rest, ":")
	if !found || stage == "" {
		return "", 0, 0, false
	}
	p, err1 := strconv.ParseInt(pp, 10, 32)
	off, err2 := strconv.ParseInt(o, 10, 64)
	if err1 != nil || err2 != nil || p < 0 || off < 0 {
		return "", 0, 0, false
	}
	return stage, int32(p), off, true
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
