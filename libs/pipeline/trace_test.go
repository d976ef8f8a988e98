package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestTrace(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := kotel.NewTracer(kotel.TracerProvider(tp))
	tests := []struct {
		name   string
		err    error
		status codes.Code
	}{
		{"ok", nil, codes.Unset},
		{"transient failure", errors.New("registry unavailable"), codes.Error},
	}
	for i, tt := range tests {
		var inner trace.SpanContext
		h := func(ctx context.Context, _ *kgo.Record) ([]*kgo.Record, Ident, error) {
			inner = trace.SpanContextFromContext(ctx)
			if tt.err != nil {
				return nil, Ident{MessageID: "M1"}, tt.err
			}
			return []*kgo.Record{{Topic: "out"}}, Ident{MessageID: "M1"}, nil
		}
		outs, _, err := Trace(tracer, "parse")(h)(context.Background(), &kgo.Record{Topic: "in", Context: context.Background()})
		if !errors.Is(err, tt.err) {
			t.Fatalf("%s: %v", tt.name, err)
		}
		ended := spans.Ended()
		if len(ended) != i+1 {
			t.Fatalf("%s: %d spans", tt.name, len(ended))
		}
		s := ended[i]
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["hl7bus.stage"] != "parse" || attrs["hl7bus.message_id"] != "M1" || s.Status().Code != tt.status {
			t.Errorf("%s: span attributes %v, status %v", tt.name, attrs, s.Status())
		}
		if !inner.Equal(s.SpanContext()) {
			t.Errorf("%s: the handler does not run under the record's span", tt.name)
		}
		for _, o := range outs {
			if !trace.SpanContextFromContext(o.Context).Equal(s.SpanContext()) {
				t.Errorf("%s: output not produced under the record's span", tt.name)
			}
		}
	}
	// Without a tracer the handler is called as it is.
	called := false
	h := func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
		called = true
		return nil, Ident{}, nil
	}
	if _, _, _ = Trace(nil, "parse")(h)(context.Background(), &kgo.Record{}); !called {
		t.Error("no tracer: handler not called")
	}
}
