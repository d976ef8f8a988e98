package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// Audit actions of destination control.
const (
	ActionDestinationPause  = "destination.pause"
	ActionDestinationResume = "destination.resume"
	ActionDestinationReset  = "destination.reset"
)

// actionLogs are the log messages of the actions (the reason, an
// operator's free text, is not logged).
var actionLogs = map[string]string{
	ActionDestinationPause:  "destination paused",
	ActionDestinationResume: "destination resumed",
	ActionDestinationReset:  "destination reset ordered",
}

// ErrControlStopped answers a Pause, Resume, Reset or States once the
// Control's Run has returned (or failed to start).
var ErrControlStopped = errors.New("destination control is not running")

// ResetPendingError is the ErrResetPending (admin.go) of one destination
// and reset, returned by Control.Resume. Its text names the reset, its
// time and the partitions, and says how to go on: no PHI, no broker
// detail (the API answers it as is).
type ResetPendingError struct {
	Destination, ResetID string
	To                   time.Time
	// Partitions are the partitions of out.<destination> whose committed
	// offset does not carry the reset yet.
	Partitions []int32
}

// Error says which reset is pending where, and what the operator can do.
func (e *ResetPendingError) Error() string {
	return fmt.Sprintf("destination %s: reset %s (to %s) is not applied yet on partition(s) %s of its topic; "+
		"egress applies it when it next takes those partitions (is egress for %s running?): "+
		"resume once it is applied, or resume with force to drop the reset",
		e.Destination, e.ResetID, e.To.UTC().Format(time.RFC3339Nano), joinPartitions(e.Partitions), e.Destination)
}

// Is makes a *ResetPendingError an ErrResetPending.
func (e *ResetPendingError) Is(target error) bool { return target == ErrResetPending }

func joinPartitions(ps []int32) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.Itoa(int(p))
	}
	return strings.Join(parts, ",")
}

// ResetStatus is where a destination's latest reset stands.
type ResetStatus struct {
	// ID and To are the reset the latest state orders; ID is "" when it
	// orders none (the destination runs, or was paused and never reset).
	ID string
	To time.Time
	// Pending are the partitions of out.<destination> whose committed
	// offset in the destination's group does not carry the reset's marker
	// yet: none once egress has applied it everywhere.
	Pending []int32
}

// Applied reports whether the status names a reset applied on every
// partition.
func (s ResetStatus) Applied() bool { return s.ID != "" && len(s.Pending) == 0 }

// resetMarkerPrefix + reset ID is the commit metadata egress gives the
// offset a reset moved (services/egress, resetMarker): the proof, on the
// group's own commit, that this reset reached that partition.
const resetMarkerPrefix = "hl7bus-reset:"

// Waiting for egress to apply a reset: Reset waits up to
// defaultResetWait (a new member joins an emptied group only after the
// broker's group.initial.rebalance.delay.ms, 3 s by default), looking
// every resetPoll.
const (
	defaultResetWait = 20 * time.Second
	resetPoll        = 250 * time.Millisecond
)

// Control is the Controller on the compacted control topic: Run follows
// the topic from its start (no group) and keeps each destination's latest
// ControlState; Pause, Resume and Reset write one (acks=all, keyed by
// destination) and return once Run has read it back, so what a caller
// reads next (GET /destinations) already shows it.
//
// With an Auditor, every action is audited first: an action whose audit
// event cannot be written is refused, so the trail never misses a pause;
// should the control write fail after that, a second event with outcome
// error says so. The admin API passes none: its HTTP layer audits every
// action the same way, once, for every Controller.
type Control struct {
	kc    kafka.Config
	serde *canonical.Serde
	audit Auditor
	log   *slog.Logger
	topic string
	dests map[string]bool
	// resetWait bounds how long Reset waits for egress to apply it.
	resetWait time.Duration
	// ready is closed once Run has read the topic to the end it found at
	// start; stopped once Run has returned.
	ready, stopped chan struct{}
	// writeMu serialises this replica's actions, so a Reset cannot
	// interleave with a Resume between its check and its write.
	writeMu sync.Mutex

	mu     sync.Mutex
	prod   *kgo.Client // set by Run
	states map[string]canonical.ControlState
	// next is the offset after the last record Run has read, per
	// partition; progress is closed (and replaced) whenever it moves.
	next     map[int32]int64
	progress chan struct{}
}

var _ Controller = (*Control)(nil)

// NewController returns the Control of destinations (the configured
// names; others answer ErrNotFound). serde encodes the states; audit,
// when not nil, writes the actions' events. Run must run for the other
// methods to answer.
func NewController(kc kafka.Config, serde *canonical.Serde, audit Auditor, destinations []string, log *slog.Logger) (*Control, error) {
	if serde == nil || log == nil {
		return nil, errors.New("admin control: serde and logger are required")
	}
	dests := map[string]bool{}
	for i, d := range destinations {
		switch {
		case d == "":
			return nil, fmt.Errorf("admin control: destinations[%d]: empty name", i)
		case dests[d]:
			return nil, fmt.Errorf("admin control: destinations[%d]: %q twice", i, d)
		}
		dests[d] = true
	}
	return &Control{kc: kc, serde: serde, audit: audit, log: log, topic: kc.Topic(kafka.TopicControl), dests: dests, resetWait: defaultResetWait,
		ready: make(chan struct{}), stopped: make(chan struct{}),
		states: map[string]canonical.ControlState{}, next: map[int32]int64{}, progress: make(chan struct{})}, nil
}

// Run creates the control topic when missing, registers its schema and
// follows it until ctx ends.
func (c *Control) Run(ctx context.Context) error {
	defer close(c.stopped)
	prod, err := kafka.NewProducer(c.kc, c.log)
	if err != nil {
		return fmt.Errorf("admin control: producer: %w", err)
	}
	defer prod.Close()
	if err := kafka.EnsureCompactedTopics(ctx, prod, c.kc, c.topic); err != nil {
		return fmt.Errorf("admin control: %w", err)
	}
	if _, err := c.serde.Register(ctx, c.topic, schemas.Control); err != nil {
		return fmt.Errorf("admin control: %w", err)
	}
	cl, err := kafka.NewReader(c.kc, c.log, c.topic, true, false)
	if err != nil {
		return fmt.Errorf("admin control: reader: %w", err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, c.topic)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("admin control: end offsets of %s: %w", c.topic, err)
	}
	c.mu.Lock()
	c.prod = prod
	c.mu.Unlock()
	c.maybeReady(ends)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			c.log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		for _, r := range fs.Records() {
			st, ok := c.decode(ctx, r)
			if ctx.Err() != nil {
				return nil
			}
			c.mu.Lock()
			switch {
			case r.Value == nil:
				delete(c.states, string(r.Key))
			case ok:
				c.states[string(r.Key)] = *st
			}
			c.next[r.Partition] = r.Offset + 1
			close(c.progress)
			c.progress = make(chan struct{})
			c.mu.Unlock()
		}
		c.maybeReady(ends)
	}
}

// maybeReady closes ready once every partition is read up to ends.
func (c *Control) maybeReady(ends map[int32]int64) {
	select {
	case <-c.ready:
		return
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, end := range ends {
		if c.next[p] < end {
			return
		}
	}
	close(c.ready)
}

// decode reads one record's state, retrying while the registry cannot
// give its schema yet; a record that can never decode is skipped (false).
func (c *Control) decode(ctx context.Context, r *kgo.Record) (*canonical.ControlState, bool) {
	if r.Value == nil {
		return nil, false
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		st, err := pipeline.Decode[*canonical.ControlState](ctx, c.serde, r.Value)
		if err == nil {
			return st, true
		}
		if pipeline.IsPermanent(err) {
			c.log.Warn("skipping an undecodable control record", logattr.Offset(r.Offset), logattr.Error(err))
			return nil, false
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
	}
}

// waitReady waits until Run has caught up with the topic.
func (c *Control) waitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-c.stopped:
		return ErrControlStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// States returns every configured destination's state; one never set is
// running.
func (c *Control) States(ctx context.Context) (map[string]canonical.ControlState, error) {
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]canonical.ControlState, len(c.dests))
	for d := range c.dests {
		st, ok := c.states[d]
		if !ok {
			st = canonical.ControlState{Destination: d, State: canonical.ControlRunning}
		}
		out[d] = st
	}
	return out, nil
}

// Pause stops delivery to destination on every egress replica. Pausing a
// paused destination keeps the reset its state orders: a reset not yet
// applied must not be dropped by a second pause.
func (c *Control) Pause(ctx context.Context, p Principal, destination, reason string) error {
	return c.act(ctx, p, destination, ActionDestinationPause, reason, func(cur canonical.ControlState) (canonical.ControlState, error) {
		st := canonical.ControlState{State: canonical.ControlPaused, Reason: reason}
		if cur.State == canonical.ControlPaused {
			st.ResetID, st.ResetTo = cur.ResetID, cur.ResetTo
		}
		return st, nil
	})
}

// Resume lets delivery to destination go on. While the destination's
// latest reset is not applied on every partition it answers a
// *ResetPendingError (ErrResetPending), unless force: then the reset is
// dropped (egress applies a reset only while the destination is paused),
// and the partitions it had not reached go on from where they were.
func (c *Control) Resume(ctx context.Context, p Principal, destination, reason string, force bool) error {
	detail := reason
	if force {
		// The trail says the operator overrode a pending reset's check.
		detail = strings.TrimSpace("force " + reason)
	}
	return c.act(ctx, p, destination, ActionDestinationResume, detail, func(cur canonical.ControlState) (canonical.ControlState, error) {
		if cur.State == canonical.ControlPaused && cur.ResetID != "" && cur.ResetTo != nil {
			pending, err := c.pendingPartitions(ctx, destination, cur.ResetID)
			if err != nil {
				return canonical.ControlState{}, fmt.Errorf("resuming %s: %w", destination, err)
			}
			if len(pending) > 0 {
				if !force {
					return canonical.ControlState{}, &ResetPendingError{Destination: destination, ResetID: cur.ResetID, To: *cur.ResetTo, Partitions: pending}
				}
				c.log.Warn("destination resumed with force: its pending reset is dropped", logattr.Destination(destination),
					logattr.Actor(p.Actor))
			}
		}
		return canonical.ControlState{State: canonical.ControlRunning, Reason: reason}, nil
	})
}

// Reset orders destination's consumer group to the first record at or
// after to; it answers ErrNotPaused unless the destination is paused (it
// stays paused: the operator resumes when ready). Once the order is
// written it waits (up to resetWait, or until ctx ends or a later state
// replaces the order) for egress to apply it on every partition; it does
// not fail when egress has not: ResetStatus then says what is pending,
// and Resume refuses until it is applied.
func (c *Control) Reset(ctx context.Context, p Principal, destination string, to time.Time) error {
	var id string
	err := c.act(ctx, p, destination, ActionDestinationReset, to.UTC().Format(time.RFC3339Nano), func(cur canonical.ControlState) (canonical.ControlState, error) {
		if cur.State != canonical.ControlPaused {
			return canonical.ControlState{}, fmt.Errorf("resetting %s: %w", destination, ErrNotPaused)
		}
		var err error
		if id, err = newResetID(); err != nil {
			return canonical.ControlState{}, err
		}
		to := to.UTC()
		return canonical.ControlState{State: canonical.ControlPaused, Reason: cur.Reason, ResetID: id, ResetTo: &to}, nil
	})
	if err != nil {
		return err
	}
	c.waitApplied(ctx, destination, id)
	return nil
}

// waitApplied waits until reset id of destination is applied on every
// partition, resetWait has passed, ctx has ended or the latest state no
// longer orders id. Errors looking it up are logged and waited through:
// the order is written, and ResetStatus answers what stands.
func (c *Control) waitApplied(ctx context.Context, destination, id string) {
	ctx, cancel := context.WithTimeout(ctx, c.resetWait)
	defer cancel()
	for {
		c.mu.Lock()
		cur := c.states[destination]
		c.mu.Unlock()
		if cur.ResetID != id || cur.State != canonical.ControlPaused {
			return
		}
		pending, err := c.pendingPartitions(ctx, destination, id)
		switch {
		case err == nil && len(pending) == 0:
			c.log.Info("destination reset applied", logattr.Destination(destination))
			return
		case err != nil && ctx.Err() == nil:
			c.log.Warn("looking up whether a reset is applied", logattr.Destination(destination), logattr.Error(err))
		}
		select {
		case <-ctx.Done():
			c.log.Warn("destination reset not applied yet; resume waits for it", logattr.Destination(destination))
			return
		case <-c.stopped:
			return
		case <-time.After(resetPoll):
		}
	}
}

// ResetStatus says whether the reset destination's latest state orders
// is applied on every partition of out.<destination>.
func (c *Control) ResetStatus(ctx context.Context, destination string) (ResetStatus, error) {
	if !c.dests[destination] {
		return ResetStatus{}, fmt.Errorf("destination %q: %w", destination, ErrNotFound)
	}
	if err := c.waitReady(ctx); err != nil {
		return ResetStatus{}, err
	}
	c.mu.Lock()
	cur := c.states[destination]
	c.mu.Unlock()
	// A running destination's state carries no reset: egress applies
	// one only while paused.
	if cur.State != canonical.ControlPaused || cur.ResetID == "" || cur.ResetTo == nil {
		return ResetStatus{}, nil
	}
	pending, err := c.pendingPartitions(ctx, destination, cur.ResetID)
	if err != nil {
		return ResetStatus{}, fmt.Errorf("reset status of %s: %w", destination, err)
	}
	return ResetStatus{ID: cur.ResetID, To: *cur.ResetTo, Pending: pending}, nil
}

// pendingPartitions lists the partitions of out.<destination> whose
// committed offset in the group <prefix>egress.<destination> does not
// carry reset id's marker. A topic that does not exist has no partition
// to reset (and no record to send again).
func (c *Control) pendingPartitions(ctx context.Context, destination, id string) ([]int32, error) {
	c.mu.Lock()
	prod := c.prod
	c.mu.Unlock()
	if prod == nil {
		return nil, ErrControlStopped
	}
	adm := kadm.NewClient(prod)
	topic := c.kc.OutTopic(destination)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if td.Err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, td.Err)
	}
	group := c.kc.TopicPrefix + "egress." + destination
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		// No egress ever committed: nothing is applied yet.
		committed = nil
	case err != nil:
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	marker := resetMarkerPrefix + id
	var pending []int32
	for p := range td.Partitions {
		if o, ok := committed.Lookup(topic, p); !ok || o.Metadata != marker {
			pending = append(pending, p)
		}
	}
	slices.Sort(pending)
	return pending, nil
}

// act checks destination, derives its next state from the current one,
// audits, writes the state and waits until Run has read it back.
func (c *Control) act(ctx context.Context, p Principal, destination, action, detail string,
	next func(cur canonical.ControlState) (canonical.ControlState, error)) error {
	if !c.dests[destination] {
		return fmt.Errorf("destination %q: %w", destination, ErrNotFound)
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.mu.Lock()
	cur, ok := c.states[destination]
	prod := c.prod
	c.mu.Unlock()
	if !ok {
		cur = canonical.ControlState{Destination: destination, State: canonical.ControlRunning}
	}
	st, err := next(cur)
	if err != nil {
		return err
	}
	st.Destination, st.Actor, st.At = destination, p.Actor, time.Now().UTC()
	ev := canonical.AuditEvent{Actor: p.Actor, Role: string(p.Role), Auth: p.Auth, Action: action,
		Resource: "destination/" + destination, Outcome: canonical.AuditOK, Detail: detail}
	if c.audit != nil {
		if err := c.audit.Audit(ctx, ev); err != nil {
			return fmt.Errorf("%s %s refused: %w", action, destination, err)
		}
	}
	if err := c.write(ctx, prod, st); err != nil {
		if c.audit != nil {
			ev.Outcome, ev.EventID, ev.At = canonical.AuditError, "", time.Time{}
			if aerr := c.audit.Audit(context.WithoutCancel(ctx), ev); aerr != nil {
				c.log.Error("auditing a failed control write", logattr.Destination(destination), logattr.Error(aerr))
			}
		}
		return fmt.Errorf("%s %s: %w", action, destination, err)
	}
	c.log.Info(actionLogs[action], logattr.Destination(destination), logattr.Actor(p.Actor))
	return nil
}

// write produces st and waits until Run has read past it.
func (c *Control) write(ctx context.Context, prod *kgo.Client, st canonical.ControlState) error {
	v, err := c.serde.Encode(&st)
	if err != nil {
		return fmt.Errorf("encoding the control state: %w", err)
	}
	r := &kgo.Record{Topic: c.topic, Key: []byte(st.Destination), Value: v}
	if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("writing the control state: %w", err)
	}
	for {
		c.mu.Lock()
		seen := c.next[r.Partition] > r.Offset
		progress := c.progress
		c.mu.Unlock()
		if seen {
			return nil
		}
		select {
		case <-progress:
		case <-c.stopped:
			return ErrControlStopped
		case <-ctx.Done():
			return fmt.Errorf("waiting to read the control state back: %w", ctx.Err())
		}
	}
}

// newResetID is a random reset ID: egress applies each one once.
func newResetID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reset id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// endOffsets lists topic's end offsets, retrying while a just-created
// topic is not known everywhere yet.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	for {
		res, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = res.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			res.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
