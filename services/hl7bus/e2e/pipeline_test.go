package e2e

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
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
}

// startPipeline runs the stages in-process against env until the test
// ends, and returns ingress (for its address).
func startPipeline(t *testing.T, ctx context.Context, env *kafkatest.Env, p pipeline) *ingress.Service {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	in := ingress.New(ingress.Config{Interfaces: []ingress.Interface{{Name: p.Interface, Protocol: "mllp", Address: "127.0.0.1:0"}},
		Telemetry: p.Telemetry}, env.Kafka, env.Serde, log)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stages := []interface{ Run(context.Context) error }{
		parse.New(parse.Config{Instance: "0", Telemetry: p.Telemetry}, env.Kafka, env.Serde, log),
		transform.New(transform.Config{Instance: "0", Telemetry: p.Telemetry}, env.Kafka, env.Serde, log),
	}
	if len(p.Destinations) > 0 {
		stages = append(stages,
			route.New(route.Config{Instance: "0", Rules: routes(t, p.Rules...), Telemetry: p.Telemetry}, env.Kafka, env.Serde, log),
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
