package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
	return &Control{kc: kc, serde: serde, audit: audit, log: log, topic: kc.Topic(kafka.TopicControl), dests: dests,
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

// Pause stops delivery to destination on every egress replica.
func (c *Control) Pause(ctx context.Context, p Principal, destination, reason string) error {
	return c.act(ctx, p, destination, ActionDestinationPause, reason, func(canonical.ControlState) (canonical.ControlState, error) {
		return canonical.ControlState{State: canonical.ControlPaused, Reason: reason}, nil
	})
}

// Resume lets delivery to destination go on.
func (c *Control) Resume(ctx context.Context, p Principal, destination, reason string) error {
	return c.act(ctx, p, destination, ActionDestinationResume, reason, func(canonical.ControlState) (canonical.ControlState, error) {
		return canonical.ControlState{State: canonical.ControlRunning, Reason: reason}, nil
	})
}

// Reset orders destination's consumer group to the first record at or
// after to; it answers ErrNotPaused unless the destination is paused (it
// stays paused: the operator resumes when ready).
func (c *Control) Reset(ctx context.Context, p Principal, destination string, to time.Time) error {
	return c.act(ctx, p, destination, ActionDestinationReset, to.UTC().Format(time.RFC3339Nano), func(cur canonical.ControlState) (canonical.ControlState, error) {
		if cur.State != canonical.ControlPaused {
			return canonical.ControlState{}, fmt.Errorf("resetting %s: %w", destination, ErrNotPaused)
		}
		id, err := newResetID()
		if err != nil {
			return canonical.ControlState{}, err
		}
		to := to.UTC()
		return canonical.ControlState{State: canonical.ControlPaused, Reason: cur.Reason, ResetID: id, ResetTo: &to}, nil
	})
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
