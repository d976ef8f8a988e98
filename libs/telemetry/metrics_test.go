package telemetry

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegisterOrFindReturnsTheRegisteredCollector(t *testing.T) {
	tel := New(nil)
	opts := prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Things."}
	a := tel.CounterVec(opts, "stage")
	b := tel.CounterVec(opts, "stage")
	a.WithLabelValues("parse").Inc()
	b.WithLabelValues("parse").Inc()
	if got := testutil.ToFloat64(a.WithLabelValues("parse")); got != 2 {
		t.Errorf("both handles must count in one collector: got %v, want 2", got)
	}
	if a != b {
		t.Error("the second registration returned a new collector")
	}
	g1 := tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_test_level", Help: "Level."}, "stage")
	if g2 := tel.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_test_level", Help: "Level."}, "stage"); g1 != g2 {
		t.Error("gauge: a new collector")
	}
	h1 := tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_test_seconds", Help: "Time."}, "stage")
	if h2 := tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_test_seconds", Help: "Time."}, "stage"); h1 != h2 {
		t.Error("histogram: a new collector")
	}
}

func TestRegisterOrFindPanicsOnConflicts(t *testing.T) {
	tests := []struct {
		name   string
		second func(tel *Telemetry)
	}{
		{"other labels", func(tel *Telemetry) {
			tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Things."}, "destination")
		}},
		{"other help", func(tel *Telemetry) {
			tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Other things."}, "stage")
		}},
		{"other type, same descriptor", func(tel *Telemetry) {
			RegisterOrFind(tel.Registry, prometheus.NewCounter(prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Things.",
				ConstLabels: prometheus.Labels{"stage": "x"}}))
			RegisterOrFind(tel.Registry, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Things.",
				ConstLabels: prometheus.Labels{"stage": "x"}}, nil))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := New(nil)
			if tt.name != "other type, same descriptor" {
				tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_test_things_total", Help: "Things."}, "stage")
			}
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.second(tel)
		})
	}
}

func TestBuildInfoMetric(t *testing.T) {
	tel := New(nil)
	bi := ReadBuildInfo()
	want := `# HELP hl7bus_build_info Always 1; its labels say which build of hl7bus runs: module version, VCS revision and Go version.
# TYPE hl7bus_build_info gauge
hl7bus_build_info{goversion="` + bi.GoVersion + `",revision="` + bi.Revision + `",version="` + bi.Version + `"} 1
`
	if err := testutil.GatherAndCompare(tel.Registry, strings.NewReader(want), "hl7bus_build_info"); err != nil {
		t.Error(err)
	}
	if bi.GoVersion == "" || bi.GoVersion == "unknown" {
		t.Errorf("goversion = %q: a test binary records its Go version", bi.GoVersion)
	}
}

func TestBuildInfoFrom(t *testing.T) {
	tests := []struct {
		name string
		in   debug.BuildInfo
		want BuildInfo
	}{
		{"release", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}},
			BuildInfo{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26.0"}},
		{"dirty work tree", debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			BuildInfo{Version: "(devel)", Revision: "abc123-dirty", GoVersion: "go1.26.0"}},
		{"no vcs (go test, -buildvcs=false)", debug.BuildInfo{GoVersion: "go1.26.0"},
			BuildInfo{Version: "unknown", Revision: "unknown", GoVersion: "go1.26.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildInfoFrom(&tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
