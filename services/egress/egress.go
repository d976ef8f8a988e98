// Package egress is the egress stage: one consumer group per destination
// reads out.<destination> and delivers each message over MLLP, committing
// the offset only after the receiver's ACK or a dead-letter write
// (at-least-once toward the outside world). AE and transport errors are
// retried with backoff; AR, or retries exhausted, go to dlq.egress. Every
// attempt is recorded on the delivery topic. Each destination runs on its
// own, so one that is down holds back only its own messages.
package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Retry is a destination's retry policy.
type Retry struct {
	// MaxAttempts bounds delivery attempts of one message before it is
	// dead-lettered; 0 means retry until delivered (the default: a
	// destination that is down for a day should get its messages after).
	MaxAttempts int `yaml:"max_attempts"`
	// InitialBackoff is the first wait; it doubles up to MaxBackoff.
	// Defaults 500ms and 1m.
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
}

// Destination is one outbound endpoint.
type Destination struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"` // mllp
	Address  string `yaml:"address"`
	// AckTimeout bounds the wait for the receiver's ACK. Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	Retry      Retry         `yaml:"retry"`
}

// Config is the egress stage's configuration.
type Config struct {
	Destinations []Destination
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
}

// Validate reports problems, each naming its key.
func (c Config) Validate() error {
	var errs []error
	names := map[string]bool{}
	for i, d := range c.Destinations {
		key := fmt.Sprintf("destinations[%d]", i)
		switch {
		case d.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case names[d.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, d.Name))
		case !destName.MatchString(d.Name):
			// The name becomes part of a topic name (out.<name>).
			errs = append(errs, fmt.Errorf("%s.name: %q may only hold letters, digits, '_' and '-'", key, d.Name))
		}
		names[d.Name] = true
		if d.Protocol != "mllp" {
			errs = append(errs, fmt.Errorf("%s.protocol: %q is not supported (mllp)", key, d.Protocol))
		}
		if _, _, err := net.SplitHostPort(d.Address); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %v", key, err))
		}
		if d.Retry.MaxAttempts < 0 {
			errs = append(errs, fmt.Errorf("%s.retry.max_attempts: must not be negative", key))
		}
	}
	return errors.Join(errs...)
}

var destName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Service is an egress stage.
type Service struct {
	cfg   Config
	kc    kafka.Config
	serde *canonical.Serde
	log   *slog.Logger
	tel   *telemetry.Telemetry

	attempts  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	endToEnd  *prometheus.HistogramVec
	up        *prometheus.GaugeVec
	deadTotal *prometheus.CounterVec
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	tel := cfg.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log.With(logattr.Stage("egress")), tel: tel,
		attempts: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_egress_attempts_total",
			Help: "Delivery attempts, by destination and outcome (delivered, retry, dead-lettered)."}, "destination", "outcome"),
		latency: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_egress_ack_latency_seconds",
			Help: "Time from sending a message to the receiver's ACK.", Buckets: telemetry.LatencyBuckets}, "destination"),
		endToEnd: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_end_to_end_latency_seconds",
			Help: "Time from ingress receiving a message to the destination's ACK.", Buckets: telemetry.LatencyBuckets}, "destination"),
		up: tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_destination_up",
			Help: "1 when the destination's last delivery attempt got an answer, 0 when it failed at the transport."}, "destination"),
		deadTotal: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_dlq_writes_total",
			Help: "Records written to a dead-letter queue, by stage."}, "stage"),
	}
}

// Run delivers to every destination until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	s.tel.Health.Register("egress")
	defer s.tel.Health.Set("egress", false)
	// acks=all (NewProducer): dead letters must be durable before the
	// offset commits.
	prod, err := kafka.NewProducer(s.kc, s.log, kafka.Instrument(s.tel, "egress").Opts()...)
	if err != nil {
		return fmt.Errorf("egress: producer: %w", err)
	}
	defer prod.Close()
	dlq, delivery := s.kc.DLQTopic("egress"), s.kc.Topic(kafka.TopicDelivery)
	topics := []string{dlq, delivery}
	for _, d := range s.cfg.Destinations {
		topics = append(topics, s.kc.OutTopic(d.Name))
	}
	if err := kafka.EnsureTopics(ctx, prod, s.kc, topics...); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	for t, sch := range map[string]string{dlq: schemas.DeadLetter, delivery: schemas.Delivery} {
		if _, err := s.serde.Register(ctx, t, sch); err != nil {
			return fmt.Errorf("egress: %w", err)
		}
	}
	s.tel.Health.Set("egress", true)
	var wg sync.WaitGroup
	errc := make(chan error, len(s.cfg.Destinations))
	for _, d := range s.cfg.Destinations {
		w := &worker{s: s, d: d.withDefaults(), prod: prod, dlq: dlq, delivery: delivery,
			log: s.log.With(logattr.Destination(d.Name))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := prod.Flush(context.WithoutCancel(ctx)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d Destination) withDefaults() Destination {
	if d.AckTimeout == 0 {
		d.AckTimeout = 30 * time.Second
	}
	if d.Retry.InitialBackoff == 0 {
		d.Retry.InitialBackoff = 500 * time.Millisecond
	}
	if d.Retry.MaxBackoff == 0 {
		d.Retry.MaxBackoff = time.Minute
	}
	return d
}

type worker struct {
	s             *Service
	d             Destination
	prod          *kgo.Client
	dlq, delivery string
	log           *slog.Logger
	client        *mllp.Client
	tracer        *kotel.Tracer
	// fatal is set when a record can be neither delivered nor
	// dead-lettered: the worker stops rather than move past it.
	fatal error
}

func (w *worker) run(ctx context.Context) error {
	group := w.s.kc.TopicPrefix + "egress." + w.d.Name
	inst := kafka.Instrument(w.s.tel, "egress-"+w.d.Name)
	w.tracer = inst.Tracer
	cl, err := kafka.NewConsumer(w.s.kc, w.log, group, []string{w.s.kc.OutTopic(w.d.Name)}, inst.Opts()...)
	if err != nil {
		return fmt.Errorf("egress %s: consumer: %w", w.d.Name, err)
	}
	defer cl.Close()
	w.client = mllp.NewClient(w.d.Address, mllp.WithAckTimeout(w.d.AckTimeout),
		mllp.WithBackoff(w.d.Retry.InitialBackoff, w.d.Retry.MaxBackoff))
	defer w.client.Close()
	w.log.Info("delivering", logattr.Address(w.d.Address), logattr.Group(group))
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			w.log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		var done []*kgo.Record
		iter := fetches.RecordIter()
		for !iter.Done() {
			rec := iter.Next()
			if !w.handle(ctx, rec) {
				break // shutting down (or fatal): this record and the rest are redelivered later
			}
			done = append(done, rec)
		}
		if len(done) > 0 {
			if err := cl.CommitRecords(context.WithoutCancel(ctx), done...); err != nil {
				w.log.Warn("committing offsets", logattr.Error(err))
			}
		}
		if w.fatal != nil {
			return fmt.Errorf("egress %s: %w", w.d.Name, w.fatal)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// handle delivers one record, or dead-letters it, and reports whether the
// record is finished (false only when ctx ended first).
func (w *worker) handle(ctx context.Context, rec *kgo.Record) bool {
	first := time.Now()
	// The deliver span continues the message's trace from its headers.
	_, span := w.tracer.WithProcessSpan(rec)
	defer span.End()
	ctx = trace.ContextWithSpan(ctx, span)
	span.SetAttributes(attribute.String("hl7bus.destination", w.d.Name))
	// A record that can never decode is dead-lettered; one whose schema the
	// registry cannot give right now is retried, holding this destination
	// like a destination that is down (its position is already past it).
	var out *canonical.Out
	for wait := w.d.Retry.InitialBackoff; ; wait = min(2*wait, w.d.Retry.MaxBackoff) {
		var err error
		if out, err = pipeline.Decode[*canonical.Out](ctx, w.s.serde, rec.Value); err == nil {
			break
		}
		if kafka.IsPermanent(err) {
			return w.deadLetter(ctx, rec, kafka.Ident{}, canonical.ErrorPermanent, err.Error(), 1, first)
		}
		w.log.Warn("cannot decode record yet; retrying", logattr.Error(err), logattr.Backoff(wait))
		if !sleep(ctx, wait) {
			return false
		}
	}
	span.SetAttributes(attribute.String("hl7bus.message_id", out.MessageID))
	log := w.log.With(logattr.MessageID(out.MessageID), logattr.ControlID(out.ControlID))
	backoff := w.d.Retry.InitialBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		reply, err := w.client.Send(ctx, out.Payload)
		latency := time.Since(start)
		if ctx.Err() != nil {
			return false
		}
		var ack *hl7v2.Ack
		if err == nil {
			if ack, err = hl7v2.ParseACK(reply); err == nil && !ack.Matches(out.ControlID) {
				log.Warn("ACK does not name the message sent (MSA-2 differs); taken as its reply", logattr.ControlIDInAck(ack.ControlID))
			}
		}
		d := &canonical.Delivery{MessageID: out.MessageID, ControlID: out.ControlID, Destination: w.d.Name,
			Attempt: attempt, LatencyMS: float64(latency.Microseconds()) / 1000, At: time.Now()}
		if err == nil || ack != nil {
			w.s.up.WithLabelValues(w.d.Name).Set(1)
			w.s.latency.WithLabelValues(w.d.Name).Observe(latency.Seconds())
		} else {
			w.s.up.WithLabelValues(w.d.Name).Set(0)
		}
		switch {
		case err == nil && ack.Accepted():
			d.Outcome, d.AckCode = canonical.OutcomeDelivered, ack.Code
			w.receipt(d)
			w.s.endToEnd.WithLabelValues(w.d.Name).Observe(time.Since(out.ReceivedAt).Seconds())
			return true
		case err == nil && ack.Rejected():
			d.Outcome, d.AckCode = canonical.OutcomeDeadLettered, ack.Code
			w.receipt(d)
			log.Warn("receiver rejected the message", logattr.Ack(ack.Code))
			return w.deadLetter(ctx, rec, kafka.Ident{MessageID: out.MessageID, ControlID: out.ControlID}, canonical.ErrorPermanent, "receiver answered "+ack.Code, attempt, first)
		}
		reason := ""
		if err != nil {
			reason = err.Error()
		} else {
			d.AckCode = ack.Code
			reason = "receiver answered " + ack.Code
		}
		d.Error = reason
		if w.d.Retry.MaxAttempts > 0 && attempt >= w.d.Retry.MaxAttempts {
			d.Outcome = canonical.OutcomeDeadLettered
			w.receipt(d)
			return w.deadLetter(ctx, rec, kafka.Ident{MessageID: out.MessageID, ControlID: out.ControlID}, canonical.ErrorTransient, reason, attempt, first)
		}
		d.Outcome = canonical.OutcomeRetry
		w.receipt(d)
		log.Info("delivery failed; will retry", logattr.Attempt(attempt), logattr.Reason(reason), logattr.Backoff(backoff))
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, w.d.Retry.MaxBackoff)
	}
}

// receipt writes a delivery record; receipts are best effort and never hold
// back delivery.
func (w *worker) receipt(d *canonical.Delivery) {
	w.s.attempts.WithLabelValues(w.d.Name, d.Outcome).Inc()
	v, err := w.s.serde.Encode(d)
	if err != nil {
		w.log.Error("encoding delivery record", logattr.Error(err))
		return
	}
	w.prod.Produce(context.Background(), &kgo.Record{Topic: w.delivery, Key: []byte(d.MessageID), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			w.log.Warn("writing delivery record", logattr.Error(err))
		}
	})
}

// deadLetter writes rec to dlq.egress, retrying until Kafka has it: a
// record must never be committed past without its dead letter.
func (w *worker) deadLetter(ctx context.Context, rec *kgo.Record, id kafka.Ident, class, reason string, attempts int, first time.Time) bool {
	dl := kafka.DeadLetter("egress", id, rec, class, reason, attempts, first, time.Now())
	v, err := w.s.serde.Encode(dl)
	if err != nil {
		// Without its dead letter the record cannot be passed: stop, so
		// it is processed again after a restart instead of being lost.
		w.fatal = fmt.Errorf("encoding a dead letter: %w", err)
		return false
	}
	for {
		err := w.prod.ProduceSync(ctx, &kgo.Record{Topic: w.dlq, Key: rec.Key, Value: v}).FirstErr()
		if err == nil {
			w.s.deadTotal.WithLabelValues("egress").Inc()
			return true
		}
		w.log.Error("writing dead letter; retrying", logattr.Error(err))
		if !sleep(ctx, time.Second) {
			return false
		}
	}
}

// sleep waits d, or less when ctx ends; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
