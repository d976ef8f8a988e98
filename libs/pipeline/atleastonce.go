package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hl7bus/hl7bus/libs/logattr"
)

// Defaults of AtLeastOnceConfig.
const (
	// DefaultMaxPending and DefaultMaxPendingBytes bound the records
	// fetched and not finished: a key held for an hour must not make the
	// driver buffer the whole topic behind it. Past them it stops fetching
	// (Kafka keeps the rest).
	DefaultMaxPending      = 1000
	DefaultMaxPendingBytes = 64 << 20
	// DefaultDrain is how long the records in process when shutdown begins
	// may take to finish with their normal outcome (and be committed)
	// before their context is cancelled: a healthy receiver answers in
	// milliseconds, and a cancelled record is processed again after the
	// restart.
	DefaultDrain = 5 * time.Second
	// DefaultHoldMin and DefaultHoldMax pace the probes while the stage is
	// held (Hold): quick for a blip, then once a second, so that the stage
	// resumes within a second of its downstream coming back.
	DefaultHoldMin = 100 * time.Millisecond
	DefaultHoldMax = time.Second
	// commitTimeout bounds one offset commit.
	commitTimeout = 10 * time.Second
)

// OutcomeKind says what a Process call means for its record.
type OutcomeKind int

const (
	// Done: the record is finished (egress: delivered or dead-lettered);
	// the next record of its key may go and the commit point may pass it.
	Done OutcomeKind = iota
	// RetryLater: the record stays the head of its key until Outcome.At,
	// then is processed again; only its key waits.
	RetryLater
	// Hold: the record could not be processed because what it goes to
	// cannot be reached (egress: the destination is down). It goes back to
	// the front, and the driver processes nothing else: it probes with one
	// record at a time, paced by HoldMin doubling to HoldMax, until an
	// outcome with Resume set comes back.
	Hold
	// Aborted: the context ended while processing; the record is left
	// unfinished (processed again by the next owner).
	Aborted
	// Fatal: the record can neither be processed nor passed (egress: its
	// dead letter cannot be encoded); the driver stops and returns
	// Outcome.Err, without committing past it.
	Fatal
)

// Outcome is what the stage's Process reports for one record.
type Outcome struct {
	Kind OutcomeKind
	// At is when a RetryLater record may go again.
	At time.Time
	// Resume reports that the downstream was reached (egress: the
	// receiver answered, whatever it said): it ends a Hold.
	Resume bool
	// Err is why, for a Fatal outcome: Run returns it.
	Err error
}

// AtLeastOnceConfig configures AtLeastOnce.
type AtLeastOnceConfig[S any] struct {
	// Topic is the topic the client consumes (one topic per driver).
	Topic string
	// Log receives the driver's logs.
	Log *slog.Logger
	// Parallel is how many records are processed at once, each by its
	// own goroutine (slot 0..Parallel-1). Default 1.
	Parallel int
	// Process handles one try of one record. slot names the goroutine
	// calling it: calls with one slot are never concurrent, so a stage
	// can keep a resource per slot (egress: a sender, one connection).
	// ctx outlives Run's by Drain at shutdown.
	Process func(ctx context.Context, slot int, j *Job[S]) Outcome
	// Pending, when set, is told how many records are fetched and not
	// finished, after every step of the coordinator.
	Pending func(records int)
	// MaxPending and MaxPendingBytes bound the fetched, unfinished
	// records. Defaults DefaultMaxPending and DefaultMaxPendingBytes.
	MaxPending, MaxPendingBytes int
	// HoldMin and HoldMax pace the probes of a Hold. Defaults
	// DefaultHoldMin, DefaultHoldMax.
	HoldMin, HoldMax time.Duration
	// Drain bounds the records in process at shutdown. Default DefaultDrain.
	Drain time.Duration
}

// withDefaults fills the zero fields of c.
func (c AtLeastOnceConfig[S]) withDefaults() AtLeastOnceConfig[S] {
	if c.Parallel <= 0 {
		c.Parallel = 1
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.HoldMin <= 0 {
		c.HoldMin = DefaultHoldMin
	}
	if c.HoldMax < c.HoldMin {
		c.HoldMax = max(DefaultHoldMax, c.HoldMin)
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// AtLeastOnce is the at-least-once driver (egress: commit after the
// outcome). It consumes one topic in a group and processes records of
// different keys in parallel, up to Parallel at once, each key's records
// one at a time in offset order, and commits each partition only up to
// its lowest unfinished record. A record whose Process asks to retry later
// holds only its own key. DESIGN.md states the invariants and the
// goroutines.
//
// Build it with NewAtLeastOnce, give ClientOpts to the consumer's client
// (the driver must see revocations and no rebalance may happen between a
// poll and the hand-over of its records), then call Run once.
type AtLeastOnce[S any] struct {
	cfg AtLeastOnceConfig[S]
	// revokes carries the group's revocations to the coordinator;
	// coordDone is closed when the coordinator has returned.
	revokes   chan revokeReq
	coordDone chan struct{}
}

type revokeReq struct {
	parts []int32
	lost  bool
	reply chan map[int32]kgo.EpochOffset
}

// NewAtLeastOnce returns the driver of c.
func NewAtLeastOnce[S any](c AtLeastOnceConfig[S]) *AtLeastOnce[S] {
	return &AtLeastOnce[S]{cfg: c.withDefaults(), revokes: make(chan revokeReq), coordDone: make(chan struct{})}
}

// ClientOpts are the options the consumer's client must be built with.
func (a *AtLeastOnce[S]) ClientOpts() []kgo.Opt {
	return []kgo.Opt{
		// Records handed to the coordinator belong to the current
		// assignment: no rebalance between a poll and AllowRebalance.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { a.onRevoked(ctx, cl, m, false) }),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { a.onRevoked(ctx, cl, m, true) }),
	}
}

// Run consumes with cl (built with ClientOpts) until ctx ends or a record
// is Fatal, and commits how far every partition got before it returns. It
// does not close cl.
func (a *AtLeastOnce[S]) Run(ctx context.Context, cl *kgo.Client) error {
	if a.cfg.Process == nil {
		return ErrNoProcess
	}
	c := a.cfg
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Processing outlives ctx by up to Drain: shutdown drains it.
	procCtx, cancelProc := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProc()
	drain := context.AfterFunc(ctx, func() { time.AfterFunc(c.Drain, cancelProc) })
	defer drain()

	jobs := make(chan *Job[S], c.Parallel)
	results := make(chan result[S], c.Parallel)
	var workers sync.WaitGroup
	for slot := range c.Parallel {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				results <- result[S]{j: j, Outcome: c.Process(procCtx, slot, j)}
			}
		}()
	}
	room := make(chan int, 1)
	fetched := make(chan []*kgo.Record)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		a.poll(runCtx, cl, room, fetched)
	}()
	commits := make(chan map[int32]kgo.EpochOffset, 1)
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		for offs := range commits {
			a.commit(cl, offs)
		}
	}()

	final, fatal := a.coordinate(runCtx, jobs, results, room, fetched, commits)
	close(a.coordDone)
	stop()
	cancelProc()
	<-pollDone
	close(jobs)
	workers.Wait()
	close(commits)
	<-commitDone
	a.commit(cl, final)
	return fatal
}

// result is a worker goroutine's report on one job.
type result[S any] struct {
	j *Job[S]
	Outcome
}

// poll fetches when the coordinator asks (n records at most) and hands
// the records over before allowing a rebalance.
func (a *AtLeastOnce[S]) poll(ctx context.Context, cl *kgo.Client, room <-chan int, fetched chan<- []*kgo.Record) {
	for {
		var n int
		select {
		case n = <-room:
		case <-ctx.Done():
			return
		}
		fs := cl.PollRecords(ctx, n)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			a.cfg.Log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		select {
		case fetched <- fs.Records():
		case <-ctx.Done():
		}
		cl.AllowRebalance()
	}
}

// onRevoked takes partitions away from the coordinator and commits how far
// they got (lost partitions are no longer ours to commit).
func (a *AtLeastOnce[S]) onRevoked(_ context.Context, cl *kgo.Client, m map[string][]int32, lost bool) {
	parts := m[a.cfg.Topic]
	if len(parts) == 0 {
		return
	}
	req := revokeReq{parts: parts, lost: lost, reply: make(chan map[int32]kgo.EpochOffset, 1)}
	select {
	case a.revokes <- req:
	case <-a.coordDone:
		return // stopping: the final commit covers them
	}
	var offs map[int32]kgo.EpochOffset
	select {
	case offs = <-req.reply:
	case <-a.coordDone:
		return
	}
	if !lost {
		a.commit(cl, offs)
	}
}

// commit commits offsets of the topic synchronously.
func (a *AtLeastOnce[S]) commit(cl *kgo.Client, offs map[int32]kgo.EpochOffset) {
	if len(offs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{a.cfg.Topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				// The records are processed again after a restart or a
				// rebalance: at-least-once.
				a.cfg.Log.Warn("committing offsets", logattr.Error(err))
			}
		})
}

// coordinate owns the scheduler: it hands ready records to the worker
// goroutines, applies their outcomes, paces a Hold and asks for commits.
// It returns the final commit points when ctx ends (after the workers'
// last outcomes) or a record is Fatal.
func (a *AtLeastOnce[S]) coordinate(ctx context.Context, jobs chan<- *Job[S], results <-chan result[S], room chan<- int,
	fetched <-chan []*kgo.Record, commits chan map[int32]kgo.EpochOffset) (map[int32]kgo.EpochOffset, error) {
	c := a.cfg
	s := newScheduler[S]()
	var (
		inFlight int
		polling  bool
		stopping bool
		fatal    error
		held     bool
		probe    *Job[S] // the one record processed while held
		probeAt  time.Time
		holdWait = c.HoldMin
		toCommit map[int32]kgo.EpochOffset
		// revoking are revocations waiting for their partitions' jobs in
		// flight, counted in partFlight.
		revoking   []revokeReq
		partFlight = map[int32]int{}
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		s.wake(now)
		if !stopping {
			for inFlight < c.Parallel && s.hasReady() {
				if held && (probe != nil || now.Before(probeAt)) {
					break
				}
				j := s.next()
				if held {
					probe = j
				}
				inFlight++
				partFlight[j.Rec.Partition]++
				jobs <- j // buffered for every worker: never blocks
			}
			if !polling && s.pending < c.MaxPending && s.pendingBytes < c.MaxPendingBytes {
				room <- c.MaxPending - s.pending
				polling = true
			}
		}
		// A revocation completes once its partitions have nothing in
		// flight: what they finished meanwhile is committed, not
		// processed again by the next owner.
		for i := 0; i < len(revoking); i++ {
			req := revoking[i]
			busy := false
			for _, p := range req.parts {
				busy = busy || partFlight[p] > 0
			}
			if busy && !req.lost {
				continue
			}
			offs := s.revoke(req.parts)
			for _, p := range req.parts {
				delete(toCommit, p)
			}
			req.reply <- offs
			revoking = append(revoking[:i], revoking[i+1:]...)
			i--
		}
		if c.Pending != nil {
			c.Pending(s.pending)
		}
		for p, o := range s.commits() {
			if toCommit == nil {
				toCommit = map[int32]kgo.EpochOffset{}
			}
			toCommit[p] = o
		}
		if stopping && inFlight == 0 {
			return s.all(), fatal
		}
		wakeAt := s.nextWake()
		if held && probe == nil && (wakeAt.IsZero() || probeAt.Before(wakeAt)) {
			wakeAt = probeAt
		}
		var tick <-chan time.Time
		if !wakeAt.IsZero() && !stopping {
			timer.Reset(max(time.Until(wakeAt), 0))
			tick = timer.C
		}
		var commitOut chan<- map[int32]kgo.EpochOffset
		if len(toCommit) > 0 {
			commitOut = commits
		}
		var done <-chan struct{}
		if !stopping {
			done = ctx.Done()
		}
		select {
		case <-done:
			stopping = true
		case recs := <-fetched:
			polling = false
			for _, r := range recs {
				s.add(r)
			}
		case req := <-a.revokes:
			s.startRevoke(req.parts)
			revoking = append(revoking, req)
		case commitOut <- toCommit:
			toCommit = nil
		case <-tick:
		case r := <-results:
			inFlight--
			partFlight[r.j.Rec.Partition]--
			if r.j == probe {
				probe = nil
			}
			if r.Resume {
				held = false
			}
			switch r.Kind {
			case Done:
				s.done(r.j)
			case RetryLater:
				s.retryAt(r.j, r.At)
			case Hold:
				s.putBack(r.j)
				if !held {
					held, holdWait = true, c.HoldMin
				}
				probeAt = time.Now().Add(holdWait)
				holdWait = min(2*holdWait, c.HoldMax)
			case Fatal:
				fatal, stopping = r.Err, true
				if fatal == nil {
					fatal = errors.New("fatal outcome without an error")
				}
				fatal = fmt.Errorf("at-least-once driver: %s/%d@%d: %w", r.j.Rec.Topic, r.j.Rec.Partition, r.j.Rec.Offset, fatal)
			case Aborted:
			default:
				// An outcome this driver does not know must not lose the
				// record: it goes again at once.
				s.putBack(r.j)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}
