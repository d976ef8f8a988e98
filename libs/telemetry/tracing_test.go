package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestOTLPExport(t *testing.T) {
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && strings.Contains(r.Header.Get("Content-Type"), "protobuf") {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ctx := context.Background()
	tp, shutdown, err := NewTracerProvider(ctx, TracingConfig{OTLPEndpoint: srv.URL}, "hl7bus-test")
	if err != nil {
		t.Fatal(err)
	}
	_, span := New(tp).Tracer("t").Start(ctx, "ingress receive")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 {
		t.Fatal("no span exported to the OTLP endpoint")
	}
	if tp, _, err := NewTracerProvider(ctx, TracingConfig{}, "x"); tp != nil || err != nil {
		t.Errorf("off by default: %v %v", tp, err)
	}
	bad := TracingConfig{OTLPEndpoint: "collector:4318", SampleRatio: 2}.Validate()
	if bad == nil || !strings.Contains(bad.Error(), "tracing.otlp_endpoint") || !strings.Contains(bad.Error(), "tracing.sample_ratio") {
		t.Errorf("validate: %v", bad)
	}
}
