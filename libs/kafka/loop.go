package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Handler turns one input record into output records. An error marked
// Permanent dead-letters the input; any other error is transient: the
// batch is aborted and retried, and the input is dead-lettered as
// "transient" once MaxAttempts is reached. The Ident names the message for
// the dead letter and logs, as far as the handler got.
type Handler func(ctx context.Context, rec *kgo.Record) (outs []*kgo.Record, id Ident, err error)

// Loop is a stage's consume -> handle -> produce loop. Every batch of input
// records and everything produced from it (outputs and dead letters)
// commit in one Kafka transaction together with the consumed offsets, so a
// crash anywhere yields each output exactly once.
type Loop struct {
	Stage    string
	Session  *kgo.GroupTransactSession
	DLQTopic string
	Serde    *canonical.Serde
	Handle   Handler
	Log      *slog.Logger
	// MaxAttempts bounds transient retries of one record. Default 5.
	MaxAttempts int
	// Backoff is the first wait after an aborted batch; it doubles up to
	// 30 s. Default 200 ms.
	Backoff time.Duration
	// Telemetry receives the loop's metrics and Tracer its spans; both
	// optional.
	Telemetry *telemetry.Telemetry
	Tracer    *kotel.Tracer

	failures map[recKey]*failure
	records  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

type recKey struct {
	topic     string
	partition int32
	offset    int64
}

type failure struct {
	attempts    int
	first, last time.Time
	reason      string
}

// Run polls and processes until ctx ends, finishing the batch in hand
// before it returns. It returns an error only when the transaction session
// cannot continue.
func (l *Loop) Run(ctx context.Context) error {
	if l.MaxAttempts == 0 {
		l.MaxAttempts = 5
	}
	if l.Backoff == 0 {
		l.Backoff = 200 * time.Millisecond
	}
	l.failures = map[recKey]*failure{}
	if l.Telemetry == nil {
		l.Telemetry = telemetry.Nop()
	}
	l.records = l.Telemetry.CounterVec(prometheus.CounterOpts{Name: "hl7bus_stage_records_total",
		Help: "Records a stage handled, by outcome: ok, dead_lettered, retried."}, "stage", "outcome")
	l.latency = l.Telemetry.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_stage_processing_seconds",
		Help: "Time a stage spent handling one record.", Buckets: telemetry.LatencyBuckets}, "stage")
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
		backoff = min(2*backoff, 30*time.Second)
	}
}

// batch processes one fetch inside a transaction and reports whether it
// committed.
func (l *Loop) batch(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	if err := l.Session.Begin(); err != nil {
		return false, fmt.Errorf("beginning transaction: %w", err)
	}
	promise := kgo.AbortingFirstErrPromise(l.Session.Client())
	retry := false
	fetches.EachRecord(func(rec *kgo.Record) {
		if retry {
			return
		}
		rctx, span := l.span(ctx, rec)
		defer span.End()
		start := time.Now()
		outs, id, err := l.Handle(rctx, rec)
		l.latency.WithLabelValues(l.Stage).Observe(time.Since(start).Seconds())
		span.SetAttributes(attribute.String("hl7bus.message_id", id.MessageID), attribute.String("hl7bus.stage", l.Stage))
		outcome := "ok"
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
			dl, again := l.failed(rec, id, err)
			if again {
				l.records.WithLabelValues(l.Stage, "retried").Inc()
				retry = true
				return
			}
			outcome = "dead_lettered"
			value, encErr := l.Serde.Encode(dl)
			if encErr != nil {
				// Without a dead letter the record would be lost: retry.
				l.Log.Error("encoding dead letter", logattr.Error(encErr))
				retry = true
				return
			}
			outs = []*kgo.Record{{Topic: l.DLQTopic, Key: rec.Key, Value: value}}
		}
		l.records.WithLabelValues(l.Stage, outcome).Inc()
		for _, o := range outs {
			// Produced under the process span: the publish hook injects a
			// trace context that continues this trace.
			o.Context = rctx
			if o.Headers == nil {
				// Carry the headers (the trace context among them) along,
				// copied: tracing updates them in place per output.
				o.Headers = append([]kgo.RecordHeader(nil), rec.Headers...)
			}
			l.Session.Produce(ctx, o, promise.Promise())
		}
	})
	committed, err := l.Session.End(ctx, kgo.TransactionEndTry(!retry && promise.Err() == nil))
	if err != nil {
		return false, fmt.Errorf("ending transaction: %w", err)
	}
	if committed {
		fetches.EachRecord(func(rec *kgo.Record) {
			delete(l.failures, recKey{rec.Topic, rec.Partition, rec.Offset})
		})
	} else if perr := promise.Err(); perr != nil {
		l.Log.Warn("produce failed; transaction aborted", logattr.Error(perr))
	}
	return committed, nil
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

// failed records a handler error and returns the dead letter to write, or
// again=true when the record should be retried.
func (l *Loop) failed(rec *kgo.Record, id Ident, err error) (*canonical.DeadLetter, bool) {
	now := time.Now()
	if IsPermanent(err) {
		l.Log.Info("dead-lettering record", logattr.MessageID(id.MessageID),
			logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset),
			logattr.Reason(err.Error()))
		return DeadLetter(l.Stage, id, rec, ErrorClass(err), err.Error(), 1, now, now), false
	}
	k := recKey{rec.Topic, rec.Partition, rec.Offset}
	f := l.failures[k]
	if f == nil {
		f = &failure{first: now}
		l.failures[k] = f
	}
	f.attempts++
	f.last, f.reason = now, err.Error()
	if f.attempts < l.MaxAttempts {
		l.Log.Warn("transient failure", logattr.MessageID(id.MessageID),
			logattr.Attempt(f.attempts), logattr.Error(err))
		return nil, true
	}
	delete(l.failures, k)
	return DeadLetter(l.Stage, id, rec, canonical.ErrorTransient, f.reason, f.attempts, f.first, f.last), false
}
