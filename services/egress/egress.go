// Package egress is the egress stage: one consumer group per destination
// reads out.<destination> and delivers each message over MLLP, committing
// an offset only once every record before it got the receiver's ACK or a
// dead-letter write (at-least-once toward the outside world). Every
// attempt is recorded on the delivery topic. Each destination runs on its
// own, so one that is down holds back only its own messages.
//
// Retry follows the design's "egress retry" contract:
//
//   - An attempt counts only when it failed for this message: the receiver
//     answered AE (or CE), answered with an ACK that is not this message's
//     (MSA-2 differs from the MSH-10 sent, or, unless ack.lenient_* says
//     otherwise, MSH-9 is not ACK or MSH-12 is not the message's version),
//     or did not answer after the message was sent. The message is retried
//     with backoff (retry.initial_backoff doubling to retry.max_backoff)
//     until retry.max_attempts (default 10) or retry.max_retry_time
//     (default 1h), whichever comes first, then goes to dlq.egress with the
//     reason. AR (or CR) goes there at once.
//   - A message that must wait holds back only the later messages of its
//     ordering key (the Kafka key: the patient, by default); other keys on
//     the same partition keep flowing, up to destinations[].connections
//     messages in flight (default 1).
//   - A destination that cannot be reached (mllp.ErrNotSent: the dial
//     failed) is held: no attempt is counted, hl7bus_destination_up drops
//     to 0, the message is tried again every second at most, and when the
//     destination answers delivery resumes at once. An outage never
//     dead-letters.
//
// DESIGN.md states the scheduler's invariants and the goroutines.
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

	attempts  *prometheus.CounterVec
	failures  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	endToEnd  *prometheus.HistogramVec
	up        *prometheus.GaugeVec
	pending   *prometheus.GaugeVec
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
		w := newWorker(s, d.WithDefaults(), prod, dlq, delivery)
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
