package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Handler turns one input record into output records. An error marked
// Permanent dead-letters the input; any other error is transient (the
// registry or the broker is unavailable): the batch is aborted and retried
// with backoff for as long as it takes, and the input is never
// dead-lettered for it, because an outage must not dead-letter the traffic
// that arrives during it. The Ident names the message for the dead letter
// and logs, as far as the handler got.
type Handler func(ctx context.Context, rec *kgo.Record) (outs []*kgo.Record, id Ident, err error)

// Loop is a stage's consume -> handle -> produce loop. Every batch of input
// records and everything produced from it (outputs and dead letters)
// commit in one Kafka transaction together with the consumed offsets, so a
// crash anywhere yields each output exactly once.
//
// No record can stall a partition: an input whose outputs can never be
// written (larger than MaxRecordBytes, or refused by the broker for a
// reason of the record itself) is dead-lettered instead, and the batch is
// retried without its outputs. When even its dead letter cannot be
// written the stage reports itself stalled (not ready, with
// hl7bus_stage_blocked 1) and keeps retrying: it never drops a record.
type Loop struct {
	// Stage names the stage in metrics, logs, dead letters and readiness.
	Stage string
	// Session consumes the input and produces in transactions.
	Session *kgo.GroupTransactSession
	// DLQTopic receives the dead letters.
	DLQTopic string
	// Serde encodes dead letters.
	Serde *canonical.Serde
	// Handle handles one input record.
	Handle Handler
	// Log receives the loop's logs.
	Log *slog.Logger
	// MaxRecordBytes is the largest record (key, value and headers) the
	// loop produces: an output larger than this is never produced, its
	// input is dead-lettered. Default DefaultMaxRecordBytes; set it to the
	// kafka.max_record_bytes the session's client was built with.
	MaxRecordBytes int
	// Backoff is the first wait after an aborted batch; it doubles up to
	// MaxBackoff. Defaults 200 ms and 5 s: short enough that a stage
	// resumes within seconds of an outage's end.
	Backoff, MaxBackoff time.Duration
	// StallAfter is how long the loop may hold fetched records without
	// committing any before it reports the stage stalled. Default 30 s.
	StallAfter time.Duration
	// Telemetry receives the loop's metrics and readiness (part Stage),
	// Tracer its spans; both optional.
	Telemetry *telemetry.Telemetry
	Tracer    *kotel.Tracer

	// refused holds inputs whose outputs the client or broker refused for
	// a reason of the record itself: they are dead-lettered on the next
	// attempt. Entries go when their batch commits; one left by a revoked
	// partition costs a few bytes until the process restarts.
	refused map[recKey]refusal
	// blocked is set when a dead letter cannot be written.
	blocked atomic.Bool
	// pendingSince is when records were first fetched after the last
	// commit (unix nanoseconds, 0 while nothing is pending).
	pendingSince atomic.Int64

	records      *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	lastProgress *prometheus.GaugeVec
	stalled      *prometheus.GaugeVec
	blockedG     *prometheus.GaugeVec
}

type recKey struct {
	topic     string
	partition int32
	offset    int64
}

func keyOf(rec *kgo.Record) recKey { return recKey{rec.Topic, rec.Partition, rec.Offset} }

// refusal is why an input's outputs cannot be written.
type refusal struct {
	id          Ident
	reason      string
	attempts    int
	first, last time.Time
}

// Run polls and processes until ctx ends, finishing the batch in hand
// before it returns. It returns an error only when the transaction session
// cannot continue.
func (l *Loop) Run(ctx context.Context) error {
	l.setDefaults()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.watch(watchCtx)
	}()
	defer func() {
		stopWatch()
		wg.Wait()
	}()
	l.lastProgress.WithLabelValues(l.Stage).SetToCurrentTime()
	backoff := l.Backoff
	for {
		fetches := l.Session.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			l.Log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		l.pendingSince.CompareAndSwap(0, time.Now().UnixNano())
		// The batch in hand is finished even if ctx ends meanwhile:
		// abandoning a transaction halfway would leave the session unusable.
		work := context.WithoutCancel(ctx)
		committed, err := l.batch(work, fetches)
		if err != nil {
			return fmt.Errorf("%s: %w", l.Stage, err)
		}
		if committed {
			backoff = l.Backoff
			continue
		}
		l.Log.Warn("batch aborted; retrying", logattr.Backoff(backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.MaxBackoff)
	}
}

func (l *Loop) setDefaults() {
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if l.Backoff == 0 {
		l.Backoff = 200 * time.Millisecond
	}
	if l.MaxBackoff == 0 {
		l.MaxBackoff = 5 * time.Second
	}
	if l.StallAfter == 0 {
		l.StallAfter = 30 * time.Second
	}
	l.refused = map[recKey]refusal{}
	if l.Telemetry == nil {
		l.Telemetry = telemetry.Nop()
	}
	t := l.Telemetry
	l.records = t.CounterVec(prometheus.CounterOpts{Name: "hl7bus_stage_records_total",
		Help: "Records a stage finished, by outcome: ok and dead_lettered count committed records only; retried counts records of aborted batches, processed again."}, "stage", "outcome")
	// The same metric egress counts its dead letters in.
	l.deadLetters = t.CounterVec(prometheus.CounterOpts{Name: "hl7bus_dlq_writes_total",
		Help: "Records written to a dead-letter queue, by stage."}, "stage")
	l.latency = t.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_stage_processing_seconds",
		Help: "Time a stage spent handling one record.", Buckets: telemetry.LatencyBuckets}, "stage")
	l.lastProgress = t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_last_progress_timestamp_seconds",
		Help: "When the stage last committed a batch (or started), as a Unix time."}, "stage")
	l.stalled = t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_stalled",
		Help: "1 while the stage holds fetched records it has not committed for longer than its stall threshold, or cannot write a dead letter; the stage is then not ready."}, "stage")
	l.blockedG = t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_blocked",
		Help: "1 while the stage cannot write a dead letter for a record it cannot process (it retries and reports not ready; alert on it)."}, "stage")
	l.stalled.WithLabelValues(l.Stage).Set(0)
	l.blockedG.WithLabelValues(l.Stage).Set(0)
}

// watch turns "fetched but not committed for StallAfter" and "a dead
// letter cannot be written" into the stalled gauge and readiness, until
// ctx ends.
func (l *Loop) watch(ctx context.Context) {
	tick := time.NewTicker(min(time.Second, l.StallAfter/4))
	defer tick.Stop()
	was := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		since := l.pendingSince.Load()
		stalled := l.blocked.Load() || since != 0 && time.Since(time.Unix(0, since)) > l.StallAfter
		if stalled == was {
			continue
		}
		was = stalled
		if stalled {
			l.stalled.WithLabelValues(l.Stage).Set(1)
			l.Telemetry.Health.Set(l.Stage, false)
			l.Log.Error("stage stalled: records fetched but nothing committed", logattr.Backoff(l.StallAfter))
		} else {
			l.stalled.WithLabelValues(l.Stage).Set(0)
			l.Telemetry.Health.Set(l.Stage, true)
			l.Log.Info("stage progressing again")
		}
	}
}

// attempt collects the outcome of one transaction's produces, per input.
type attempt struct {
	cl *kgo.Client
	wg sync.WaitGroup
	mu sync.Mutex
	// first is the first produce error; the rest of the batch is aborted.
	first error
	// refused is, per input, its largest output that failed for a reason
	// of the record itself.
	refused map[recKey]refusedOut
}

type refusedOut struct {
	topic      string
	size       int
	deadLetter bool
	err        error
}

// promise returns the produce promise of an output of input k.
func (a *attempt) promise(k recKey, topic string, size int, deadLetter bool) func(*kgo.Record, error) {
	a.wg.Add(1)
	return func(_ *kgo.Record, err error) {
		defer a.wg.Done()
		if err == nil {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.first == nil {
			a.first = err
			// Fail the rest of the batch fast instead of waiting for it
			// to flush: the transaction aborts anyway.
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.cl.AbortBufferedRecords(context.Background())
			}()
		}
		if recordRefused(err) {
			if prev, ok := a.refused[k]; !ok || size > prev.size {
				a.refused[k] = refusedOut{topic: topic, size: size, deadLetter: deadLetter, err: err}
			}
		}
	}
}

// recordRefused reports whether a produce failed for a reason of the
// record itself, which no retry can change: too large for the client's or
// the broker's limit, or a record the broker will not take.
func recordRefused(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord)
}

// recordOverhead is what a record costs in a batch beyond its key, value
// and headers (batch header, varint lengths, a trace context header the
// publish hook may add), rounded up.
const recordOverhead = 1 << 10

// recordSize is a record's size as franz-go counts it against the batch
// limit, plus recordOverhead.
func recordSize(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value) + recordOverhead
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// batch processes one fetch inside a transaction and reports whether it
// committed.
func (l *Loop) batch(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	if err := l.Session.Begin(); err != nil {
		return false, fmt.Errorf("beginning transaction: %w", err)
	}
	a := &attempt{cl: l.Session.Client(), refused: map[recKey]refusedOut{}}
	retry := false
	handled := 0
	counts := map[string]int{}
	ids := map[recKey]Ident{}
	fetches.EachRecord(func(rec *kgo.Record) {
		if retry {
			return
		}
		handled++
		rctx, span := l.span(ctx, rec)
		defer span.End()
		span.SetAttributes(attribute.String("hl7bus.stage", l.Stage))
		outs, id, dl, ok := l.handle(rctx, span, rec)
		ids[keyOf(rec)] = id
		if !ok {
			retry = true
			return
		}
		if dl != nil {
			value, err := l.Serde.Encode(dl)
			if err != nil {
				// Without a dead letter the record would be lost: retry.
				l.Log.Error("encoding dead letter", logattr.Error(err))
				retry = true
				return
			}
			out := &kgo.Record{Topic: l.DLQTopic, Key: rec.Key, Value: value}
			out.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
			if size := recordSize(out); size > l.MaxRecordBytes {
				l.block(rec, fmt.Sprintf("its dead letter is %d bytes, over the record limit of %d bytes (kafka.max_record_bytes)", size, l.MaxRecordBytes))
				retry = true
				return
			}
			outs = []*kgo.Record{out}
			counts["dead_lettered"]++
		} else {
			counts["ok"]++
		}
		k := keyOf(rec)
		for _, o := range outs {
			// Produced under the process span: the publish hook injects a
			// trace context that continues this trace.
			o.Context = rctx
			if o.Headers == nil {
				// Carry the headers (the trace context among them) along,
				// copied: tracing updates them in place per output.
				o.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
			}
			l.Session.Produce(ctx, o, a.promise(k, o.Topic, recordSize(o), dl != nil))
		}
	})
	a.wg.Wait()
	committed, err := l.Session.End(ctx, kgo.TransactionEndTry(!retry && a.first == nil))
	if err != nil {
		return false, fmt.Errorf("ending transaction: %w", err)
	}
	if !committed {
		l.records.WithLabelValues(l.Stage, "retried").Add(float64(handled))
		if a.first != nil {
			l.Log.Warn("produce failed; transaction aborted", logattr.Error(a.first))
			l.attribute(fetches, a, ids)
		}
		return false, nil
	}
	for outcome, n := range counts {
		l.records.WithLabelValues(l.Stage, outcome).Add(float64(n))
	}
	l.deadLetters.WithLabelValues(l.Stage).Add(float64(counts["dead_lettered"]))
	fetches.EachRecord(func(rec *kgo.Record) { delete(l.refused, keyOf(rec)) })
	l.lastProgress.WithLabelValues(l.Stage).SetToCurrentTime()
	l.pendingSince.Store(0)
	if l.blocked.Swap(false) {
		l.blockedG.WithLabelValues(l.Stage).Set(0)
	}
	return true, nil
}

// safeHandle calls the handler, turning a panic into a permanent error:
// a record that trips a bug is dead-lettered (and can be replayed once the
// bug is fixed) instead of crashing the process, which would restart on
// the same uncommitted record and crash again.
func (l *Loop) safeHandle(ctx context.Context, rec *kgo.Record) (outs []*kgo.Record, id Ident, err error) {
	defer func() {
		if v := recover(); v != nil {
			// The panic value may quote the message: only its type is kept.
			l.Log.Error("handler panicked; dead-lettering the record", logattr.MessageID(id.MessageID),
				logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset),
				logattr.PanicType(fmt.Sprintf("%T", v)), logattr.Stack(string(debug.Stack())))
			outs, err = nil, Permanent(fmt.Errorf("%w (a %T)", ErrHandlerPanicked, v))
		}
	}()
	return l.Handle(ctx, rec)
}

// handle runs the handler on rec and returns its outputs, or the dead
// letter to write instead; ok is false when the batch must be retried.
func (l *Loop) handle(ctx context.Context, span trace.Span, rec *kgo.Record) (outs []*kgo.Record, id Ident, dl *canonical.DeadLetter, ok bool) {
	k := keyOf(rec)
	if r, refused := l.refused[k]; refused {
		// An earlier attempt's outputs were refused for good.
		span.SetAttributes(attribute.String("hl7bus.message_id", r.id.MessageID))
		span.SetStatus(codes.Error, "outputs refused; dead-lettered")
		return nil, r.id, DeadLetter(l.Stage, r.id, rec, canonical.ErrorPermanent, r.reason, r.attempts, r.first, r.last), true
	}
	start := time.Now()
	outs, id, err := l.safeHandle(ctx, rec)
	l.latency.WithLabelValues(l.Stage).Observe(time.Since(start).Seconds())
	span.SetAttributes(attribute.String("hl7bus.message_id", id.MessageID))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		if !IsPermanent(err) {
			l.Log.Warn("transient failure; retrying the batch", logattr.MessageID(id.MessageID), logattr.Error(err))
			return nil, id, nil, false
		}
		l.Log.Info("dead-lettering record", logattr.MessageID(id.MessageID),
			logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset),
			logattr.Reason(err.Error()))
		now := time.Now()
		return nil, id, DeadLetter(l.Stage, id, rec, ErrorClass(err), err.Error(), 1, now, now), true
	}
	// An output over the limit would fail the transaction on every
	// attempt: dead-letter its input instead of producing it.
	for _, o := range outs {
		if size := recordSize(o); size > l.MaxRecordBytes {
			reason := fmt.Sprintf("output record for %s is %d bytes, over the record limit of %d bytes (kafka.max_record_bytes)", o.Topic, size, l.MaxRecordBytes)
			span.SetStatus(codes.Error, reason)
			l.Log.Warn("dead-lettering record", logattr.MessageID(id.MessageID),
				logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset), logattr.Reason(reason))
			now := time.Now()
			return nil, id, DeadLetter(l.Stage, id, rec, canonical.ErrorPermanent, reason, 1, now, now), true
		}
	}
	return outs, id, nil, true
}

// attribute finds, after an aborted batch, the input whose output was
// refused for a reason of the record itself, so the next attempt
// dead-letters it. When the broker refuses a whole batch, every record in
// it fails alike; the largest refused output is the likely cause, so one
// input is taken per attempt (the next attempt finds the next, if any).
func (l *Loop) attribute(fetches kgo.Fetches, a *attempt, ids map[recKey]Ident) {
	var (
		culprit *kgo.Record
		out     refusedOut
	)
	fetches.EachRecord(func(rec *kgo.Record) {
		if r, ok := a.refused[keyOf(rec)]; ok && (culprit == nil || r.size > out.size) {
			culprit, out = rec, r
		}
	})
	if culprit == nil {
		return
	}
	if out.deadLetter {
		l.block(culprit, fmt.Sprintf("its dead letter of %d bytes was refused: %v", out.size, out.err))
		return
	}
	k := keyOf(culprit)
	id := ids[k]
	now := time.Now()
	reason := fmt.Sprintf("output record for %s of %d bytes was refused (record limit %d bytes, kafka.max_record_bytes): %v", out.topic, out.size, l.MaxRecordBytes, out.err)
	l.refused[k] = refusal{id: id, reason: reason, attempts: 1, first: now, last: now}
	l.Log.Warn("an output was refused; dead-lettering its input on the next attempt",
		logattr.MessageID(id.MessageID), logattr.Topic(culprit.Topic), logattr.Partition(culprit.Partition),
		logattr.Offset(culprit.Offset), logattr.Reason(reason))
}

// block reports that rec can be neither processed nor dead-lettered: the
// stage is not ready and hl7bus_stage_blocked is 1 until a batch commits,
// and the batch is retried (an operator raises kafka.max_record_bytes or
// the topic's limit). The record is never skipped.
func (l *Loop) block(rec *kgo.Record, reason string) {
	if !l.blocked.Swap(true) {
		l.blockedG.WithLabelValues(l.Stage).Set(1)
	}
	l.Log.Error("cannot write a dead letter; the stage is blocked on this record", logattr.Topic(rec.Topic),
		logattr.Partition(rec.Partition), logattr.Offset(rec.Offset), logattr.Reason(reason))
}

// span starts the process span of rec (a child of the trace its headers
// carry), or returns a no-op span without a tracer. The returned context
// keeps ctx's values and cancellation.
func (l *Loop) span(ctx context.Context, rec *kgo.Record) (context.Context, trace.Span) {
	if l.Tracer == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	_, span := l.Tracer.WithProcessSpan(rec)
	return trace.ContextWithSpan(ctx, span), span
}
