// Package telemetry is what every service shares for being observed: a
// Prometheus registry (one per service, so five stages in one process do not
// collide and every test gets a fresh one), an OpenTelemetry tracer
// provider with the W3C trace-context propagator, and the /metrics,
// /healthz and /readyz endpoints.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry carries a service's registry, tracer provider, propagator and
// health. The zero value is not usable; use New or Nop.
type Telemetry struct {
	Registry       *prometheus.Registry
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	Health         *Health
	// PProf adds Go's /debug/pprof endpoints to Handler. Off by default:
	// profiles reveal internals and cost CPU while taken.
	PProf bool
}

// New returns telemetry with a fresh registry (with Go and process
// collectors and hl7bus_build_info) and tp as tracer provider (no-op when
// nil).
func New(tp trace.TracerProvider) *Telemetry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newBuildInfoCollector(ReadBuildInfo()))
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Telemetry{
		Registry:       reg,
		TracerProvider: tp,
		// W3C trace context, so a trace continues through any
		// OpenTelemetry-instrumented peer, plus baggage.
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Health:     &Health{parts: map[string]bool{}},
	}
}

// Nop returns telemetry that records metrics into a private registry and
// traces nothing; for callers that do not care.
func Nop() *Telemetry { return New(nil) }

// Tracer returns the named tracer.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Health tracks which parts of a service are ready.
type Health struct {
	mu    sync.Mutex
	parts map[string]bool
}

// Register adds a part, not ready yet: readiness waits for it.
func (h *Health) Register(part string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.parts[part]; !ok {
		h.parts[part] = false
	}
}

// Set marks a part ready or not.
func (h *Health) Set(part string, ready bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.parts[part] = ready
}

// NotReady returns the parts that are not ready, sorted.
func (h *Health) NotReady() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p, ok := range h.parts {
		if !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Handler serves /metrics, /healthz (the process is alive) and /readyz
// (every registered part is ready; 503 with the list otherwise).
func (t *Telemetry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if nr := t.Health.NotReady(); len(nr) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", nr)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if t.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Serve serves Handler on addr until ctx ends. It returns once listening,
// with the address it got.
func (t *Telemetry) Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("http.address: %w", err)
	}
	srv := &http.Server{Handler: t.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is gone; readiness probes will notice
		}
	}()
	return ln.Addr().String(), nil
}
