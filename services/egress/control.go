package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// errPaused is the Hold of a record whose destination an operator paused:
// no attempt, no dead letter, and the destination is not marked down.
var errPaused = errors.New("destination paused")

// pauseProbe bounds how long a held record waits for a resume inside one
// try before it goes back to the driver (which tries it again after
// HoldMin..HoldMax): long enough that a resume is seen at once, short
// enough that a revocation or shutdown waiting for it is not held up.
const pauseProbe = 500 * time.Millisecond

// control follows the compacted control topic (canonical.ControlState
// keyed by destination) from its start, without a group, and keeps the
// latest state of every destination. ready is closed once it has read
// the topic up to the end offsets it found at start: no worker starts
// before, so a destination paused before a restart stays paused.
type control struct {
	kc    kafka.Config
	serde *canonical.Serde
	log   *slog.Logger
	topic string
	ready chan struct{}

	mu     sync.Mutex
	states map[string]canonical.ControlState
	// changed holds, per destination, a channel closed at its next
	// change (and then replaced).
	changed map[string]chan struct{}
}

func newControl(kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *control {
	return &control{kc: kc, serde: serde, log: log, topic: kc.Topic(kafka.TopicControl), ready: make(chan struct{}),
		states: map[string]canonical.ControlState{}, changed: map[string]chan struct{}{}}
}

// state returns dest's latest state (ControlRunning when none was ever
// set) and a channel closed when it changes.
func (c *control) state(dest string) (canonical.ControlState, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[dest]
	if !ok {
		st = canonical.ControlState{Destination: dest, State: canonical.ControlRunning}
	}
	ch := c.changed[dest]
	if ch == nil {
		ch = make(chan struct{})
		c.changed[dest] = ch
	}
	return st, ch
}

// paused reports whether dest is paused now.
func (c *control) paused(dest string) bool {
	st, _ := c.state(dest)
	return st.State == canonical.ControlPaused
}

// set records dest's new state (nil: the record was deleted, dest runs)
// and wakes whoever waits on it.
func (c *control) set(dest string, st *canonical.ControlState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == nil {
		delete(c.states, dest)
	} else {
		c.states[dest] = *st
	}
	if ch := c.changed[dest]; ch != nil {
		close(ch)
		delete(c.changed, dest)
	}
}

// run follows the topic until ctx ends. The topic must exist (Service.Run
// ensures it).
func (c *control) run(ctx context.Context) error {
	cl, err := kafka.NewReader(c.kc, c.log, c.topic, true, false)
	if err != nil {
		return fmt.Errorf("egress: control reader: %w", err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, c.topic)
	if err != nil {
		return fmt.Errorf("egress: control topic end offsets: %w", err)
	}
	next := map[int32]int64{}
	caughtUp := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	if caughtUp() {
		close(c.ready)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			c.log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		for _, r := range fs.Records() {
			if err := c.apply(ctx, r); err != nil {
				return nil // ctx ended
			}
			next[r.Partition] = r.Offset + 1
		}
		select {
		case <-c.ready:
		default:
			if caughtUp() {
				close(c.ready)
			}
		}
	}
}

// apply takes one control record. A record the registry cannot give the
// schema of yet is retried (its state matters); one that can never decode
// is skipped with a warning. It returns an error only when ctx ended.
func (c *control) apply(ctx context.Context, r *kgo.Record) error {
	dest := string(r.Key)
	if r.Value == nil {
		c.set(dest, nil)
		return nil
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		st, err := pipeline.Decode[*canonical.ControlState](ctx, c.serde, r.Value)
		if err == nil {
			c.set(dest, st)
			return nil
		}
		if pipeline.IsPermanent(err) {
			c.log.Warn("skipping an undecodable control record", logattr.Destination(dest),
				logattr.Topic(r.Topic), logattr.Partition(r.Partition), logattr.Offset(r.Offset), logattr.Error(err))
			return nil
		}
		c.log.Warn("cannot decode control record yet; retrying", logattr.Offset(r.Offset), logattr.Error(err), logattr.Backoff(wait))
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// endOffsets lists topic's end offsets, retrying while the just-created
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
		if ctx.Err() != nil {
			return nil, err
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// resetMarker is the commit metadata of an offset a reset committed: it
// is how a replica, or a restarted one, knows that reset id was already
// applied to a partition (DESIGN.md, "Pause, resume, reset").
func resetMarker(id string) string { return "hl7bus-reset:" + id }

// resetTimeout bounds the look-ups and the commit of one reset;
// resetRetry is how long a worker whose reset failed waits before its
// next epoch (a new member, a new assignment) tries again.
const (
	resetTimeout = 10 * time.Second
	resetRetry   = 2 * time.Second
)

// applyReset moves the group's committed offsets of parts (partitions of
// the worker's topic this client was just assigned) to the first record at
// or after st.ResetTo, skipping partitions whose committed offset already
// carries st's marker. It runs in OnPartitionsAssigned, before the client
// fetches the committed offsets it starts from: the commit is where it
// starts.
func (w *worker) applyReset(ctx context.Context, cl *kgo.Client, group string, st canonical.ControlState, parts []int32) error {
	ctx, cancel := context.WithTimeout(ctx, resetTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("fetching committed offsets: %w", err)
	}
	marker := resetMarker(st.ResetID)
	var todo []int32
	for _, p := range parts {
		if o, ok := committed.Lookup(w.topic, p); ok && o.Metadata == marker {
			continue
		}
		todo = append(todo, p)
	}
	if len(todo) == 0 {
		return nil
	}
	listed, err := adm.ListOffsetsAfterMilli(ctx, st.ResetTo.UnixMilli(), w.topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("listing offsets after %v: %w", st.ResetTo, err)
	}
	offs := map[int32]kgo.EpochOffset{}
	for _, p := range todo {
		o, ok := listed.Lookup(w.topic, p)
		if !ok {
			return fmt.Errorf("no offset listed for partition %d", p)
		}
		offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o.Offset}
	}
	// The marker rides on the commit itself: the offset and the proof
	// that this reset moved it are one write.
	cctx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				req.Topics[i].Partitions[j].Metadata = &marker
			}
		}
		return nil
	})
	var commitErr error
	cl.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{w.topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				commitErr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil && commitErr == nil {
						commitErr = fmt.Errorf("partition %d: %w", p.Partition, e)
					}
				}
			}
		})
	if commitErr != nil {
		return fmt.Errorf("committing the reset offsets: %w", commitErr)
	}
	for p, o := range offs {
		w.log.Info("consumer group reset", logattr.Group(group), logattr.Partition(p), logattr.Offset(o.Offset))
	}
	return nil
}

// pauseClock keeps how long the destination has been paused, so that a
// message's retry time does not count a pause (as it does not count an
// outage).
type pauseClock struct {
	mu    sync.Mutex
	since time.Time // zero while running
	total time.Duration
}

func (c *pauseClock) set(paused bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case paused && c.since.IsZero():
		c.since = now
	case !paused && !c.since.IsZero():
		c.total += now.Sub(c.since)
		c.since = time.Time{}
	}
}

func (c *pauseClock) elapsed(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.since.IsZero() {
		return c.total
	}
	return c.total + now.Sub(c.since)
}

// holdIfPaused reports whether the destination is paused, waiting up to
// pauseProbe for a resume first (a resumed destination's held record then
// goes at once).
func (w *worker) holdIfPaused(ctx context.Context) bool {
	st, ch := w.s.ctl.state(w.d.Name)
	if st.State != canonical.ControlPaused {
		return false
	}
	t := time.NewTimer(pauseProbe)
	defer t.Stop()
	select {
	case <-ch:
		return w.s.ctl.paused(w.d.Name)
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}
