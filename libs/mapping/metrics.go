package mapping

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// Metrics are what the stages that apply rules count about them. transform
// (inbound rules) and route (destination rules) both register them; in a
// process that runs the two, the second finds the first's, which is why
// they are defined once, here. Label values are configuration names
// (interface, rule, destination, stage), never message content.
type Metrics struct {
	// Filtered is hl7bus_messages_filtered_total{interface, rule,
	// destination}: the messages a filter rule dropped; destination is ""
	// for an inbound filter (transform) and the destination whose copy was
	// dropped in route.
	Filtered *prometheus.CounterVec
	// Flags is hl7bus_rule_flags_total{stage, rule}: the flags rules raised
	// (an unmapped code under unmapped: flag, a time without an offset),
	// one per flag; stage "transform" flags are also on the transformed
	// record's issues, stage "route" ones only here.
	Flags *prometheus.CounterVec
}

// NewMetrics registers (or finds) the rule metrics in tel.
func NewMetrics(tel *telemetry.Telemetry) *Metrics {
	return &Metrics{
		Filtered: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_messages_filtered_total",
			Help: `Messages a filter rule dropped, by interface, rule and destination ("" for an inbound filter; configuration names).`},
			"interface", "rule", "destination"),
		Flags: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_rule_flags_total",
			Help: "Flags rules raised (an unmapped code under unmapped: flag, ...), by stage and rule (configuration names)."},
			"stage", "rule"),
	}
}
