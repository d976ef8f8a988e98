package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hl7bus/hl7bus/libs/canonical"
	libconfig "github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Deps is what the admin server is built from. Log, Telemetry, Auth,
// Audit and Index are required; Records and Serde are needed for message
// detail (decisions, deliveries, content), Replayer for the replay and
// dead-letter discard endpoints, Controller for pause, resume and reset:
// without one, its endpoints answer 503.
type Deps struct {
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	Auth      Authenticator
	Audit     Auditor
	Index     Index
	Records   RecordReader
	// Serde decodes the records Records reads.
	Serde      *canonical.Serde
	Replayer   Replayer
	Controller Controller
	// Destinations and Interfaces are the configuration's, listed by
	// GET /destinations and GET /interfaces.
	Destinations []DestinationInfo
	Interfaces   []InterfaceInfo
	// Instance names this process in logs.
	Instance string
}

// DestinationInfo is one configured destination.
type DestinationInfo struct {
	Name     string
	Protocol string
}

// InterfaceInfo is one configured inbound interface.
type InterfaceInfo struct {
	Name     string
	Protocol string
	Address  string
}

// Server is the admin API's HTTP server. Start binds the listener, Run
// serves (and runs the Replayer and the Controller), Stop drains.
type Server struct {
	cfg Config
	d   Deps
	log *slog.Logger

	routes  []*route
	mux     *http.ServeMux
	handler http.Handler
	// now is the clock "since=24h" and audit times read.
	now func() time.Time
	// tlsConfig builds the listener's TLS configuration. It is a field so
	// the implementation can move to libs/config (ServerTLS.Config)
	// without touching the server.
	tlsConfig func(libconfig.ServerTLS) (*tls.Config, error)

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec

	// tokensSeen holds the principals whose use this process has already
	// audited: token use is audited once per token per process, not on
	// every request.
	tokensSeen sync.Map

	mu       sync.Mutex
	ln       net.Listener
	srv      *http.Server
	serveErr chan error
	stopped  bool
}

// New returns the admin server for cfg. It does not listen yet (Start).
func New(cfg Config, d Deps) *Server {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Replay.MaxRate == 0 {
		cfg.Replay.MaxRate = DefaultMaxRate
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Telemetry == nil {
		d.Telemetry = telemetry.Nop()
	}
	s := &Server{
		cfg:       cfg,
		d:         d,
		log:       d.Log,
		now:       time.Now,
		tlsConfig: serverTLSConfig,
		requests: d.Telemetry.CounterVec(prometheus.CounterOpts{
			Name: "hl7bus_admin_requests_total",
			Help: "Admin API requests by route pattern and HTTP status.",
		}, "route", "code"),
		latency: d.Telemetry.HistogramVec(prometheus.HistogramOpts{
			Name:    "hl7bus_admin_request_duration_seconds",
			Help:    "Admin API request latency by route pattern.",
			Buckets: telemetry.LatencyBuckets,
		}, "route"),
	}
	s.routes = s.table()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern(), s.wrap(rt))
	}
	s.handler = http.HandlerFunc(s.serve)
	return s
}

// Handler is the server's whole HTTP handler (tests serve it with
// httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address Start bound, "" before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Start binds cfg.Address (with TLS when cfg.TLS is enabled) and starts
// serving. It returns once the listener is bound.
func (s *Server) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	if s.stopped {
		return errors.New("admin: start after stop")
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("admin.address: %w", err)
	}
	if s.cfg.TLS.Enabled() {
		tc, err := s.tlsConfig(s.cfg.TLS)
		if err != nil {
			_ = ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler: s.handler,
		// Slowloris bounds; writes get longer because a content read
		// fetches several records from Kafka.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures and the like, which carry addresses and
		// protocol detail only.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.serveErr = make(chan error, 1)
	go func(srv *http.Server, ln net.Listener, errc chan<- error) {
		errc <- srv.Serve(ln)
	}(s.srv, ln, s.serveErr)
	s.log.Info("admin API listening", logattr.Address(ln.Addr().String()), logattr.Instance(s.d.Instance))
	return nil
}

// Run serves until ctx ends (nil) or the listener, the Replayer or the
// Controller fails. It calls Start when it was not called.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	serveErr := s.serveErr
	s.mu.Unlock()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type part struct {
		name string
		run  func(context.Context) error
	}
	var parts []part
	if s.d.Replayer != nil {
		parts = append(parts, part{"replayer", s.d.Replayer.Run})
	}
	if s.d.Controller != nil {
		parts = append(parts, part{"controller", s.d.Controller.Run})
	}
	partErr := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			err := p.run(rctx)
			if err == nil && rctx.Err() == nil {
				err = errors.New("stopped early")
			}
			if err != nil && rctx.Err() == nil {
				partErr <- fmt.Errorf("admin %s: %w", p.name, err)
			}
		})
	}

	var cause error
	for cause == nil {
		select {
		case <-ctx.Done():
			cause = context.Canceled
		case err := <-serveErr:
			// Stop closed the listener: keep the other parts running
			// until ctx ends, as the module contract has it (Stop, then
			// the context).
			if errors.Is(err, http.ErrServerClosed) {
				serveErr = nil
				continue
			}
			cause = fmt.Errorf("admin: serving: %w", err)
		case err := <-partErr:
			cause = err
		}
	}
	cancel()
	wg.Wait()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	_ = s.Stop(sctx)
	if errors.Is(cause, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return cause
}

// Stop stops accepting connections and waits, within ctx, for the
// requests in flight to finish. It is idempotent and safe without Start.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.stopped = true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		// Past the deadline: cut what is left.
		_ = srv.Close()
		return fmt.Errorf("admin: draining requests: %w", err)
	}
	return nil
}

// serve routes a request, counting it under its route pattern (never the
// raw path: IDs in paths would make a metric series per message).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.unmatched(sw, r)
		pattern = "unmatched"
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK
	}
	s.requests.WithLabelValues(pattern, strconv.Itoa(code)).Inc()
	s.latency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
}

// unmatched answers a path or method no route has, as JSON (the mux
// decides between 404 and 405 and sets Allow).
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	code := probe.code
	if code == 0 || code == http.StatusOK {
		code = http.StatusNotFound
	}
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	writeJSON(w, code, api.Error{Error: http.StatusText(code)})
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter catches the status and headers of the mux's own 404/405.
type probeWriter struct {
	header http.Header
	code   int
}

func (w *probeWriter) Header() http.Header         { return w.header }
func (w *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *probeWriter) WriteHeader(code int)        { w.code = code }

// serverTLSConfig builds the listener's TLS configuration from the
// design's server TLS block (libs/config: TLS 1.2 or later, the pair
// reloaded from disk when renewed, client certificates when asked); its
// errors name the key inside the block, so the section is prefixed here.
func serverTLSConfig(t libconfig.ServerTLS) (*tls.Config, error) {
	tc, err := t.Config()
	if err != nil {
		return nil, fmt.Errorf("admin.tls.%w", err)
	}
	return tc, nil
}
