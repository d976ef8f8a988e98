package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Service is an egress stage.
type Service struct {
	cfg   Config
	kc    kafka.Config
	serde *canonical.Serde
	log   *slog.Logger
	tel   *telemetry.Telemetry
	// adapters builds each destination's senders, by protocol.
	adapters map[string]Adapter

	attempts *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	endToEnd *prometheus.HistogramVec
	up       *prometheus.GaugeVec
	pending  *prometheus.GaugeVec
	paused   *prometheus.GaugeVec
	// ctl follows the control topic (control.go) while Run runs.
	ctl *control
	// metrics are the runtime's, shared with every stage:
	// hl7bus_dlq_writes_total and hl7bus_stage_records_total{stage="egress"}.
	metrics *pipeline.Metrics
}

// stageName is egress's stage label and the <stage> of dlq.<stage>.
const stageName = "egress"

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	tel := cfg.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	return &Service{cfg: cfg, kc: kc, serde: serde, log: log.With(logattr.Stage(stageName)), tel: tel, adapters: cfg.adapters(),
		attempts: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_egress_attempts_total",
			Help: "Delivery attempts, by destination and outcome (delivered, retry, dead_lettered). A message not sent because the destination is unreachable is no attempt."}, "destination", "outcome"),
		failures: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_egress_attempt_failures_total",
			Help: "Failed delivery attempts, by destination and reason (ack_error, rejected, ack_mismatch, ack_header, bad_ack, no_answer, connection_lost)."}, "destination", "reason"),
		latency: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_egress_ack_latency_seconds",
			Help: "Time from writing a message to the receiver's reply, per attempt (no backoff, no reconnect).", Buckets: telemetry.LatencyBuckets}, "destination"),
		endToEnd: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_end_to_end_latency_seconds",
			Help: "Time from ingress receiving a message to the destination's ACK.", Buckets: telemetry.LatencyBuckets}, "destination"),
		up: tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_destination_up",
			Help: "1 when the destination is reachable (its last attempt reached it, whatever it answered), 0 while it cannot be reached and its messages are held."}, "destination"),
		pending: tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_egress_pending_messages",
			Help: "Messages fetched for the destination and not yet delivered or dead-lettered."}, "destination"),
		paused: tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_destination_paused",
			Help: "1 while an operator has paused the destination (its messages are held, nothing is attempted), 0 while it runs."}, "destination"),
		metrics: pipeline.NewMetrics(tel),
		ctl:     newControl(kc, serde, log.With(logattr.Stage(stageName))),
	}
}

// Run delivers to every destination until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	type dest struct {
		d Destination
		a Adapter
	}
	dests := make([]dest, 0, len(s.cfg.Destinations))
	for _, d := range s.cfg.Destinations {
		d = d.WithDefaults()
		a, ok := s.adapters[d.Protocol]
		if !ok {
			return fmt.Errorf("egress %s: %w: %q", d.Name, ErrUnknownProtocol, d.Protocol)
		}
		dests = append(dests, dest{d, a})
	}
	s.tel.Health.Register(stageName)
	defer s.tel.Health.Set(stageName, false)
	// acks=all (NewProducer): dead letters must be durable before the
	// offset commits.
	prod, err := kafka.NewProducer(s.kc, s.log, kafka.Instrument(s.tel, stageName).Opts()...)
	if err != nil {
		return fmt.Errorf("egress: producer: %w", err)
	}
	defer prod.Close()
	dlq, delivery := s.kc.DLQTopic(stageName), s.kc.Topic(kafka.TopicDelivery)
	control := s.kc.Topic(kafka.TopicControl)
	if err := kafka.EnsureCompactedTopics(ctx, prod, s.kc, control); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
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
	// Every replica follows the control topic, and no destination starts
	// before it has been read up to its end: a destination paused before
	// a restart must not deliver a single message after it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(s.cfg.Destinations)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.ctl.run(ctx); err != nil {
			errc <- err
			cancel()
		}
	}()
	select {
	case <-s.ctl.ready:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		s.tel.Health.Set(stageName, true)
		for _, dd := range dests {
			w := newWorker(s, dd.d, dd.a, prod, dlq, delivery)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.run(ctx); err != nil {
					errc <- err
				}
			}()
		}
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
