// Package ingress is the ingress stage: MLLP listeners that write every
// frame they receive to the raw topic and acknowledge the sender only once
// Kafka has the record (acks=all, idempotent producer). What ingress
// refuses (no usable MSH, a required MSH field missing, a stray MSA, bad
// batch counts, an acknowledgement sent as input...) is written too, with
// the verdict in raw.rejected, so parse dead-letters it and nothing
// received is lost; the sender gets AR (or nothing, for an ACK). The ACK
// policy is protocol-neutral (accept.go, ack.go); the listeners are
// adapters (mllp.go) that hand each message to accept.
package ingress

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/mapping"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Ordering modes of an interface: what the Kafka key is, and so what order
// is kept (see canonical.OrderingKey).
const (
	OrderPatient   = canonical.OrderPatient   // sending facility + first PID-3 with its authority (default)
	OrderInterface = canonical.OrderInterface // one key per interface: strict FIFO
	OrderNone      = canonical.OrderNone      // the message ID: no order, most parallelism
)

// Values of ack.on_profile_error.
const (
	// OnProfileErrorAccept acknowledges a message whatever its profile
	// says; parse records the report in parsed.validation (default).
	OnProfileErrorAccept = "accept"
	// OnProfileErrorError validates at ingress and answers AE with ERR
	// segments for a message that fails the interface's profile; it is
	// stored with the verdict profile_error and never routed.
	OnProfileErrorError = "error"
)

// AckPolicy is an interface's acknowledgement options (key ack).
type AckPolicy struct {
	// OnProfileError is accept (default) or error.
	OnProfileError string `yaml:"on_profile_error"`
}

// Interface is one inbound listener.
type Interface struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"` // mllp
	Address  string `yaml:"address"`
	Ordering string `yaml:"ordering"`
	// MaxMessageSize bounds a message (one MLLP frame) in bytes. A larger
	// one is answered AR naming the limit, at once, and is not stored.
	// Default (0) DefaultMaxMessageSize.
	MaxMessageSize int `yaml:"max_message_size"`
	// MaxFrameSize is the former name of MaxMessageSize, still accepted;
	// setting both to different values is an error. WithDefaults folds it
	// into MaxMessageSize.
	MaxFrameSize int `yaml:"max_frame_size"`
	// MaxConnections caps the interface's open connections; one more is
	// closed at once (and counted), so a flood of idle connections cannot
	// exhaust the process's file descriptors. Default (0)
	// DefaultMaxConnections.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a connection on which no frame starts for this
	// long. Default (0) 10m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ReadTimeout bounds one frame, from its start block to its end block:
	// raise it for slow links that send large messages. Default (0) 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Profile is the conformance profile (a YAML file) the parse stage
	// validates this interface's messages against; empty for the standard
	// only.
	Profile string `yaml:"profile"`
	// Ack is the acknowledgement policy.
	Ack AckPolicy `yaml:"ack"`
	// Rules are the interface's inbound rules (interfaces[].rules), run by
	// the transform stage; ingress does not use them. The root
	// configuration compiles them (mapping.Compile, scope Inbound).
	Rules []mapping.Rule `yaml:"rules"`
}

// Listener defaults of an interface.
const (
	// DefaultMaxMessageSize (16 MiB) is larger than any lab report with
	// embedded PDFs we have seen; every topic is sized from the largest
	// interface limit.
	DefaultMaxMessageSize = mllp.DefaultMaxFrameSize
	// DefaultMaxConnections is far above what the senders of one
	// interface open, far below the descriptors a process has.
	DefaultMaxConnections = 1000
	// DefaultIdleTimeout: senders keep connections open between bursts,
	// but one that vanished without a FIN must not hold a slot forever.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultReadTimeout carries 16 MiB at about 4.5 Mbit/s; slower
	// links that send large messages need a larger read_timeout.
	DefaultReadTimeout = 30 * time.Second
)

// WithDefaults returns it with every default resolved — the limits and
// timeouts a zero value leaves to the default, max_frame_size folded into
// max_message_size, the ordering and ack.on_profile_error — so that the
// stage and `hl7bus config print` see the same values.
func (it Interface) WithDefaults() Interface {
	if it.MaxMessageSize == 0 {
		it.MaxMessageSize = it.MaxFrameSize
	}
	it.MaxFrameSize = 0
	if it.MaxMessageSize <= 0 {
		it.MaxMessageSize = DefaultMaxMessageSize
	}
	if it.MaxConnections <= 0 {
		it.MaxConnections = DefaultMaxConnections
	}
	if it.IdleTimeout <= 0 {
		it.IdleTimeout = DefaultIdleTimeout
	}
	if it.ReadTimeout <= 0 {
		it.ReadTimeout = DefaultReadTimeout
	}
	if it.Ordering == "" {
		it.Ordering = OrderPatient
	}
	if it.Ack.OnProfileError == "" {
		it.Ack.OnProfileError = OnProfileErrorAccept
	}
	return it
}

// validateListener reports problems with the interface's listener
// settings, each naming its key under key (interfaces[i]).
func (it Interface) validateListener(key string) []error {
	var errs []error
	for _, f := range []struct {
		name string
		n    int
	}{{"max_message_size", it.MaxMessageSize}, {"max_frame_size", it.MaxFrameSize}, {"max_connections", it.MaxConnections}} {
		if f.n < 0 {
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative", key, f.name))
		}
	}
	if it.MaxMessageSize > 0 && it.MaxFrameSize > 0 && it.MaxMessageSize != it.MaxFrameSize {
		errs = append(errs, fmt.Errorf("%s.max_frame_size: is the former name of max_message_size, and the two differ (%d and %d); set only max_message_size",
			key, it.MaxFrameSize, it.MaxMessageSize))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"idle_timeout", it.IdleTimeout}, {"read_timeout", it.ReadTimeout}} {
		if err := config.CheckDuration(key+"."+f.name, f.d); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Config is the ingress stage's configuration.
type Config struct {
	Interfaces []Interface
	// ShutdownTimeout bounds the wait for in-flight messages. Default 30s.
	ShutdownTimeout time.Duration
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Parser is the process's one parser, built by the composition root
	// from the parser section (hl7v2.ParserConfig): the header ingress
	// computes is carried to every later stage, so parse and transform
	// must read the payload as ingress did. nil: hl7v2.NewParser().
	Parser *hl7v2.Parser
}

// Validate reports problems, each naming its key.
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i, it := range c.Interfaces {
		key := fmt.Sprintf("interfaces[%d]", i)
		switch {
		case it.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case names[it.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, it.Name))
		}
		names[it.Name] = true
		if !slices.Contains(protocols, it.Protocol) {
			errs = append(errs, fmt.Errorf("%s.protocol: %q is not supported (%s)", key, it.Protocol, strings.Join(protocols, ", ")))
		}
		if _, _, err := net.SplitHostPort(it.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %v", key, err))
		}
		switch it.Ordering {
		case "", OrderPatient, OrderInterface, OrderNone:
		default:
			errs = append(errs, fmt.Errorf("%s.ordering: %q is not patient, interface or none", key, it.Ordering))
		}
		errs = append(errs, it.validateListener(key)...)
		switch it.Ack.OnProfileError {
		case "", OnProfileErrorAccept, OnProfileErrorError:
		default:
			errs = append(errs, fmt.Errorf("%s.ack.on_profile_error: %q is not accept or error", key, it.Ack.OnProfileError))
		}
	}
	return errors.Join(errs...)
}

// Service is a running ingress stage.
type Service struct {
	cfg      Config
	kc       kafka.Config
	serde    *canonical.Serde
	log      *slog.Logger
	parser   *hl7v2.Parser
	producer *kgo.Client
	topic    string

	tel      *telemetry.Telemetry
	tracer   trace.Tracer
	messages *prometheus.CounterVec
	ackTime  *prometheus.HistogramVec

	// validators holds the validator of each interface whose
	// ack.on_profile_error is error, by interface name (set by Start).
	validators map[string]*hl7v2.Validator

	mu      sync.Mutex
	entropy io.Reader
	servers []listener
	addrs   map[string]string
	// done closes when every listener's Serve has returned (set by Start).
	done chan struct{}
}

// New returns the stage; Start or Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	tel := cfg.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	parser := cfg.Parser
	if parser == nil {
		parser = hl7v2.NewParser()
	}
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log.With(logattr.Stage("ingress")), parser: parser,
		entropy: ulid.Monotonic(rand.Reader, 0), addrs: map[string]string{}, topic: kc.Topic(kafka.TopicRaw),
		tel: tel, tracer: tel.Tracer("hl7bus/ingress"),
		messages: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_ingress_messages_total",
			Help: "Messages received, by interface, message type and ACK sent (AA, CA, AE, CE, AR, none)."}, "interface", "type", "ack"),
		ackTime: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_ingress_ack_latency_seconds",
			Help: "Time from receiving a message to sending its ACK (the durable write included).", Buckets: telemetry.LatencyBuckets}, "interface"),
	}
}

// Start prepares the topic and schema and opens every listener; it returns
// once they accept connections.
func (s *Service) Start(ctx context.Context) error {
	s.tel.Health.Register("ingress")
	if err := s.loadValidators(); err != nil {
		return err
	}
	p, err := kafka.NewProducer(s.kc, s.log, kafka.Instrument(s.tel, "ingress").Opts()...)
	if err != nil {
		return fmt.Errorf("ingress: producer: %w", err)
	}
	s.producer = p
	if err := kafka.EnsureTopics(ctx, p, s.kc, s.topic); err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	if _, err := s.serde.Register(ctx, s.topic, schemas.Raw); err != nil {
		return fmt.Errorf("ingress: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.done = done
	s.mu.Unlock()
	var wg sync.WaitGroup
	// done closes once every listener started here has stopped serving,
	// also when Start fails part way (Stop then waits for those started).
	defer func() { go func() { wg.Wait(); close(done) }() }()
	conns := s.tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_ingress_connections",
		Help: "Open MLLP connections, by interface."}, "interface")
	rejected := s.tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_ingress_rejected_connections_total",
		Help: "Connections closed at once, by interface and reason (max_connections, tls, http, no_start_block)."}, "interface", "reason")
	for _, it := range s.cfg.Interfaces {
		it = it.WithDefaults()
		ln, err := net.Listen("tcp", it.Address)
		if err != nil {
			return fmt.Errorf("ingress: interfaces %s: listening on %s: %w", it.Name, it.Address, err)
		}
		// Each listener is a part of readiness: ready from here (the
		// socket is bound and queues connections), unready while accept
		// fails (out of descriptors) and once it stops.
		part := "ingress listener " + it.Name
		s.tel.Health.Set(part, true)
		srv, err := s.newListener(it, listenerMetrics{
			accepting: func(ok bool) { s.tel.Health.Set(part, ok) },
			open:      conns.WithLabelValues(it.Name),
			rejected:  func(reason string) { rejected.WithLabelValues(it.Name, reason).Inc() },
		})
		if err != nil {
			_ = ln.Close()
			return err
		}
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.addrs[it.Name] = ln.Addr().String()
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				s.log.Error("listener stopped", logattr.Interface(it.Name), logattr.Error(err))
			}
		}()
		s.log.Info("listening", logattr.Interface(it.Name), logattr.Address(ln.Addr().String()))
	}
	s.tel.Health.Set("ingress", true)
	return nil
}

// Addr returns the address interface name listens on (useful with port 0).
func (s *Service) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// Stop stops accepting connections, lets every message in flight be
// written and acknowledged, then closes the producer. It is safe to call
// more than once and without Start.
func (s *Service) Stop(ctx context.Context) error {
	// Fail readiness first, so load balancers stop sending.
	s.tel.Health.Set("ingress", false)
	s.mu.Lock()
	servers, done := s.servers, s.done
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if done != nil && len(servers) > 0 {
		// Every Serve has returned (or ctx ended): no listener goroutine
		// outlives Stop.
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	if s.producer != nil {
		if err := s.producer.Flush(ctx); err != nil {
			errs = append(errs, err)
		}
		s.producer.Close()
		s.producer = nil
	}
	return errors.Join(errs...)
}

// Run starts the stage and serves until ctx ends, then stops it.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		_ = s.Stop(context.Background())
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Stop(stopCtx)
}

func (s *Service) newID(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), s.entropy).String()
}
