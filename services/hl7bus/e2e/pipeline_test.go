package e2e

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// pipeline is what startPipeline runs.
type pipeline struct {
	// Interface is the name of ingress's one MLLP interface (on a free port).
	Interface string
	// Rules and Destinations configure route and egress; without
	// destinations only ingress, parse and transform run.
	Rules        []route.Rule
	Destinations []egress.Destination
	Telemetry    *telemetry.Telemetry
	// Interfaces, when set, replace the one MLLP interface named
	// Interface (a configuration's interfaces, rules and all).
	Interfaces []ingress.Interface
	// Compiled, when set, are the configuration's compiled transform and
	// route rules (config.File.Rules); Rules is then not used.
	Compiled *config.Compiled
	// Log receives every stage's log; nil discards it.
	Log *slog.Logger
}

// startPipeline runs the stages in-process against env until the test
// ends, and returns ingress (for its address).
func startPipeline(t *testing.T, ctx context.Context, env *kafkatest.Env, p pipeline) *ingress.Service {
	t.Helper()
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	its := p.Interfaces
	if its == nil {
		its = []ingress.Interface{{Name: p.Interface, Protocol: "mllp", Address: "127.0.0.1:0"}}
	}
	in := ingress.New(ingress.Config{Interfaces: its, Telemetry: p.Telemetry}, env.Kafka, env.Serde, log)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var transformRules *transform.Rules
	var routeRules *route.Rules
	if p.Compiled != nil {
		transformRules, routeRules = p.Compiled.Transform, p.Compiled.Route
	} else if len(p.Destinations) > 0 {
		routeRules = routes(t, p.Rules...)
	}
	stages := []interface{ Run(context.Context) error }{
		parse.New(parse.Config{Instance: "0", Telemetry: p.Telemetry}, env.Kafka, env.Serde, log),
		transform.New(transform.Config{Instance: "0", Telemetry: p.Telemetry, Rules: transformRules}, env.Kafka, env.Serde, log),
	}
	if len(p.Destinations) > 0 {
		var dests []string
		for _, d := range p.Destinations {
			dests = append(dests, d.Name)
		}
		stages = append(stages,
			route.New(route.Config{Instance: "0", Destinations: dests, Rules: routeRules, Telemetry: p.Telemetry}, env.Kafka, env.Serde, log),
			egress.New(egress.Config{Destinations: p.Destinations, Telemetry: p.Telemetry}, env.Kafka, env.Serde, log))
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Run(runCtx); err != nil {
				t.Errorf("stage: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		_ = in.Stop(context.Background())
		stop()
		wg.Wait()
	})
	return in
}

// routes compiles rules (without CEL tables or destination rules), every
// destination they name configured, as the composition root does for the
// routes section.
func routes(t *testing.T, rules ...route.Rule) *route.Rules {
	t.Helper()
	known := map[string]bool{}
	for _, r := range rules {
		for _, d := range r.Destinations {
			known[d] = true
		}
	}
	rs, err := route.Compile(rules, nil, nil, known)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
