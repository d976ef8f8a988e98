package telemetry

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// The helpers below register a collector, or return the one already
// registered under the same name: the stages of one process share a
// registry, and several use the same metric with their own labels.

// RegisterOrFind registers c in reg and returns it, or returns the collector
// already registered with the same descriptors. It panics when the existing
// collector is of another type, or when registration fails otherwise (a
// name reused with other labels or help): both are programming errors that
// a test of the component shows at once.
func RegisterOrFind[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
		panic(fmt.Sprintf("telemetry: metric already registered as %T, wanted %T", are.ExistingCollector, c))
	}
	panic(err)
}

// CounterVec registers (or finds) a counter vector.
func (t *Telemetry) CounterVec(opts prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	return RegisterOrFind(t.Registry, prometheus.NewCounterVec(opts, labels))
}

// HistogramVec registers (or finds) a histogram vector.
func (t *Telemetry) HistogramVec(opts prometheus.HistogramOpts, labels ...string) *prometheus.HistogramVec {
	return RegisterOrFind(t.Registry, prometheus.NewHistogramVec(opts, labels))
}

// GaugeVec registers (or finds) a gauge vector.
func (t *Telemetry) GaugeVec(opts prometheus.GaugeOpts, labels ...string) *prometheus.GaugeVec {
	return RegisterOrFind(t.Registry, prometheus.NewGaugeVec(opts, labels))
}

// LatencyBuckets suit message handling: 1 ms to about 1 minute.
var LatencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 13)
