package modules

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// journal records what the fake modules did, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.events...)
}

// fake is a module service that journals its lifecycle (fullFake adds
// Start and Stop, plainFake has Run only). hold, when set,
// keeps Run from returning after its context ends until it is closed (a
// module that does not stop); result is what Run returns; early makes Run
// return at once.
type fake struct {
	name     string
	j        *journal
	startErr error
	hold     chan struct{}
	early    bool
	result   error
}

type plainFake struct{ *fake }

func (p plainFake) Run(ctx context.Context) error { return p.fake.run(ctx) }

type fullFake struct{ *fake }

func (p fullFake) Run(ctx context.Context) error { return p.fake.run(ctx) }
func (p fullFake) Start(context.Context) error {
	p.j.add("start " + p.name)
	return p.startErr
}
func (p fullFake) Stop(context.Context) error {
	p.j.add("stop " + p.name)
	return nil
}

func (f *fake) run(ctx context.Context) error {
	if !f.early {
		<-ctx.Done()
	}
	if f.hold != nil {
		<-f.hold
	}
	f.j.add("end " + f.name)
	return f.result
}

// table returns the shape of Default with fakes: broker and registry
// (starters), ingress (starter and stopper), and the four stages along
// the topics, declared out of flow order to show shutdown follows the
// topics, not the table.
func table(j *journal, tweak map[string]func(*fake)) []Module {
	mk := func(name string, full bool) func(*config.File, Deps) (Service, error) {
		return func(f *config.File, _ Deps) (Service, error) {
			j.add("new " + name + " brokers=" + strings.Join(f.Kafka.Brokers, ","))
			fk := &fake{name: name, j: j}
			if tw := tweak[name]; tw != nil {
				tw(fk)
			}
			if full {
				return fullFake{fk}, nil
			}
			return plainFake{fk}, nil
		}
	}
	emb := []string{"broker", "registry"}
	brokerNew := func(f *config.File, d Deps) (Service, error) {
		s, err := mk("broker", true)(f, d)
		// What the embedded broker does at Start: later constructors see it.
		f.Kafka.Brokers = []string{"127.0.0.1:1"}
		return s, err
	}
	return []Module{
		{Name: "broker", New: brokerNew},
		{Name: "registry", New: mk("registry", true)},
		{Name: "egress", Deps: emb, Input: "out.<destination>", Outputs: []string{"delivery"}, New: mk("egress", false)},
		{Name: "route", Deps: emb, Input: "transformed", Outputs: []string{"out.<destination>"}, New: mk("route", false)},
		{Name: "ingress", Deps: emb, Outputs: []string{"raw"}, New: mk("ingress", true)},
		{Name: "parse", Deps: emb, Input: "raw", Outputs: []string{"parsed"}, New: mk("parse", false)},
		{Name: "transform", Deps: emb, Input: "parsed", Outputs: []string{"transformed"}, New: mk("transform", false)},
	}
}

func testDeps() Deps {
	return NewDeps(slog.New(slog.NewTextHandler(io.Discard, nil)), telemetry.Nop(), "test")
}

// after returns the events of j that begin with prefix, in order.
func pick(events []string, prefix string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until j has n events.
func waitFor(t *testing.T, j *journal, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(j.list()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %v", j.list())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunStartsInOrderAndStopsUpstreamFirst(t *testing.T) {
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, &config.File{}, testDeps(), table(j, nil), time.Second) }()
	// 7 constructors, 3 starts.
	waitFor(t, j, 10)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ev := j.list()
	wantStart := []string{"new broker brokers=", "start broker", "new registry brokers=127.0.0.1:1", "start registry",
		"new egress brokers=127.0.0.1:1", "new route brokers=127.0.0.1:1", "new ingress brokers=127.0.0.1:1", "start ingress",
		"new parse brokers=127.0.0.1:1", "new transform brokers=127.0.0.1:1"}
	if !slices.Equal(ev[:len(wantStart)], wantStart) {
		t.Errorf("start:\n got %v\nwant %v", ev[:len(wantStart)], wantStart)
	}
	// Ingress stops (drains) first, then the stages along the topics,
	// then the registry and the broker, in reverse start order.
	wantStop := []string{"stop ingress", "end ingress", "end parse", "end transform", "end route", "end egress",
		"stop registry", "end registry", "stop broker", "end broker"}
	if got := ev[len(wantStart):]; !slices.Equal(got, wantStop) {
		t.Errorf("shutdown:\n got %v\nwant %v", got, wantStop)
	}
}

func TestRunSubset(t *testing.T) {
	j := &journal{}
	r, err := NewRegistry(table(j, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := r.Resolve([]string{"broker", "registry"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, &config.File{}, testDeps(), mods, time.Second) }()
	waitFor(t, j, 4)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := pick(j.list(), "new "); len(got) != 2 {
		t.Errorf("constructed %v, want the broker and the registry only", got)
	}
}

func TestRunForcedStop(t *testing.T) {
	j := &journal{}
	hold := make(chan struct{})
	defer close(hold) // lets the stuck module end before goleak looks
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	mods := table(j, map[string]func(*fake){"transform": func(f *fake) { f.hold = hold }})
	go func() { errc <- Run(ctx, &config.File{}, testDeps(), mods, 200*time.Millisecond) }()
	waitFor(t, j, 10)
	start := time.Now()
	cancel()
	err := <-errc
	if !errors.Is(err, ErrForcedStop) || !strings.Contains(err.Error(), "transform, route, egress, registry, broker still running") {
		t.Fatalf("error %v, want a forced stop naming what is left", err)
	}
	if took := time.Since(start); took > 2*time.Second || took < 200*time.Millisecond {
		t.Errorf("the backstop fired after %v, want about 200ms", took)
	}
	// Once the backstop fires, the modules left are cancelled and may end
	// while Run returns, so the broker may show as ended; what must hold
	// is that parse (stopped before the stuck transform) ended before the
	// broker did.
	ev := j.list()
	parse, broker := slices.Index(ev, "end parse"), slices.Index(ev, "end broker")
	if parse < 0 || (broker >= 0 && broker < parse) {
		t.Errorf("events %v: parse should have ended, before the broker if it ended", ev)
	}
}

func TestRunOneModuleStopsThemAll(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		tweak func(*fake)
		want  error
	}{
		{"returns an error", func(f *fake) { f.early, f.result = true, boom }, boom},
		{"returns by itself", func(f *fake) { f.early = true }, ErrStoppedEarly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &journal{}
			err := Run(context.Background(), &config.File{}, testDeps(), table(j, map[string]func(*fake){"route": tt.tweak}), time.Second)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "route") {
				t.Fatalf("error %v, want %v naming route", err, tt.want)
			}
			if ev := j.list(); !slices.Contains(ev, "end broker") || !slices.Contains(ev, "end parse") {
				t.Errorf("not everything stopped: %v", ev)
			}
		})
	}
}

func TestRunFailedStart(t *testing.T) {
	j := &journal{}
	refused := errors.New("address in use")
	mods := table(j, map[string]func(*fake){"ingress": func(f *fake) { f.startErr = refused }})
	err := Run(context.Background(), &config.File{}, testDeps(), mods, time.Second)
	if !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "ingress: ") {
		t.Fatalf("error %v", err)
	}
	ev := j.list()
	// The failed ingress is stopped (it may have opened some listeners);
	// nothing after it is built; what started stops.
	for _, want := range []string{"stop ingress", "end egress", "end route", "end registry", "end broker"} {
		if !slices.Contains(ev, want) {
			t.Errorf("no %q in %v", want, ev)
		}
	}
	if slices.Contains(ev, "end ingress") || len(pick(ev, "new parse")) > 0 {
		t.Errorf("ingress ran or parse was built after a failed start: %v", ev)
	}
}
