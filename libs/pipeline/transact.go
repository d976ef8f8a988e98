package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Transact is the transactional driver (parse, transform, route and the
// stages to come): consume -> handle -> produce, where every batch of
// input records and everything produced from it (outputs and dead
// letters) commit in one Kafka transaction together with the consumed
// offsets, so a crash anywhere yields each output exactly once.
//
// It wraps Handle in the middleware (see the package doc for the order).
// A permanent failure dead-letters its record and the partition moves on;
// a transient one is retried in place (RetryPolicy.Attempts), then the
// batch is aborted and retried after Backoff, for as long as it takes: an
// outage never dead-letters the traffic that arrives during it.
//
// No record can stall a partition: an input whose outputs can never be
// written (larger than MaxRecordBytes, or refused by the broker for a
// reason of the record itself) is dead-lettered instead. When even its
// dead letter cannot be written the stage reports itself blocked (not
// ready, hl7bus_stage_blocked 1) and keeps retrying: it never drops a
// record.
type Transact struct {
	// Stage names the stage in metrics, logs, dead letters and readiness.
	Stage string
	// Session consumes the input and produces in transactions.
	Session *kgo.GroupTransactSession
	// DLQTopic receives the dead letters.
	DLQTopic string
	// Serde encodes dead letters.
	Serde *canonical.Serde
	// Handle handles one input record (Typed makes one from a Handler).
	Handle RecordHandler
	// Log receives the driver's logs.
	Log *slog.Logger
	// MaxRecordBytes is the largest record (key, value and headers) the
	// driver produces: an output larger than this is never produced, its
	// input is dead-lettered. Default kafka.DefaultMaxRecordBytes; set it
	// to the kafka.max_record_bytes the session's client was built with.
	MaxRecordBytes int
	// Retry is the retry policy (defaults: RetryPolicy.WithDefaults).
	Retry RetryPolicy
	// Timeout bounds each try of a record. Default DefaultRecordTimeout.
	Timeout time.Duration
	// StallAfter is how long the driver may hold fetched records without
	// committing any before it reports the stage stalled. Default 30 s.
	StallAfter time.Duration
	// Telemetry receives the metrics and readiness (part Stage), Tracer
	// the spans; both optional.
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
	metrics      *Metrics
	chain        RecordHandler
}

// DefaultStallAfter is Transact.StallAfter's default.
const DefaultStallAfter = 30 * time.Second

type recKey struct {
	topic     string
	partition int32
	offset    int64
}

func keyOf(rec *kgo.Record) recKey { return recKey{rec.Topic, rec.Partition, rec.Offset} }

// refusal is why an input's outputs cannot be written, and whose they were.
type refusal struct {
	id     Ident
	reason string
}

// Run polls and processes until ctx ends, finishing the batch in hand
// before it returns. It returns an error only when the transaction session
// cannot continue.
func (l *Transact) Run(ctx context.Context) error {
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
	l.metrics.Progress(l.Stage)
	failures := 0
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
			failures = 0
			continue
		}
		failures++
		backoff := Backoff(l.Retry, failures)
		l.Log.Warn("batch aborted; retrying", logattr.Backoff(backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func (l *Transact) setDefaults() {
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = kafka.DefaultMaxRecordBytes
	}
	l.Retry = l.Retry.WithDefaults()
	if l.Timeout <= 0 {
		l.Timeout = DefaultRecordTimeout
	}
	if l.StallAfter <= 0 {
		l.StallAfter = DefaultStallAfter
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	l.refused = map[recKey]refusal{}
	if l.Telemetry == nil {
		l.Telemetry = telemetry.Nop()
	}
	l.metrics = NewMetrics(l.Telemetry)
	l.metrics.Stalled(l.Stage, false)
	l.metrics.Blocked(l.Stage, false)
	l.chain = Chain(l.Handle,
		Trace(l.Tracer, l.Stage),
		l.metrics.Measure(l.Stage),
		DeadLetters(l.Stage, l.DLQTopic, l.Serde, l.Log),
		l.limits,
		Retry(l.Retry),
		Recover(l.Log),
		Timeout(l.Timeout),
	)
}

// watch turns "fetched but not committed for StallAfter" and "a dead
// letter cannot be written" into the stalled gauge and readiness, until
// ctx ends.
func (l *Transact) watch(ctx context.Context) {
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
		l.metrics.Stalled(l.Stage, stalled)
		l.Telemetry.Health.Set(l.Stage, !stalled)
		if stalled {
			l.Log.Error("stage stalled: records fetched but nothing committed", logattr.Backoff(l.StallAfter))
		} else {
			l.Log.Info("stage progressing again")
		}
	}
}

// limits dead-letters, instead of handling it, an input whose outputs an
// earlier attempt found refused for good, and one whose outputs are over
// the record limit (they would fail the transaction on every attempt).
func (l *Transact) limits(next RecordHandler) RecordHandler {
	return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
		if r, ok := l.refused[keyOf(rec)]; ok {
			return nil, r.id, Permanent(errors.New(r.reason))
		}
		outs, id, err := next(ctx, rec)
		if err != nil {
			return outs, id, err
		}
		for _, o := range outs {
			if size := recordSize(o); size > l.MaxRecordBytes {
				return nil, id, Permanent(fmt.Errorf("output record for %s is %d bytes, over the record limit of %d bytes (kafka.max_record_bytes)", o.Topic, size, l.MaxRecordBytes))
			}
		}
		return outs, id, nil
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
func (l *Transact) batch(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	if err := l.Session.Begin(); err != nil {
		return false, fmt.Errorf("beginning transaction: %w", err)
	}
	a := &attempt{cl: l.Session.Client(), refused: map[recKey]refusedOut{}}
	retry := false
	handled := 0
	counts := map[string]int{}
	dlqWrites := 0
	ids := map[recKey]Ident{}
	var broken error
	fetches.EachRecord(func(rec *kgo.Record) {
		if retry {
			return
		}
		handled++
		outs, id, err := l.chain(ctx, rec)
		k := keyOf(rec)
		ids[k] = id
		if err != nil {
			// Transient, its in-place retries spent: the batch is
			// retried after a backoff, the record never dead-lettered.
			l.Log.Warn("transient failure; retrying the batch", logattr.MessageID(id.MessageID), logattr.Error(err))
			retry = true
			return
		}
		// Dead letters among the outputs: the input's own (a permanent
		// failure), or scoped ones beside its other outputs.
		nDead := 0
		for _, o := range outs {
			if _, ok := ScopedOf(o); ok {
				// Only DeadLetters builds these; without it in the chain
				// the dead letter would be lost: stop rather than drop it.
				broken = errors.New("a scoped dead letter reached the driver unbuilt (no DeadLetters middleware)")
				retry = true
				return
			}
			if o.Topic != l.DLQTopic {
				continue
			}
			nDead++
			if size := recordSize(o); size > l.MaxRecordBytes {
				l.block(rec, fmt.Sprintf("its dead letter is %d bytes, over the record limit of %d bytes (kafka.max_record_bytes)", size, l.MaxRecordBytes))
				retry = true
				return
			}
		}
		dlqWrites += nDead
		if nDead > 0 && nDead == len(outs) {
			counts[OutcomeDeadLettered]++
		} else {
			counts[OutcomeOK]++
		}
		for _, o := range outs {
			if o.Headers == nil {
				// Carry the headers (the trace context among them) along,
				// copied: tracing updates them in place per output.
				o.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
			}
			if o.Context == nil {
				o.Context = ctx
			}
			l.Session.Produce(ctx, o, a.promise(k, o.Topic, recordSize(o), o.Topic == l.DLQTopic))
		}
	})
	a.wg.Wait()
	committed, err := l.Session.End(ctx, kgo.TransactionEndTry(!retry && a.first == nil))
	if err != nil {
		return false, fmt.Errorf("ending transaction: %w", err)
	}
	if broken != nil {
		return false, broken
	}
	if !committed {
		l.metrics.Records(l.Stage, OutcomeRetried, handled)
		if a.first != nil {
			l.Log.Warn("produce failed; transaction aborted", logattr.Error(a.first))
			l.attribute(fetches, a, ids)
		}
		return false, nil
	}
	for outcome, n := range counts {
		l.metrics.Records(l.Stage, outcome, n)
	}
	l.metrics.DeadLettered(l.Stage, dlqWrites)
	fetches.EachRecord(func(rec *kgo.Record) { delete(l.refused, keyOf(rec)) })
	l.metrics.Progress(l.Stage)
	l.pendingSince.Store(0)
	if l.blocked.Swap(false) {
		l.metrics.Blocked(l.Stage, false)
	}
	return true, nil
}

// attribute finds, after an aborted batch, the input whose output was
// refused for a reason of the record itself, so the next attempt
// dead-letters it. When the broker refuses a whole batch, every record in
// it fails alike; the largest refused output is the likely cause, so one
// input is taken per attempt (the next attempt finds the next, if any).
func (l *Transact) attribute(fetches kgo.Fetches, a *attempt, ids map[recKey]Ident) {
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
	reason := fmt.Sprintf("output record for %s of %d bytes was refused (record limit %d bytes, kafka.max_record_bytes): %v", out.topic, out.size, l.MaxRecordBytes, out.err)
	l.refused[k] = refusal{id: id, reason: reason}
	l.Log.Warn("an output was refused; dead-lettering its input on the next attempt",
		logattr.MessageID(id.MessageID), logattr.Topic(culprit.Topic), logattr.Partition(culprit.Partition),
		logattr.Offset(culprit.Offset), logattr.Reason(reason))
}

// block reports that rec can be neither processed nor dead-lettered: the
// stage is not ready and hl7bus_stage_blocked is 1 until a batch commits,
// and the batch is retried (an operator raises kafka.max_record_bytes or
// the topic's limit). The record is never skipped.
func (l *Transact) block(rec *kgo.Record, reason string) {
	if !l.blocked.Swap(true) {
		l.metrics.Blocked(l.Stage, true)
	}
	l.Log.Error("cannot write a dead letter; the stage is blocked on this record", logattr.Topic(rec.Topic),
		logattr.Partition(rec.Partition), logattr.Offset(rec.Offset), logattr.Reason(reason))
}
