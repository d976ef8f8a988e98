package pipeline

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/telemetry"
)

func TestMetrics(t *testing.T) {
	tel := telemetry.Nop()
	m := NewMetrics(tel)
	// A second stage in the same process finds the same collectors.
	if m2 := NewMetrics(tel); m2.deadLetters != m.deadLetters || m2.records != m.records {
		t.Fatal("a second NewMetrics on one registry made new collectors")
	}
	h := func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) { return nil, Ident{}, nil }
	for range 3 {
		_, _, _ = m.Measure("parse")(h)(context.Background(), &kgo.Record{})
	}
	m.Records("parse", OutcomeOK, 5)
	m.Records("parse", OutcomeRetried, 0)
	m.DeadLettered("parse", 2)
	m.DeadLettered("egress", 1)
	m.Stalled("parse", true)
	m.Blocked("parse", false)
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"records ok", testutil.ToFloat64(m.records.WithLabelValues("parse", OutcomeOK)), 5},
		{"dlq writes parse", testutil.ToFloat64(m.deadLetters.WithLabelValues("parse")), 2},
		{"dlq writes egress", testutil.ToFloat64(m.deadLetters.WithLabelValues("egress")), 1},
		{"stalled", testutil.ToFloat64(m.stalled.WithLabelValues("parse")), 1},
		{"blocked", testutil.ToFloat64(m.blocked.WithLabelValues("parse")), 0},
		{"latency observations", observations(t, tel, "hl7bus_stage_processing_seconds"), 3},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// Records with n 0 creates no series: retried stays absent.
	if n := testutil.CollectAndCount(m.records); n != 1 {
		t.Errorf("%d record series, want 1", n)
	}
}

// observations returns the sample count of histogram name.
func observations(t *testing.T, tel *telemetry.Telemetry, name string) float64 {
	t.Helper()
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return float64(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return 0
}
