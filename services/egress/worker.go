package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// Limits of the coordinator (see DESIGN.md).
const (
	// maxPending and maxPendingBytes bound the records fetched and not
	// finished: a key held for an hour must not make the worker buffer the
	// whole topic behind it. Past them the worker stops fetching (Kafka
	// keeps the rest).
	maxPending      = 1000
	maxPendingBytes = 64 << 20
	// probeMin and probeMax pace the retries of a destination that cannot
	// be reached: quick for a blip, then once a second, so that delivery
	// resumes within a second of the destination coming back.
	probeMin = 100 * time.Millisecond
	probeMax = time.Second
	// commitTimeout bounds one offset commit.
	commitTimeout = 10 * time.Second
	// drainTimeout is how long the sends in flight when shutdown begins
	// may take to finish with their normal outcome (and be committed)
	// before they are cancelled: a healthy receiver answers in
	// milliseconds, and a cancelled send is sent again after the restart.
	drainTimeout = 5 * time.Second
)

// worker delivers one destination's messages: a coordinator goroutine owns
// the scheduler; a poller fetches; d.Connections sender goroutines each own
// a Sender built by the destination's adapter.
type worker struct {
	s             *Service
	d             Destination
	adapter       Adapter
	prod          *kgo.Client
	dlq, delivery string
	topic         string
	log           *slog.Logger
	tracer        *kotel.Tracer
	outage        outage

	// revokes carries the group's revocations to the coordinator;
	// coordDone is closed when the coordinator has returned.
	revokes   chan revokeReq
	coordDone chan struct{}
}

func newWorker(s *Service, d Destination, a Adapter, prod *kgo.Client, dlq, delivery string) *worker {
	return &worker{s: s, d: d, adapter: a, prod: prod, dlq: dlq, delivery: delivery, topic: s.kc.OutTopic(d.Name),
		log: s.log.With(logattr.Destination(d.Name)), tracer: kafka.Instrument(s.tel, "egress-"+d.Name).Tracer,
		revokes: make(chan revokeReq), coordDone: make(chan struct{})}
}

type revokeReq struct {
	parts []int32
	lost  bool
	reply chan map[int32]kgo.EpochOffset
}

// outage keeps how long the destination has been unreachable, so that a
// message's retry time does not count an outage.
type outage struct {
	mu    sync.Mutex
	since time.Time // zero while reachable
	total time.Duration
}

func (o *outage) set(down bool, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case down && o.since.IsZero():
		o.since = now
	case !down && !o.since.IsZero():
		o.total += now.Sub(o.since)
		o.since = time.Time{}
	}
}

// elapsed is the total time spent unreachable up to now.
func (o *outage) elapsed(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return o.total
	}
	return o.total + now.Sub(o.since)
}

func (w *worker) run(ctx context.Context) error {
	group := w.s.kc.TopicPrefix + "egress." + w.d.Name
	inst := kafka.Instrument(w.s.tel, "egress-"+w.d.Name)
	w.tracer = inst.Tracer
	opts := append(inst.Opts(),
		// Records handed to the coordinator belong to the current
		// assignment: no rebalance between a poll and AllowRebalance.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { w.onRevoked(ctx, cl, m, false) }),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) { w.onRevoked(ctx, cl, m, true) }))
	snds := make([]Sender, 0, w.d.Connections)
	for range w.d.Connections {
		snd, err := w.adapter.NewSender(w.d, w.log)
		if err != nil {
			for _, s := range snds {
				_ = s.Close()
			}
			return fmt.Errorf("egress %s: building a %s sender: %w", w.d.Name, w.d.Protocol, err)
		}
		snds = append(snds, snd)
	}
	cl, err := kafka.NewConsumer(w.s.kc, w.log, group, []string{w.topic}, opts...)
	if err != nil {
		for _, s := range snds {
			_ = s.Close()
		}
		return fmt.Errorf("egress %s: consumer: %w", w.d.Name, err)
	}
	defer cl.Close()
	w.log.Info("delivering", logattr.Address(w.d.Address), logattr.Group(group))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// Sends outlive ctx by up to drainTimeout: shutdown drains them.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	drain := context.AfterFunc(ctx, func() { time.AfterFunc(drainTimeout, cancelSends) })
	defer drain()
	jobs := make(chan *job, w.d.Connections)
	results := make(chan result, w.d.Connections)
	var senders sync.WaitGroup
	for _, snd := range snds {
		senders.Add(1)
		go func() {
			defer senders.Done()
			w.send(sendCtx, snd, jobs, results)
		}()
	}
	room := make(chan int, 1)
	fetched := make(chan []*kgo.Record)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		w.poll(runCtx, cl, room, fetched)
	}()
	commits := make(chan map[int32]kgo.EpochOffset, 1)
	commitDone := make(chan struct{})
	go func() {
		defer close(commitDone)
		for offs := range commits {
			w.commit(cl, offs)
		}
	}()

	final, fatal := w.coordinate(runCtx, jobs, results, room, fetched, commits)
	close(w.coordDone)
	stop()
	cancelSends()
	<-pollDone
	close(jobs)
	senders.Wait()
	close(commits)
	<-commitDone
	w.commit(cl, final)
	if fatal != nil {
		return fmt.Errorf("egress %s: %w", w.d.Name, fatal)
	}
	return nil
}

// poll fetches when the coordinator asks (n records at most) and hands
// the records over before allowing a rebalance.
func (w *worker) poll(ctx context.Context, cl *kgo.Client, room <-chan int, fetched chan<- []*kgo.Record) {
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
			w.log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
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
func (w *worker) onRevoked(ctx context.Context, cl *kgo.Client, m map[string][]int32, lost bool) {
	parts := m[w.topic]
	if len(parts) == 0 {
		return
	}
	req := revokeReq{parts: parts, lost: lost, reply: make(chan map[int32]kgo.EpochOffset, 1)}
	select {
	case w.revokes <- req:
	case <-w.coordDone:
		return // stopping: the final commit covers them
	}
	var offs map[int32]kgo.EpochOffset
	select {
	case offs = <-req.reply:
	case <-w.coordDone:
		return
	}
	if !lost {
		w.commit(cl, offs)
	}
}

// commit commits offsets of the destination's topic synchronously.
func (w *worker) commit(cl *kgo.Client, offs map[int32]kgo.EpochOffset) {
	if len(offs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{w.topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				// The records are delivered again after a restart or a
				// rebalance: at-least-once.
				w.log.Warn("committing offsets", logattr.Error(err))
			}
		})
}

// coordinate owns the scheduler: it hands ready records to the senders,
// applies their results, paces a destination that is down and asks for
// commits. It returns the final commit points when ctx ends (after the
// senders' last results) or a sender reports a fatal error.
func (w *worker) coordinate(ctx context.Context, jobs chan<- *job, results <-chan result, room chan<- int,
	fetched <-chan []*kgo.Record, commits chan map[int32]kgo.EpochOffset) (map[int32]kgo.EpochOffset, error) {
	s := newScheduler()
	var (
		inFlight  int
		polling   bool
		stopping  bool
		fatal     error
		down      bool
		probe     *job // the one message sent while the destination is down
		probeAt   time.Time
		probeWait = probeMin
		toCommit  map[int32]kgo.EpochOffset
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
			for inFlight < w.d.Connections && s.hasReady() {
				if down && (probe != nil || now.Before(probeAt)) {
					break
				}
				j := s.next()
				if down {
					probe = j
				}
				inFlight++
				partFlight[j.rec.Partition]++
				jobs <- j // buffered for every sender: never blocks
			}
			if !polling && s.pending < maxPending && s.pendingBytes < maxPendingBytes {
				room <- maxPending - s.pending
				polling = true
			}
		}
		// A revocation completes once its partitions have nothing in
		// flight: what they delivered meanwhile is committed, not sent
		// again by the next owner.
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
		w.s.pending.WithLabelValues(w.d.Name).Set(float64(s.pending))
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
		if down && probe == nil && (wakeAt.IsZero() || probeAt.Before(wakeAt)) {
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
		case req := <-w.revokes:
			s.startRevoke(req.parts)
			revoking = append(revoking, req)
		case commitOut <- toCommit:
			toCommit = nil
		case <-tick:
		case r := <-results:
			inFlight--
			partFlight[r.j.rec.Partition]--
			if r.j == probe {
				probe = nil
			}
			now := time.Now()
			if r.reached {
				w.s.up.WithLabelValues(w.d.Name).Set(1)
				if down {
					down = false
					w.outage.set(false, now)
					w.log.Info("destination reachable again; resuming delivery")
				}
			}
			switch r.kind {
			case finishedResult:
				s.done(r.j)
			case retryResult:
				s.retryAt(r.j, r.at)
			case notSentResult:
				s.putBack(r.j)
				if !down {
					down, probeWait = true, probeMin
					w.outage.set(true, now)
					w.s.up.WithLabelValues(w.d.Name).Set(0)
					w.log.Warn("destination unreachable; holding its messages (no attempt counted)", logattr.Error(r.err))
				}
				probeAt = now.Add(probeWait)
				probeWait = min(2*probeWait, probeMax)
			case fatalResult:
				fatal, stopping = r.err, true
			case abortedResult:
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

// result is a sender's report on one job.
type result struct {
	j    *job
	kind resultKind
	// at is when a job to retry may go again.
	at time.Time
	// reached is true when the message reached the receiver (whatever it
	// answered): the destination is up.
	reached bool
	err     error
}

type resultKind int

const (
	finishedResult resultKind = iota // delivered or dead-lettered
	retryResult                      // try again at result.at
	notSentResult                    // the destination cannot be reached
	abortedResult                    // shutting down
	fatalResult                      // neither deliverable nor dead-letterable
)

// process makes one attempt at j's record and reports what it means.
func (w *worker) process(ctx context.Context, j *job, snd Sender) result {
	rec := j.rec
	// The deliver span continues the message's trace from its headers.
	_, span := w.tracer.WithProcessSpan(rec)
	defer span.End()
	ctx = trace.ContextWithSpan(ctx, span)
	span.SetAttributes(attribute.String("hl7bus.destination", w.d.Name))
	if j.out == nil {
		out, err := pipeline.Decode[*canonical.Out](ctx, w.s.serde, rec.Value)
		if err != nil {
			if pipeline.IsPermanent(err) {
				return w.deadLetter(ctx, j, pipeline.Ident{}, canonical.ErrorPermanent, err.Error(), 1, false)
			}
			if ctx.Err() != nil {
				return result{j: j, kind: abortedResult}
			}
			// The registry cannot give the schema yet: hold the key (like
			// a destination that is down, this is no attempt).
			j.holds++
			wait := w.d.Retry.backoff(j.holds)
			w.log.Warn("cannot decode record yet; retrying", logattr.Error(err), logattr.Backoff(wait))
			return result{j: j, kind: retryResult, at: time.Now().Add(wait)}
		}
		j.out = out
	}
	out := j.out
	span.SetAttributes(attribute.String("hl7bus.message_id", out.MessageID))
	log := w.log.With(logattr.MessageID(out.MessageID), logattr.ControlID(out.ControlID))
	res := snd.Send(ctx, out)
	if ctx.Err() != nil {
		return result{j: j, kind: abortedResult}
	}
	if res.Verdict == NotSent {
		err := res.Err
		if err == nil {
			err = errors.New(res.Reason)
		}
		return result{j: j, kind: notSentResult, err: err}
	}
	if res.Answered {
		w.s.latency.WithLabelValues(w.d.Name).Observe(res.RoundTrip.Seconds())
	}
	attempt := j.attempts + 1
	now := time.Now()
	d := &canonical.Delivery{MessageID: out.MessageID, ControlID: out.ControlID, Destination: w.d.Name,
		Attempt: attempt, AckCode: res.Code, LatencyMS: float64(res.RoundTrip.Microseconds()) / 1000, At: now}
	id := pipeline.Ident{MessageID: out.MessageID, ControlID: out.ControlID}
	switch res.Verdict {
	case Delivered:
		d.Outcome = canonical.OutcomeDelivered
		w.receipt(d)
		w.s.endToEnd.WithLabelValues(w.d.Name).Observe(time.Since(out.ReceivedAt).Seconds())
		w.s.metrics.Records(stageName, pipeline.OutcomeOK, 1)
		return result{j: j, kind: finishedResult, reached: true}
	case Rejected:
		w.s.failures.WithLabelValues(w.d.Name, res.Class).Inc()
		d.Outcome, d.Error = canonical.OutcomeDeadLettered, res.Reason
		w.receipt(d)
		log.Warn("receiver rejected the message", logattr.Ack(res.Code))
		return w.deadLetter(ctx, j, id, canonical.ErrorPermanent, res.Reason, attempt, true)
	}
	// Failed, or a verdict this worker does not know: an attempt that
	// counts, so a sender's bug cannot make a message wait for ever.
	w.s.failures.WithLabelValues(w.d.Name, res.Class).Inc()
	j.attempts = attempt
	if j.firstFailure.IsZero() {
		j.firstFailure, j.downAtFirst = now, w.outage.elapsed(now)
	}
	retried := now.Sub(j.firstFailure) - (w.outage.elapsed(now) - j.downAtFirst)
	reason := res.Reason
	if attempt >= w.d.Retry.MaxAttempts || retried >= w.d.Retry.MaxRetryTime {
		if attempt < w.d.Retry.MaxAttempts {
			reason += fmt.Sprintf(" (still failing after %v, retry.max_retry_time)", retried.Round(time.Second))
		}
		d.Outcome, d.Error = canonical.OutcomeDeadLettered, reason
		w.receipt(d)
		return w.deadLetter(ctx, j, id, canonical.ErrorTransient, reason, attempt, true)
	}
	wait := w.d.Retry.backoff(attempt)
	d.Outcome, d.Error = canonical.OutcomeRetry, reason
	w.receipt(d)
	log.Info("delivery failed; will retry", logattr.Attempt(attempt), logattr.Reason(reason), logattr.Backoff(wait))
	return result{j: j, kind: retryResult, at: now.Add(wait), reached: true}
}

// receipt writes a delivery record; receipts are best effort and never hold
// back delivery.
func (w *worker) receipt(d *canonical.Delivery) {
	w.s.attempts.WithLabelValues(w.d.Name, d.Outcome).Inc()
	v, err := w.s.serde.Encode(d)
	if err != nil {
		w.log.Error("encoding delivery record", logattr.Error(err))
		return
	}
	w.prod.Produce(context.Background(), &kgo.Record{Topic: w.delivery, Key: []byte(d.MessageID), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			w.log.Warn("writing delivery record", logattr.Error(err))
		}
	})
}

// deadLetter writes j's record to dlq.egress, retrying until Kafka has it:
// a record must never be committed past without its dead letter.
func (w *worker) deadLetter(ctx context.Context, j *job, id pipeline.Ident, class, reason string, attempts int, reached bool) result {
	first := j.firstFailure
	if first.IsZero() {
		first = time.Now()
	}
	dl := pipeline.DeadLetter(stageName, id, j.rec, class, reason, attempts, first, time.Now())
	out, err := pipeline.DeadLetterRecord(w.s.serde, w.dlq, j.rec, dl)
	if err != nil {
		// Without its dead letter the record cannot be passed: stop, so
		// it is processed again after a restart instead of being lost.
		return result{j: j, kind: fatalResult, err: err}
	}
	for {
		err := w.prod.ProduceSync(ctx, out).FirstErr()
		if err == nil {
			w.s.metrics.DeadLettered(stageName, 1)
			w.s.metrics.Records(stageName, pipeline.OutcomeDeadLettered, 1)
			return result{j: j, kind: finishedResult, reached: reached}
		}
		w.log.Error("writing dead letter; retrying", logattr.Error(err))
		if !sleep(ctx, time.Second) {
			return result{j: j, kind: abortedResult}
		}
		// ProduceSync sets the record's fields; a fresh copy each time.
		out = &kgo.Record{Topic: out.Topic, Key: out.Key, Value: out.Value, Headers: out.Headers}
	}
}

// sleep waits d, or less when ctx ends; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
