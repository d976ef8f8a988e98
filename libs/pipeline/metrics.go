package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Metrics are the runtime's collectors, the same for every stage (label
// stage): defined here once, so a dead letter counts alike wherever it is
// written. Several stages in one process share them through their
// telemetry registry.
type Metrics struct {
	records      *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	lastProgress *prometheus.GaugeVec
	stalled      *prometheus.GaugeVec
	blocked      *prometheus.GaugeVec
}

// Outcomes of hl7bus_stage_records_total.
const (
	OutcomeOK           = "ok"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeRetried      = "retried"
)

// NewMetrics registers (or finds) the runtime's collectors in t's registry.
func NewMetrics(t *telemetry.Telemetry) *Metrics {
	return &Metrics{
		records: t.CounterVec(prometheus.CounterOpts{Name: "hl7bus_stage_records_total",
			Help: "Records a stage finished, by outcome: ok and dead_lettered count records finished for good (committed, or for egress delivered or dead-lettered); retried counts records of aborted batches, processed again."}, "stage", "outcome"),
		deadLetters: t.CounterVec(prometheus.CounterOpts{Name: "hl7bus_dlq_writes_total",
			Help: "Records written to a dead-letter queue, by stage."}, "stage"),
		latency: t.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_stage_processing_seconds",
			Help: "Time a stage spent handling one record.", Buckets: telemetry.LatencyBuckets}, "stage"),
		lastProgress: t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_last_progress_timestamp_seconds",
			Help: "When the stage last committed a batch (or started), as a Unix time."}, "stage"),
		stalled: t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_stalled",
			Help: "1 while the stage holds fetched records it has not committed for longer than its stall threshold, or cannot write a dead letter; the stage is then not ready."}, "stage"),
		blocked: t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_stage_blocked",
			Help: "1 while the stage cannot write a dead letter for a record it cannot process (it retries and reports not ready; alert on it)."}, "stage"),
	}
}

// Measure observes how long each record took (all tries, hl7bus_stage_processing_seconds).
func (m *Metrics) Measure(stage string) Middleware {
	h := m.latency.WithLabelValues(stage)
	return func(next RecordHandler) RecordHandler {
		return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			start := time.Now()
			outs, id, err := next(ctx, rec)
			h.Observe(time.Since(start).Seconds())
			return outs, id, err
		}
	}
}

// Records counts n records of stage finished with outcome
// (hl7bus_stage_records_total).
func (m *Metrics) Records(stage, outcome string, n int) {
	if n > 0 {
		m.records.WithLabelValues(stage, outcome).Add(float64(n))
	}
}

// DeadLettered counts n dead letters stage wrote, once they are durable
// (committed, or acknowledged): hl7bus_dlq_writes_total. The one place
// every stage counts them.
func (m *Metrics) DeadLettered(stage string, n int) {
	m.deadLetters.WithLabelValues(stage).Add(float64(n))
}

// Progress records that stage committed (hl7bus_stage_last_progress_timestamp_seconds).
func (m *Metrics) Progress(stage string) { m.lastProgress.WithLabelValues(stage).SetToCurrentTime() }

// Stalled sets hl7bus_stage_stalled of stage.
func (m *Metrics) Stalled(stage string, on bool) { m.stalled.WithLabelValues(stage).Set(b2f(on)) }

// Blocked sets hl7bus_stage_blocked of stage.
func (m *Metrics) Blocked(stage string, on bool) { m.blocked.WithLabelValues(stage).Set(b2f(on)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
