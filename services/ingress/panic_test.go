package ingress

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// panickingTracer makes the ingress tracer's span start panic for the
// next n messages: a dependency of accept that trips a bug, the way a
// hostile message could.
type panickingTracer struct {
	noop.TracerProvider
	n *atomic.Int32
}

func (p panickingTracer) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	if name != "hl7bus/ingress" {
		return p.TracerProvider.Tracer(name, opts...)
	}
	return panickingSpans{Tracer: p.TracerProvider.Tracer(name, opts...), n: p.n}
}

type panickingSpans struct {
	trace.Tracer
	n *atomic.Int32
}

func (p panickingSpans) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if p.n.Add(-1) >= 0 {
		panic("a bug in a dependency of accept")
	}
	return p.Tracer.Start(ctx, name, opts...)
}

// TestAcceptPanicAnswersAEAndTheListenerLives: accept panics on a
// message; its sender gets AE with an ERR 207 (CE in enhanced mode) on the
// same connection, which then carries the next message to an AA, and the
// listener serves new connections. The log names the panic by type and
// stack only.
func TestAcceptPanicAnswersAEAndTheListenerLives(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs syncBuffer
	panics := &atomic.Int32{}
	tel := telemetry.New(panickingTracer{n: panics})
	s := New(Config{Interfaces: []Interface{{Name: "in", Protocol: "mllp", Address: "127.0.0.1:0"}}, Telemetry: tel},
		env.Kafka, env.Serde, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())

	c := mllp.NewClient(s.Addr("in"), mllp.WithAckTimeout(10*time.Second))
	defer c.Close()
	for i, tt := range []struct {
		frame  string
		panics bool
		code   string
	}{
		{msg("P1", ""), true, "AE"},
		{msg("P2", ""), false, "AA"},
		{msg("P3", "AL|NE"), true, "CE"},
		{msg("P4", "AL|NE"), false, "CA"},
	} {
		if tt.panics {
			panics.Store(1)
		}
		reply, err := c.Send(ctx, []byte(tt.frame))
		if err != nil {
			t.Fatalf("message %d: %v (the connection did not survive)", i+1, err)
		}
		a, err := hl7v2.ParseACK(reply)
		if err != nil {
			t.Fatalf("message %d: reply %q: %v", i+1, reply, err)
		}
		want := "P" + string(rune('1'+i))
		if a.Code != tt.code || a.ControlID != want {
			t.Errorf("message %d: MSA %s %q, want %s %q", i+1, a.Code, a.ControlID, tt.code, want)
		}
		if tt.panics && (len(a.Errors) == 0 || a.Errors[0] != hl7v2.CodeInternalError || !strings.Contains(string(reply), "internal error")) {
			t.Errorf("message %d: reply %q, want an ERR 207 saying internal error", i+1, reply)
		}
	}

	// A new connection is served too.
	c2 := mllp.NewClient(s.Addr("in"), mllp.WithAckTimeout(10*time.Second))
	defer c2.Close()
	reply, err := c2.Send(ctx, []byte(msg("P5", "")))
	if a, perr := hl7v2.ParseACK(reply); err != nil || perr != nil || a.Code != "AA" || a.ControlID != "P5" {
		t.Fatalf("a new connection after the panics: %q %v %v", reply, err, perr)
	}
	// Each message counted once, with the code it got.
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "hl7bus_ingress_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "ack" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if want := map[string]float64{"AE": 1, "AA": 2, "CE": 1, "CA": 1}; !maps.Equal(counts, want) {
		t.Errorf("hl7bus_ingress_messages_total by ack: %v, want %v", counts, want)
	}
	out := logs.String()
	if !strings.Contains(out, "panic_type=string") || !strings.Contains(out, "stack=") || strings.Contains(out, "a bug in a dependency") {
		t.Errorf("the log must name the panic's type and stack, never its value: %s", out)
	}
	for _, phi := range []string{"ZZTESTNAME", "99887766"} {
		if strings.Contains(out, phi) {
			t.Errorf("the logs carry %q", phi)
		}
	}
}
