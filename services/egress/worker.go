package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// Limits of the destination's driver (see DESIGN.md).
const (
	// maxPending and maxPendingBytes bound the records fetched and not
	// finished: a key held for an hour must not make the worker buffer the
	// whole topic behind it. Past them the worker stops fetching (Kafka
	// keeps the rest).
	maxPending      = pipeline.DefaultMaxPending
	maxPendingBytes = pipeline.DefaultMaxPendingBytes
	// probeMin and probeMax pace the retries of a destination that cannot
	// be reached: quick for a blip, then once a second, so that delivery
	// resumes within a second of the destination coming back.
	probeMin = 100 * time.Millisecond
	probeMax = time.Second
	// drainTimeout is how long the sends in flight when shutdown begins
	// may take to finish with their normal outcome (and be committed)
	// before they are cancelled: a healthy receiver answers in
	// milliseconds, and a cancelled send is sent again after the restart.
	drainTimeout = 5 * time.Second
)

// delivery is what egress keeps of one record across its attempts (the
// State of its pipeline.Job): touched only by whoever holds the job.
type delivery struct {
	out          *canonical.Out
	attempts     int       // failed attempts (AE, wrong ACK, no answer)
	firstFailure time.Time // when the first attempt failed
	downAtFirst  time.Duration
	holds        int // consecutive holds (record not decodable yet)
}

// job is one record of the destination's topic on its way through the
// at-least-once driver.
type job = pipeline.Job[delivery]

// worker delivers one destination's messages: pipeline.AtLeastOnce
// consumes, orders by key, holds and commits; d.Connections slots each
// own a Sender built by the destination's adapter, and deliver (a slot's
// try of one record) applies the retry contract to its verdicts.
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
	// pause keeps the time paused; pausedGauge is
	// hl7bus_destination_paused; wasPaused (nil before the first state)
	// is what follow last logged. Only the worker's run goroutine sets
	// them (pause is read by the slots too, under its lock).
	pause       pauseClock
	pausedGauge prometheus.Gauge
	wasPaused   *bool
	// snds are the slots' senders; snds[i] is touched only by slot i.
	snds []Sender
}

func newWorker(s *Service, d Destination, a Adapter, prod *kgo.Client, dlq, delivery string) *worker {
	return &worker{s: s, d: d, adapter: a, prod: prod, dlq: dlq, delivery: delivery, topic: s.kc.OutTopic(d.Name),
		log: s.log.With(logattr.Destination(d.Name)), tracer: kafka.Instrument(s.tel, "egress-"+d.Name).Tracer,
		outage: outage{up: s.up.WithLabelValues(d.Name)}, pausedGauge: s.paused.WithLabelValues(d.Name)}
}

// outage keeps how long the destination has been unreachable, so that a
// message's retry time does not count an outage, and hl7bus_destination_up.
// The slots report to it concurrently.
type outage struct {
	mu    sync.Mutex
	up    prometheus.Gauge
	since time.Time // zero while reachable
	total time.Duration
}

// set records that the destination is down or was reached at now, and
// reports whether that changed its state.
func (o *outage) set(down bool, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if down {
		o.up.Set(0)
	} else {
		o.up.Set(1)
	}
	switch {
	case down && o.since.IsZero():
		o.since = now
		return true
	case !down && !o.since.IsZero():
		o.total += now.Sub(o.since)
		o.since = time.Time{}
		return true
	}
	return false
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
	w.snds = make([]Sender, 0, w.d.Connections)
	defer func() {
		for _, s := range w.snds {
			if s != nil {
				_ = s.Close()
			}
		}
	}()
	for range w.d.Connections {
		snd, err := w.adapter.NewSender(w.d, w.log)
		if err != nil {
			return fmt.Errorf("egress %s: building a %s sender: %w", w.d.Name, w.d.Protocol, err)
		}
		w.snds = append(w.snds, snd)
	}
	// Each epoch is one consumer client and its driver. A reset that
	// arrives while this replica owns partitions ends the epoch: the next
	// client applies it when the group assigns it partitions, before it
	// fetches where to start (DESIGN.md, "Pause, resume, reset").
	for {
		if err := w.epoch(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// epoch consumes with a new client until ctx ends (nil), the driver
// stops with an error, or a new reset is ordered (nil, ctx still live).
func (w *worker) epoch(ctx context.Context) error {
	group := w.group()
	inst := kafka.Instrument(w.s.tel, "egress-"+w.d.Name)
	w.tracer = inst.Tracer
	pending := w.s.pending.WithLabelValues(w.d.Name)
	drv := pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[delivery]{
		Topic: w.topic, Log: w.log, Parallel: w.d.Connections, Process: w.deliver,
		Pending:    func(n int) { pending.Set(float64(n)) },
		MaxPending: maxPending, MaxPendingBytes: maxPendingBytes,
		HoldMin: probeMin, HoldMax: probeMax, Drain: drainTimeout,
	})
	st, changed := w.s.ctl.state(w.d.Name)
	// resetFailed says a reset could not be applied to partitions just
	// assigned: the epoch ends and the next one's assignment tries again,
	// so a paused destination's reset does not wait for a restart (the
	// admin API refuses to resume until it is applied).
	resetFailed := make(chan struct{}, 1)
	opts := append(inst.Opts(), drv.ClientOpts()...)
	opts = append(opts, kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
		cur, _ := w.s.ctl.state(w.d.Name)
		if parts := m[w.topic]; len(parts) > 0 && cur.State == canonical.ControlPaused && cur.ResetID != "" && cur.ResetTo != nil {
			if err := w.applyReset(ctx, cl, group, cur, parts); err != nil {
				// The partitions without the marker start from where
				// they were, still paused: nothing is sent before the
				// next epoch tries again.
				w.log.Error("resetting the consumer group; trying again", logattr.Group(group), logattr.Error(err))
				select {
				case resetFailed <- struct{}{}:
				default:
				}
			}
		}
	}))
	cl, err := kafka.NewConsumer(w.s.kc, w.log, group, []string{w.topic}, opts...)
	if err != nil {
		return fmt.Errorf("egress %s: consumer: %w", w.d.Name, err)
	}
	defer cl.Close()
	w.follow(cl, st)
	resetAtStart := st.ResetID
	w.log.Info("delivering", logattr.Address(w.d.Address), logattr.Group(group))
	ectx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- drv.Run(ectx, cl) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("egress %s: %w", w.d.Name, err)
			}
			return nil
		case <-resetFailed:
			stop()
			if err := <-done; err != nil {
				return fmt.Errorf("egress %s: %w", w.d.Name, err)
			}
			sleep(ctx, resetRetry)
			return nil
		case <-changed:
			st, changed = w.s.ctl.state(w.d.Name)
			w.follow(cl, st)
			if st.State == canonical.ControlPaused && st.ResetID != "" && st.ResetID != resetAtStart {
				// The driver commits how far it got, then the client
				// leaves: the next epoch's assignment applies the reset.
				stop()
				if err := <-done; err != nil {
					return fmt.Errorf("egress %s: %w", w.d.Name, err)
				}
				return nil
			}
		}
	}
}

// group is the destination's consumer group.
func (w *worker) group() string { return w.s.kc.TopicPrefix + "egress." + w.d.Name }

// follow makes the client and the metrics agree with st: a paused
// destination's topic is not fetched (what was fetched is held in
// process), a running one's is.
func (w *worker) follow(cl *kgo.Client, st canonical.ControlState) {
	paused := st.State == canonical.ControlPaused
	if paused {
		cl.PauseFetchTopics(w.topic)
	} else {
		cl.ResumeFetchTopics(w.topic)
	}
	w.pausedGauge.Set(boolGauge(paused))
	w.pause.set(paused, time.Now())
	if w.wasPaused == nil || *w.wasPaused != paused {
		// The reason is the operator's free text: not logged.
		if paused {
			w.log.Info("destination paused by an operator; holding its messages", logattr.Actor(st.Actor))
		} else if w.wasPaused != nil {
			w.log.Info("destination resumed by an operator", logattr.Actor(st.Actor))
		}
		w.wasPaused = &paused
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// notCounted is the time up to now that retry.max_retry_time does not
// count: the destination unreachable or paused.
func (w *worker) notCounted(now time.Time) time.Duration {
	return w.outage.elapsed(now) + w.pause.elapsed(now)
}

// reached notes the outcome of one try for the destination's state: the
// receiver was reached (Resume) or could not be (Hold).
func (w *worker) reached(o pipeline.Outcome) {
	now := time.Now()
	switch {
	case o.Kind == pipeline.Hold && errors.Is(o.Err, errPaused):
		// Paused is no outage: the receiver was not even tried.
	case o.Resume:
		if w.outage.set(false, now) {
			w.log.Info("destination reachable again; resuming delivery")
		}
	case o.Kind == pipeline.Hold:
		if w.outage.set(true, now) {
			w.log.Warn("destination unreachable; holding its messages (no attempt counted)", logattr.Error(o.Err))
		}
	}
}

// process makes one attempt at j's record and reports what it means.
func (w *worker) process(ctx context.Context, j *job, snd Sender) pipeline.Outcome {
	// A paused destination's records wait before anything is done with
	// them: no attempt, no dead letter, no delivery record.
	if w.holdIfPaused(ctx) {
		return pipeline.Outcome{Kind: pipeline.Hold, Err: errPaused}
	}
	rec := j.Rec
	st := &j.State
	// The deliver span continues the message's trace from its headers.
	_, span := w.tracer.WithProcessSpan(rec)
	defer span.End()
	ctx = trace.ContextWithSpan(ctx, span)
	span.SetAttributes(attribute.String("hl7bus.destination", w.d.Name))
	if st.out == nil {
		out, err := pipeline.Decode[*canonical.Out](ctx, w.s.serde, rec.Value)
		if err != nil {
			if pipeline.IsPermanent(err) {
				return w.deadLetter(ctx, j, pipeline.Ident{}, canonical.ErrorPermanent, err.Error(), 1, false)
			}
			if ctx.Err() != nil {
				return pipeline.Outcome{Kind: pipeline.Aborted}
			}
			// The registry cannot give the schema yet: hold the key (like
			// a destination that is down, this is no attempt).
			st.holds++
			wait := w.d.Retry.backoff(st.holds)
			w.log.Warn("cannot decode record yet; retrying", logattr.Error(err), logattr.Backoff(wait))
			return pipeline.Outcome{Kind: pipeline.RetryLater, At: time.Now().Add(wait)}
		}
		st.out = out
	}
	out := st.out
	span.SetAttributes(attribute.String("hl7bus.message_id", out.MessageID))
	log := w.log.With(logattr.MessageID(out.MessageID), logattr.ControlID(out.ControlID))
	res := snd.Send(ctx, out)
	if ctx.Err() != nil {
		return pipeline.Outcome{Kind: pipeline.Aborted}
	}
	if res.Verdict == NotSent {
		err := res.Err
		if err == nil {
			err = errors.New(res.Reason)
		}
		return pipeline.Outcome{Kind: pipeline.Hold, Err: err}
	}
	if res.Answered {
		w.s.latency.WithLabelValues(w.d.Name).Observe(res.RoundTrip.Seconds())
	}
	attempt := st.attempts + 1
	now := time.Now()
	d := &canonical.Delivery{MessageID: out.MessageID, ControlID: out.ControlID, Destination: w.d.Name,
		Attempt: attempt, AckCode: res.Code, LatencyMS: float64(res.RoundTrip.Microseconds()) / 1000, At: now,
		Source: sourceOf(rec)}
	id := pipeline.Ident{MessageID: out.MessageID, ControlID: out.ControlID}
	switch res.Verdict {
	case Delivered:
		d.Outcome = canonical.OutcomeDelivered
		w.receipt(d)
		w.s.endToEnd.WithLabelValues(w.d.Name).Observe(time.Since(out.ReceivedAt).Seconds())
		w.s.metrics.Records(stageName, pipeline.OutcomeOK, 1)
		return pipeline.Outcome{Kind: pipeline.Done, Resume: true}
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
	st.attempts = attempt
	if st.firstFailure.IsZero() {
		st.firstFailure, st.downAtFirst = now, w.notCounted(now)
	}
	retried := now.Sub(st.firstFailure) - (w.notCounted(now) - st.downAtFirst)
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
	return pipeline.Outcome{Kind: pipeline.RetryLater, At: now.Add(wait), Resume: true}
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
func (w *worker) deadLetter(ctx context.Context, j *job, id pipeline.Ident, class, reason string, attempts int, reached bool) pipeline.Outcome {
	first := j.State.firstFailure
	if first.IsZero() {
		first = time.Now()
	}
	dl := pipeline.DeadLetter(stageName, id, j.Rec, class, reason, attempts, first, time.Now())
	// An egress dead letter is always one destination's copy: the
	// destination says so, and a replay of it re-sends to that one only.
	dl.Destination = w.d.Name
	out, err := pipeline.DeadLetterRecord(w.s.serde, w.dlq, j.Rec, dl)
	if err != nil {
		// Without its dead letter the record cannot be passed: stop, so
		// it is processed again after a restart instead of being lost.
		return pipeline.Outcome{Kind: pipeline.Fatal, Err: err}
	}
	for {
		err := w.prod.ProduceSync(ctx, out).FirstErr()
		if err == nil {
			w.s.metrics.DeadLettered(stageName, 1)
			w.s.metrics.Records(stageName, pipeline.OutcomeDeadLettered, 1)
			return pipeline.Outcome{Kind: pipeline.Done, Resume: reached}
		}
		w.log.Error("writing dead letter; retrying", logattr.Error(err))
		if !sleep(ctx, time.Second) {
			return pipeline.Outcome{Kind: pipeline.Aborted}
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

// sourceOf is where the out record lives: the delivery receipt carries it
// so a replay can re-send this very record to this destination.
func sourceOf(rec *kgo.Record) *canonical.RecordRef {
	return &canonical.RecordRef{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
}
