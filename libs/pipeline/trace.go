package pipeline

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Trace runs each record under its process span, a child of the trace its
// headers carry, named for the stage and the message ID (never content),
// and puts the span's context on the outputs: the publish hook then
// writes a trace context that continues this trace. A transient failure
// sets the span's status; DeadLetters sets it for a permanent one. With a
// nil tracer it only passes the record on.
func Trace(tracer *kotel.Tracer, stage string) Middleware {
	return func(next RecordHandler) RecordHandler {
		if tracer == nil {
			return next
		}
		return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			_, span := tracer.WithProcessSpan(rec)
			defer span.End()
			// The process span is built from the record's context; the
			// caller's values and cancellation are kept.
			ctx = trace.ContextWithSpan(ctx, span)
			span.SetAttributes(attribute.String("hl7bus.stage", stage))
			outs, id, err := next(ctx, rec)
			span.SetAttributes(attribute.String("hl7bus.message_id", id.MessageID))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			for _, o := range outs {
				o.Context = ctx
			}
			return outs, id, err
		}
	}
}
