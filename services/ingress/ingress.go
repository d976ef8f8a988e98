// Package ingress is the ingress stage: MLLP listeners that write every
// frame they receive to the raw topic and acknowledge the sender only once
// Kafka has the record (acks=all, idempotent producer). A frame with no
// usable MSH is written too (parse dead-letters it, so nothing is lost) and
// answered with AR.
package ingress

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Ordering modes of an interface: what the Kafka key is, and so what order
// is kept.
const (
	OrderPatient   = "patient"   // sending facility + first PID-3 with its authority (default)
	OrderInterface = "interface" // one key per interface: strict FIFO
	OrderNone      = "none"      // the message ID: no order, most parallelism
)

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

// WithDefaults returns it with its listener settings resolved: the limits
// and timeouts a zero value leaves to the default, and max_frame_size
// folded into max_message_size.
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
		switch {
		case f.d < 0:
			errs = append(errs, fmt.Errorf("%s.%s: must not be negative", key, f.name))
		case f.d > 0 && f.d < time.Millisecond:
			// A number without a unit decodes as nanoseconds: 30 would
			// close every connection at once.
			errs = append(errs, fmt.Errorf("%s.%s: %v is too short; a duration needs a unit (for example 30s)", key, f.name, f.d))
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
		if it.Protocol != "mllp" {
			errs = append(errs, fmt.Errorf("%s.protocol: %q is not supported (mllp)", key, it.Protocol))
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

	mu      sync.Mutex
	entropy io.Reader
	servers []*mllp.Server
	addrs   map[string]string
	done    chan struct{}
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
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log.With(logattr.Stage("ingress")), parser: hl7v2.NewParser(),
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
	s.done = make(chan struct{})
	var wg sync.WaitGroup
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
		open := conns.WithLabelValues(it.Name)
		srv := mllp.NewServer(s.handler(it), mllp.WithMaxFrameSize(it.MaxMessageSize),
			mllp.WithMaxConnections(it.MaxConnections), mllp.WithIdleTimeout(it.IdleTimeout), mllp.WithReadTimeout(it.ReadTimeout),
			mllp.WithOversizeReply(s.oversizeReply(it)),
			mllp.WithAcceptState(func(ok bool) { s.tel.Health.Set(part, ok) }),
			mllp.WithConnEvents(mllp.ConnEvents{Opened: open.Inc, Closed: open.Dec,
				Rejected: func(reason string) { rejected.WithLabelValues(it.Name, reason).Inc() }}),
			mllp.WithLogger(s.log.With(logattr.Interface(it.Name))))
		s.mu.Lock()
		s.servers = append(s.servers, srv)
		s.addrs[it.Name] = ln.Addr().String()
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, mllp.ErrClosed) {
				s.log.Error("listener stopped", logattr.Interface(it.Name), logattr.Error(err))
			}
		}()
		s.log.Info("listening", logattr.Interface(it.Name), logattr.Address(ln.Addr().String()))
	}
	go func() { wg.Wait(); close(s.done) }()
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
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
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

func (s *Service) handler(it Interface) mllp.Handler {
	return mllp.HandlerFunc(func(ctx context.Context, conn mllp.ConnInfo, frame []byte) ([]byte, error) {
		received := time.Now()
		id := s.newID(received)
		log := s.log.With(logattr.Interface(it.Name), logattr.MessageID(id))
		// The root span of the message's trace. Attributes are routing
		// metadata only, never content.
		ctx, span := s.tracer.Start(ctx, "ingress receive", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("hl7bus.interface", it.Name), attribute.String("hl7bus.message_id", id)))
		defer span.End()
		ackSent := "none"
		msgType := "unknown"
		defer func() {
			s.messages.WithLabelValues(it.Name, msgType, ackSent).Inc()
			s.ackTime.WithLabelValues(it.Name).Observe(time.Since(received).Seconds())
		}()
		raw := &canonical.Raw{MessageID: id, Interface: it.Name, ReceivedAt: received, Protocol: "mllp",
			Peer: conn.RemoteAddr.String(), Payload: frame}
		if conn.TLS != nil && len(conn.TLS.PeerCertificates) > 0 {
			raw.TLSIdentity = conn.TLS.PeerCertificates[0].Subject.String()
		}
		m, perr := s.parser.Parse(frame)
		if perr == nil && hl7v2.IsAck(m) {
			// Never acknowledge an acknowledgement; nothing to store either.
			log.Warn("sender sent an acknowledgement to an inbound interface; ignored")
			return nil, nil
		}
		if perr == nil {
			raw.Header = canonical.HeaderOf(m)
			raw.OrderingKey = orderingKey(it, m, id)
			msgType = metricType(raw.Header.MessageCode, raw.Header.TriggerEvent)
			span.SetAttributes(attribute.String("hl7bus.message_type", msgType))
		} else {
			raw.OrderingKey = "interface:" + it.Name
			// A later segment is broken but the MSH may be fine: then the
			// AR answers the message (MSA-2 = its MSH-10), so the sender can
			// match it, and the record says what the message was.
			if msh := mshOnly(s.parser, frame); msh != nil {
				raw.Header = canonical.HeaderOf(msh)
				raw.OrderingKey = orderingKey(it, msh, id)
				m = msh
			}
		}
		stored := s.store(ctx, raw) == nil
		if perr != nil {
			// Unparseable: AR whether or not the store worked, since
			// resending the same bytes cannot help.
			log.Warn("message rejected", logattr.Stored(stored), logattr.Error(perr))
			span.SetStatus(codes.Error, "unparseable")
			ackSent = hl7v2.AckReject
			if m != nil {
				return rejectParsed(m, perr, id), nil
			}
			return rejectUnparseable(perr, id), nil
		}
		log = log.With(logattr.ControlID(m.ControlID()))
		plan := hl7v2.PlanAck(m)
		code, text := hl7v2.AckAccept, ""
		if plan.Enhanced {
			code = hl7v2.AckCommitAccept
		}
		if !stored {
			code, text = hl7v2.AckError, "message could not be stored; resend it"
			if plan.Enhanced {
				code = hl7v2.AckCommitError
			}
		}
		if plan.Enhanced && !plan.WantAccept(stored) {
			return nil, nil
		}
		ackSent = code
		if !stored {
			span.SetStatus(codes.Error, "not stored")
		}
		ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: code, ControlID: id, Time: received, Text: text})
		if err != nil {
			return nil, fmt.Errorf("building ACK: %w", err)
		}
		if stored {
			log.Debug("message accepted")
		}
		return ack.Bytes(), nil
	})
}

// store writes the raw record and waits until Kafka has it.
func (s *Service) store(ctx context.Context, raw *canonical.Raw) error {
	v, err := s.serde.Encode(raw)
	if err != nil {
		s.log.Error("encoding raw record", logattr.MessageID(raw.MessageID), logattr.Error(err))
		return err
	}
	// The record carries ctx, so the publish hook injects the trace context
	// into its headers.
	err = s.producer.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(raw.OrderingKey), Value: v, Context: ctx}).FirstErr()
	if err != nil {
		s.log.Error("storing raw record", logattr.MessageID(raw.MessageID), logattr.Error(err))
	}
	return err
}

// metricType is CODE^EVENT for a metric label, CODE when the event is not
// an HL7 one, or "other".
func metricType(code, event string) string {
	// Only codes HL7 defines (tables 0076 and 0003) become labels: a label
	// set must stay bounded whatever senders send.
	if t, ok := defs.LookupTable(76); !ok || !t.Has(code) {
		return "other"
	}
	if t, ok := defs.LookupTable(3); !ok || !t.Has(event) {
		return code
	}
	return code + "^" + event
}

// orderingKey computes the Kafka key by the interface's ordering mode.
func orderingKey(it Interface, m *hl7v2.Message, id string) string {
	switch it.Ordering {
	case OrderInterface:
		return "interface:" + it.Name
	case OrderNone:
		return id
	}
	fac := strings.TrimSpace(m.MSH().Field(4).Comp(1).String())
	pid, ok := m.Segment("PID", 1)
	if !ok {
		return fac + "|"
	}
	cx := pid.Field(3).Rep(1)
	return fac + "|" + strings.TrimSpace(cx.Comp(1).String()) + "^" + strings.TrimSpace(cx.Comp(4).Sub(1).String())
}

// mshOnly parses just the first segment of frame, for answering a message
// whose MSH is sound when a later segment is not; nil when the MSH is not.
func mshOnly(p *hl7v2.Parser, frame []byte) *hl7v2.Message {
	end := bytes.IndexAny(frame, "\r\n")
	if end < 0 {
		end = len(frame)
	}
	m, err := p.Parse(frame[:end])
	if err != nil || hl7v2.IsAck(m) {
		return nil
	}
	return m
}

// rejectParsed builds the AR (CR in enhanced mode) of a message whose MSH
// is usable, with the parse error in ERR.
func rejectParsed(m *hl7v2.Message, perr error, id string) []byte {
	code := hl7v2.AckReject
	if hl7v2.PlanAck(m).Enhanced {
		code = hl7v2.AckCommitReject
	}
	ec := hl7v2.CodeSegmentSequence
	if errors.Is(perr, hl7v2.ErrDelimiters) {
		ec = hl7v2.CodeDataType
	}
	ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: code, ControlID: id,
		Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: ec, Rule: "parse", Text: perr.Error()}}})
	if err != nil {
		return rejectUnparseable(perr, id)
	}
	return ack.Bytes()
}

// rejectUnparseable builds an AR for a frame without a usable MSH. With no
// MSH to answer, it uses the default delimiters, v2.5, and an empty MSA-2.
func rejectUnparseable(err error, id string) []byte {
	code := hl7v2.CodeSegmentSequence
	if errors.Is(err, hl7v2.ErrDelimiters) {
		code = hl7v2.CodeDataType
	}
	stub := "MSH|^~\\&|||||" + time.Now().Format("20060102150405") + "||XXX^X00|" + id + "|P|2.5\r"
	m, perr := hl7v2.Parse([]byte(stub))
	if perr != nil {
		return nil
	}
	ack, aerr := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: hl7v2.AckReject, ControlID: id,
		Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: code, Rule: "parse", Text: err.Error()}}})
	if aerr != nil {
		return nil
	}
	// The stub's control ID is ours, not the sender's: clear MSA-2 and
	// MSH-9's placeholder event.
	_ = ack.Set("MSA-2", "")
	_ = ack.Set("MSH-9", "ACK")
	return ack.Bytes()
}
