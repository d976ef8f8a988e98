package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The helpers below register a collector, or return the one already
// registered under the same name: the stages of one process share a
// registry, and several use the same metric with their own labels.

// CounterVec registers (or finds) a counter vector.
func (t *Telemetry) CounterVec(opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(opts, labels)
	if err := t.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(*prometheus.CounterVec)
		}
		panic(err)
	}
	return c
}

// HistogramVec registers (or finds) a histogram vector.
func (t *Telemetry) HistogramVec(opts prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(opts, labels)
	if err := t.Registry.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(*prometheus.HistogramVec)
		}
		panic(err)
	}
	return h
}

// GaugeVec registers (or finds) a gauge vector.
func (t *Telemetry) GaugeVec(opts prometheus.GaugeOpts, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(opts, labels)
	if err := t.Registry.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector.(*prometheus.GaugeVec)
		}
		panic(err)
	}
	return g
}

// LatencyBuckets suit message handling: 1 ms to about 1 minute.
var LatencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 13)
