package modules

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// TestDeclaredTopicsAreTheStagesTopics: what --list-targets says a
// pipeline stage consumes and writes is what the stage really declares:
// each stage runs alone on a broker of its own, and the topics it creates
// (its input, its outputs, its dead-letter topic: pipeline.Run creates
// every topic of the stage before anything else) are exactly its
// module's Input and Outputs, "out.<destination>" standing for each
// configured destination's topic. A topic the stage writes but the
// registry does not declare (decisions, once) fails here.
func TestDeclaredTopicsAreTheStagesTopics(t *testing.T) {
	for _, name := range []string{"parse", "transform", "route"} {
		t.Run(name, func(t *testing.T) {
			// In parallel: a fake broker's shutdown can take seconds.
			t.Parallel()
			env := kafkatest.New(t)
			if env.External {
				t.Skip("needs a broker of its own: it compares every topic there")
			}
			path := filepath.Join(t.TempDir(), "hl7bus.yaml")
			body := fmt.Sprintf(`registry: {url: %q}
kafka: {brokers: [%q], partitions: 1}
interfaces:
  - {name: lab-in, protocol: mllp, address: "127.0.0.1:2575"}
destinations:
  - {name: a, protocol: mllp, address: "127.0.0.1:2576"}
  - {name: b, protocol: mllp, address: "127.0.0.1:2577"}
routes:
  - {name: r, destinations: [a]}
`, env.RegistryURL, env.Kafka.Brokers[0])
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := Default().Get(name)
			want := []string{f.Kafka.Topic(m.Input)}
			for _, o := range m.Outputs {
				if o == "out.<destination>" {
					for _, d := range f.Destinations {
						want = append(want, f.Kafka.OutTopic(d.Name))
					}
					continue
				}
				want = append(want, f.Kafka.Topic(o))
			}
			slices.Sort(want)

			tel := telemetry.Nop()
			svc, err := m.New(f, NewDeps(slog.New(slog.NewTextHandler(io.Discard, nil)), tel, "test"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			defer func() {
				cancel()
				<-done
				// The stage's registry client keeps its connection to the
				// fake registry (http.DefaultTransport), which would hold
				// the registry's Close for 5 s.
				if tr, ok := http.DefaultTransport.(*http.Transport); ok {
					tr.CloseIdleConnections()
				}
			}()

			cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			list := func() []string {
				td, err := adm.ListTopics(ctx)
				if err != nil {
					return nil
				}
				var names []string
				for _, n := range td.Names() {
					if !strings.HasPrefix(n, "__") {
						names = append(names, n)
					}
				}
				slices.Sort(names)
				return names
			}
			// pipeline.Run registers the stage's health, creates its
			// topics, then runs: once some topic exists and the stage is
			// ready, it has created all it will.
			var got []string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if got = list(); len(got) > 0 && len(tel.Health.NotReady()) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s not ready (%v): topics %v", name, tel.Health.NotReady(), got)
				}
			}
			got = list()
			if !slices.Equal(got, want) {
				t.Errorf("%s creates %v; the registry declares %v", name, got, want)
			}
		})
	}
}
