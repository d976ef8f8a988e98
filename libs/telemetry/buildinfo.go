package telemetry

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfoName is the metric every process exports, so a dashboard can show
// which build runs where and a rollout can be followed (join on it with
// `* on(instance) group_left(version) hl7bus_build_info`).
const buildInfoName = "hl7bus_build_info"

// BuildInfo is what hl7bus_build_info labels: the main module's version
// ("(devel)" for a build from a work tree), the VCS revision the binary was
// built from ("-dirty" appended when the tree had changes, "unknown" when Go
// recorded none, as in `go test`) and the Go version. Nothing in it comes
// from a message, so it carries no PHI.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// ReadBuildInfo returns the running binary's BuildInfo from
// runtime/debug.ReadBuildInfo.
func ReadBuildInfo() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return BuildInfo{Version: "unknown", Revision: "unknown", GoVersion: "unknown"}
	}
	return buildInfoFrom(bi)
}

func buildInfoFrom(bi *debug.BuildInfo) BuildInfo {
	out := BuildInfo{Version: bi.Main.Version, Revision: "unknown", GoVersion: bi.GoVersion}
	if out.Version == "" {
		out.Version = "unknown"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && out.Revision != "unknown" {
		out.Revision += "-dirty"
	}
	return out
}

// newBuildInfoCollector returns the hl7bus_build_info gauge, always 1.
func newBuildInfoCollector(bi BuildInfo) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        buildInfoName,
		Help:        "Always 1; its labels say which build of hl7bus runs: module version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion},
	})
	g.Set(1)
	return g
}
