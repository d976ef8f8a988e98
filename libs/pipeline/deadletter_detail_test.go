package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

// detailedError is a failure with a detail, as mapping.RuleError is
// (pipeline does not depend on mapping: the interface is duck-typed).
type detailedError struct{ text, detail string }

func (e *detailedError) Error() string            { return e.text }
func (e *detailedError) DeadLetterDetail() string { return e.detail }

func TestDeadLetterReason(t *testing.T) {
	de := &detailedError{text: "rule loinc: the code at OBX[2]-3.1 is not in table lab_codes", detail: `"XYZ"`}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"plain", errors.New("not a message"), "not a message"},
		{"detailed", de, de.text + `: "XYZ"`},
		{"through Permanent", Permanent(de), de.text + `: "XYZ"`},
		{"through wrapping", Permanent(fmt.Errorf("lab-in: %w", de)), "lab-in: " + de.text + `: "XYZ"`},
		{"empty detail", &detailedError{text: "rule x: y"}, "rule x: y"},
	}
	for _, tt := range tests {
		if got := DeadLetterReason(tt.err); got != tt.want {
			t.Errorf("%s: DeadLetterReason = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := (Scoped{Reason: "rule r: x"}).DeadLetterReason(); got != "rule r: x" {
		t.Errorf("scoped without detail: %q", got)
	}
	if got := (Scoped{Reason: "rule r: x", Detail: `"XYZ"`}).DeadLetterReason(); got != `rule r: x: "XYZ"` {
		t.Errorf("scoped with detail: %q", got)
	}
}

// TestDeadLetterDetailStaysInTheRecord: an error's detail (message
// content, e.g. the code a table lacks) is in the dead-letter record's
// reason and nowhere else: not in the log line, not in the span's status
// or events; the same for a scoped dead letter's Detail.
func TestDeadLetterDetailStaysInTheRecord(t *testing.T) {
	const secret = "MRN-4711"
	serde := testSerde(t, map[string]string{"dlq.test": schemas.DeadLetter, "transformed": schemas.Transformed})
	ctx := context.Background()
	value, err := serde.Encode(&canonical.Transformed{MessageID: "M1", Header: canonical.Header{ControlID: "C1"}})
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(ctx) }()
	tracer := kotel.NewTracer(kotel.TracerProvider(tp))

	const text = "rule mrn-map: the code at PID-3[1].1 is not in table mrns"
	handlers := map[string]Handler[*canonical.Transformed]{
		"whole": func(context.Context, *canonical.Transformed) ([]Output, error) {
			return nil, Permanent(fmt.Errorf("stage: %w", &detailedError{text: text, detail: `"` + secret + `"`}))
		},
		"scoped": func(context.Context, *canonical.Transformed) ([]Output, error) {
			return []Output{{DeadLetter: &Scoped{Destination: "lis", Reason: text, Detail: `"` + secret + `"`}}}, nil
		},
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			rh := Chain(Typed(serde, h), Trace(tracer, "test"), DeadLetters("test", "dlq.test", serde, log))
			in := &kgo.Record{Topic: "transformed", Key: []byte("k"), Value: value, Context: ctx}
			before := len(spans.Ended())
			outs, _, err := rh(ctx, in)
			if err != nil || len(outs) != 1 || outs[0].Topic != "dlq.test" {
				t.Fatalf("%v %v", outs, err)
			}
			d, err := Decode[*canonical.DeadLetter](ctx, serde, outs[0].Value)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(d.Reason, text) || !strings.HasSuffix(d.Reason, `: "`+secret+`"`) {
				t.Errorf("dead letter reason %q: want the text and the detail", d.Reason)
			}
			if l := logs.String(); !strings.Contains(l, "not in table mrns") || strings.Contains(l, secret) {
				t.Errorf("log must give the reason without the detail: %s", l)
			}
			ended := spans.Ended()
			if len(ended) != before+1 {
				t.Fatalf("%d spans ended", len(ended)-before)
			}
			s := ended[before]
			if strings.Contains(s.Status().Description, secret) {
				t.Errorf("span status %q holds the detail", s.Status().Description)
			}
			if name == "whole" && (s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "not in table mrns")) {
				t.Errorf("span status %v: want the error's text", s.Status())
			}
			for _, a := range s.Attributes() {
				if strings.Contains(a.Value.String(), secret) {
					t.Errorf("span attribute %s = %q holds the detail", a.Key, a.Value.String())
				}
			}
			for _, e := range s.Events() {
				if strings.Contains(e.Name, secret) {
					t.Errorf("span event %q holds the detail", e.Name)
				}
				for _, a := range e.Attributes {
					if strings.Contains(a.Value.String(), secret) {
						t.Errorf("span event %s: %s holds the detail", e.Name, a.Key)
					}
				}
			}
		})
	}
}
