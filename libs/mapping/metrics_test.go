package mapping

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// TestMetricsSharedByStages: transform and route of one process both call
// NewMetrics on the process's registry; the second must find the first's
// vectors (a second registration of the same name would panic or count
// apart).
func TestMetricsSharedByStages(t *testing.T) {
	tel := telemetry.Nop()
	transform, route := NewMetrics(tel), NewMetrics(tel)
	transform.Filtered.WithLabelValues("lab-in", "drop-test", "").Inc()
	route.Filtered.WithLabelValues("lab-in", "only-final", "surveillance").Inc()
	route.Flags.WithLabelValues("route", "loinc").Inc()
	if got := testutil.CollectAndCount(transform.Filtered); got != 2 {
		t.Errorf("filtered series seen by transform: %d, want 2 (route's too)", got)
	}
	if got := testutil.ToFloat64(transform.Flags.WithLabelValues("route", "loinc")); got != 1 {
		t.Errorf("route's flag seen by transform: %v, want 1", got)
	}
}
