package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// DeadLetter builds the dead-letter record (schemas/dlq.avsc) of input
// rec: its key, value and headers untouched, with the stage, error class,
// reason, source topic/partition/offset, attempts and failure times.
// reason must not carry message content.
func DeadLetter(stage string, id Ident, rec *kgo.Record, class, reason string, attempts int, first, last time.Time) *canonical.DeadLetter {
	d := &canonical.DeadLetter{
		MessageID: id.MessageID, ControlID: id.ControlID, Stage: stage, ErrorClass: class, Reason: reason,
		SourceTopic: rec.Topic, SourcePartition: rec.Partition, SourceOffset: rec.Offset,
		Attempts: attempts, FirstFailedAt: first, LastFailedAt: last,
		Key: rec.Key, Value: rec.Value,
	}
	if len(rec.Headers) > 0 {
		d.Headers = make(map[string][]byte, len(rec.Headers))
		for _, h := range rec.Headers {
			d.Headers[h.Key] = h.Value
		}
	}
	return d
}

// Detailed is implemented by errors that know a value of the message
// their failure is about (mapping.RuleError: the code a table lacks). An
// error's text must carry no message content, since it is logged, set as
// span status and copied into decisions; the detail is written to one
// place only, the dead-letter record's reason, which may quote it because
// the record holds the whole message in its value anyway. Found anywhere
// in an error's chain with errors.As, so a package that cannot import
// pipeline can implement it.
type Detailed interface {
	error
	// DeadLetterDetail returns the value, quoted and short, or "".
	DeadLetterDetail() string
}

// DetailOf returns the dead-letter detail of err (see Detailed), or "".
func DetailOf(err error) string {
	var d Detailed
	if errors.As(err, &d) {
		return d.DeadLetterDetail()
	}
	return ""
}

// DeadLetterReason is the reason a dead-letter record of err says: its
// text, followed by its detail when it has one ("<text>: <detail>"). Use
// it for that record's reason only; logs, spans, decisions and metrics
// use err.Error().
func DeadLetterReason(err error) string {
	return withDetail(err.Error(), DetailOf(err))
}

// withDetail appends detail to reason, as the dead-letter record's reason.
func withDetail(reason, detail string) string {
	if detail == "" {
		return reason
	}
	return reason + ": " + detail
}

// DeadLetterOf builds the dead letter of rec for err, a permanent failure:
// its class (ErrorClass), DeadLetterReason(err) as the reason (its text
// and its detail), and the attempts Retry counted.
func DeadLetterOf(stage string, id Ident, rec *kgo.Record, err error) *canonical.DeadLetter {
	n, first := Attempts(err)
	now := time.Now()
	if first.IsZero() {
		first = now
	}
	return DeadLetter(stage, id, rec, ErrorClass(err), DeadLetterReason(err), n, first, now)
}

// DeadLetterRecord encodes d as the record to write to topic (dlq.<stage>):
// under the input's key, with the input's headers (the trace context
// among them) copied.
func DeadLetterRecord(serde *canonical.Serde, topic string, rec *kgo.Record, d *canonical.DeadLetter) (*kgo.Record, error) {
	v, err := serde.Encode(d)
	if err != nil {
		return nil, fmt.Errorf("encoding dead letter: %w", err)
	}
	return &kgo.Record{Topic: topic, Key: rec.Key, Value: v, Headers: append([]kgo.RecordHeader(nil), rec.Headers...)}, nil
}

// DeadLetters turns a permanent failure into the dead letter of its input,
// written to topic instead of the outputs; a transient one passes through
// untouched (it must never be dead-lettered). It also turns each scoped
// dead letter among a success's outputs (Output.DeadLetter) into the
// input's dead letter for that destination or program, in its place
// beside the other outputs. A dead letter that cannot be encoded is a
// transient failure: without it the record would be lost. The driver
// knows a dead letter by its topic.
func DeadLetters(stage, topic string, serde *canonical.Serde, log *slog.Logger) Middleware {
	return func(next RecordHandler) RecordHandler {
		return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			outs, id, err := next(ctx, rec)
			if err == nil {
				return scopedDeadLetters(ctx, stage, topic, serde, log, rec, outs, id)
			}
			if !IsPermanent(err) {
				return outs, id, err
			}
			d := DeadLetterOf(stage, id, rec, err)
			out, encErr := DeadLetterRecord(serde, topic, rec, d)
			if encErr != nil {
				return nil, id, encErr
			}
			// The span and the log get the error's text: d.Reason may hold
			// the error's detail (message content).
			trace.SpanFromContext(ctx).SetStatus(codes.Error, err.Error())
			log.Info("dead-lettering record", logattr.MessageID(id.MessageID),
				logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset),
				logattr.Reason(err.Error()))
			return []*kgo.Record{out}, id, nil
		}
	}
}

// scopedDeadLetters replaces each scoped dead letter placeholder in outs
// (see ScopedOf) by the dead letter of rec for its destination or program:
// class permanent, one attempt (the handler succeeded; only part of its
// work failed, for a reason of the message itself).
func scopedDeadLetters(ctx context.Context, stage, topic string, serde *canonical.Serde, log *slog.Logger,
	rec *kgo.Record, outs []*kgo.Record, id Ident) ([]*kgo.Record, Ident, error) {
	for i, o := range outs {
		s, ok := ScopedOf(o)
		if !ok {
			continue
		}
		now := time.Now()
		d := DeadLetter(stage, id, rec, canonical.ErrorPermanent, s.DeadLetterReason(), 1, now, now)
		d.Destination, d.Program = s.Destination, s.Program
		out, err := DeadLetterRecord(serde, topic, rec, d)
		if err != nil {
			return nil, id, err
		}
		outs[i] = out
		var spanAttrs []attribute.KeyValue
		attrs := []any{logattr.MessageID(id.MessageID), logattr.Topic(rec.Topic), logattr.Partition(rec.Partition),
			logattr.Offset(rec.Offset), logattr.Reason(s.Reason)} // never the detail
		if s.Destination != "" {
			spanAttrs = append(spanAttrs, attribute.String("hl7bus.destination", s.Destination))
			attrs = append(attrs, logattr.Destination(s.Destination))
		}
		if s.Program != "" {
			spanAttrs = append(spanAttrs, attribute.String("hl7bus.program", s.Program))
		}
		trace.SpanFromContext(ctx).AddEvent("scoped dead letter", trace.WithAttributes(spanAttrs...))
		// The program is in the dead letter; logattr has no key for it yet.
		log.Info("dead-lettering record for one destination or program", attrs...)
	}
	return outs, id, nil
}
