// Package route is the route stage: it reads transformed records and, by
// the configured routes (message types, sending facilities, a CEL when),
// writes one out record per destination a message should reach, each
// after that destination's own rules, and one decision per message
// (topic decisions: which routes matched, which did not and why, what each
// destination got). Routes are default-deny: a message no route matches,
// without a default route, is dead-lettered to dlq.route. A record a
// replay job sent back into route with the hl7bus-replay-destinations
// header goes only to the destinations it lists (see Handle).
//
// Files: route.go (the stage), rules.go (routes and Compile), decide.go
// (Handle: the decision and the outputs).
package route

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Config is the route stage's configuration.
type Config struct {
	// Instance distinguishes instances of the stage (see pipeline.Stage).
	Instance string
	// Runtime is the stage runtime's retry policy, record timeout and
	// stall threshold (the root configuration's stages section; zero
	// fields take pipeline's defaults).
	Runtime pipeline.Runtime
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// Parser is the process's one parser (hl7v2.ParserConfig), for the
	// routes' when and the destinations' rules. nil: hl7v2.NewParser().
	Parser *hl7v2.Parser
	// Destinations lists every configured destination: the stage declares
	// each one's out topic, so rules swapped in on reload can route to any
	// of them. The destinations Rules names are added.
	Destinations []string
	// Rules are the compiled routes and destination rules (Compile); nil
	// routes nothing (default-deny). SetRules swaps them while the stage
	// runs.
	Rules *Rules
}

// Service is a route stage.
type Service struct {
	cfg    Config
	kc     kafka.Config
	serde  *canonical.Serde
	log    *slog.Logger
	parser *hl7v2.Parser
	// rules are the rules in force; Handle loads them once per record.
	rules atomic.Pointer[Rules]
	// metrics count the destination copies destination filters dropped
	// and the flags destination rules raised (stage "route": no record
	// carries them), on the metrics transform counts inbound rules on.
	metrics *mapping.Metrics
	// decisions is the decisions topic.
	decisions string
	// now is the decisions' clock.
	now func() time.Time
}

// New returns the stage; Run starts it.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger) *Service {
	p := cfg.Parser
	if p == nil {
		p = hl7v2.NewParser()
	}
	tel := cfg.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log, parser: p, decisions: kc.Topic(kafka.TopicDecisions), now: time.Now,
		metrics: mapping.NewMetrics(tel)}
	s.rules.Store(cfg.Rules)
	return s
}

// SetRules puts r in force for the records the stage handles from now on
// (a record being handled finishes on the rules it started with). nil
// routes nothing. r may name only destinations whose out topics the stage
// declared (Config.Destinations and the first rules' destinations); the
// caller checks that (Compile's known).
func (s *Service) SetRules(r *Rules) { s.rules.Store(r) }

// CurrentRules returns the rules in force (nil: none).
func (s *Service) CurrentRules() *Rules { return s.rules.Load() }

// Run runs the stage until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	outputs := map[string]string{s.decisions: schemas.Decisions}
	for _, d := range s.cfg.Destinations {
		outputs[s.kc.OutTopic(d)] = schemas.Out
	}
	for _, d := range s.cfg.Rules.Routed() {
		outputs[s.kc.OutTopic(d)] = schemas.Out
	}
	return pipeline.Run(ctx, s.kc, s.serde, s.log, pipeline.Stage{
		Name: "route", Instance: s.cfg.Instance, Retry: s.cfg.Runtime.Retry, Timeout: s.cfg.Runtime.RecordTimeout, StallAfter: s.cfg.Runtime.StallAfter,
		Telemetry: s.cfg.Telemetry, Input: s.kc.Topic(kafka.TopicTransformed), Outputs: outputs,
		Handle: pipeline.Typed(s.serde, s.Handle),
	})
}
