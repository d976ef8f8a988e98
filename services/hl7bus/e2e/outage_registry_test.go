package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// registryOutage is how long the registry is away: well past any retry
// budget a stage might count an outage against (the old loop's five
// attempts, about 6 s; the runtime's default in-place tries and its 5 s
// maximum backoff), so a stage that did would dead-letter good messages
// within it.
const registryOutage = 20 * time.Second

// stage is one running stage instance, stopped on its own.
type stage struct {
	name string
	stop context.CancelFunc
	done chan error
}

func runStage(t *testing.T, ctx context.Context, name string, st interface{ Run(context.Context) error }) *stage {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	s := &stage{name: name, stop: stop, done: make(chan error, 1)}
	go func() { s.done <- st.Run(runCtx) }()
	t.Cleanup(func() { s.halt(t) })
	return s
}

// halt stops the stage and waits for it (idempotent).
func (s *stage) halt(t *testing.T) {
	t.Helper()
	s.stop()
	if err, ok := <-s.done; ok {
		close(s.done)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

// TestRegistryOutageDeadLettersNothing (issue 9, "Done means"): the schema
// registry goes away for longer than the retry budget: no good message is
// dead-lettered, in any stage, egress included; everything flows when it
// returns.
//
// Each stage must meet the outage with input it cannot read yet, so the
// test first stages traffic at every step: with the registry up, batch 1
// goes as far as out.lis, batch 2 to transformed, batch 3 to parsed and
// batch 4 stays on raw, each stage instance stopped once its batch is past
// it. Then fresh instances of parse, transform, route and egress start,
// each with its own Serde (as separate processes have), so each must fetch
// the writer schema of its input from the registry. They start while the
// registry refuses schema lookups but still takes registrations (their
// start registers what they write); once all four have been refused a
// lookup, the registry goes away completely for registryOutage, while
// ingress accepts batch 5 (it encodes with the schema it registered at
// start). When the registry is back, all five batches must reach the
// receiver, each message once, unchanged, in order per patient, and every
// dead-letter topic must be empty.
func TestRegistryOutageDeadLettersNothing(t *testing.T) {
	env := kafkatest.New(t)
	if env.External {
		t.Skip("cuts the registry with a proxy in front of srfake; the interop registry is not ours to cut")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	recv := startReceiver(t)
	proxy := startRegistryProxy(t, env.RegistryURL)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- warnings and errors of the stages ---\n%s", logs.tail(40))
		}
	})
	serde := func() *canonical.Serde {
		c, err := sr.NewClient(sr.URLs(proxy.url()))
		if err != nil {
			t.Fatal(err)
		}
		return canonical.NewSerde(c)
	}
	// Telemetry of the first instances (and ingress), and of the fresh ones.
	tel1, tel2 := telemetry.New(nil), telemetry.New(nil)
	rules := []route.Rule{{Name: "all", Destinations: []string{"lis"}}}
	newStages := func(tel *telemetry.Telemetry) map[string]interface{ Run(context.Context) error } {
		return map[string]interface{ Run(context.Context) error }{
			"parse":     parse.New(parse.Config{Instance: "0", Telemetry: tel}, env.Kafka, serde(), log),
			"transform": transform.New(transform.Config{Instance: "0", Telemetry: tel}, env.Kafka, serde(), log),
			"route":     route.New(route.Config{Instance: "0", Rules: routes(t, rules...), Telemetry: tel}, env.Kafka, serde(), log),
			"egress": egress.New(egress.Config{Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: recv.addr,
				Retry: egress.Retry{InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}}}, Telemetry: tel},
				env.Kafka, serde(), log),
		}
	}

	in := ingress.New(ingress.Config{Interfaces: []ingress.Interface{{Name: "adt-in", Protocol: "mllp", Address: "127.0.0.1:0"}},
		Telemetry: tel1}, env.Kafka, serde(), log)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Stop(context.Background()) })
	addr := in.Addr("adt-in")

	// Stage the traffic, registry up.
	const patients, perBatch = 6, 2 // 12 messages a batch
	sent := map[string]string{}
	first := newStages(tel1)
	var running []*stage
	for _, name := range []string{"parse", "transform", "route"} {
		running = append(running, runStage(t, ctx, name, first[name]))
	}
	steps := []struct{ topic, stop string }{
		{env.Kafka.OutTopic("lis"), "route"},
		{env.Kafka.Topic("transformed"), "transform"},
		{env.Kafka.Topic("parsed"), "parse"},
		{env.Kafka.Topic("raw"), ""},
	}
	for b, step := range steps {
		sendStagedBatch(t, ctx, addr, sent, b, patients, perBatch)
		env.Read(t, step.topic, (b+1)*patients*perBatch)
		for _, st := range running {
			if st.name == step.stop {
				st.halt(t)
			}
		}
	}

	// Fresh instances start while lookups are refused; wait until each
	// has been refused the schema of its input.
	ids := map[int]string{}
	for _, subject := range []string{"raw", "parsed", "transformed", "out.lis"} {
		ss, err := env.SR.SchemaByVersion(ctx, env.Kafka.Topic(subject)+"-value", -1)
		if err != nil {
			t.Fatal(err)
		}
		ids[ss.ID] = subject
	}
	if len(ids) != 4 {
		t.Fatalf("the four input schemas share IDs: %v", ids)
	}
	proxy.refuseLookups()
	fresh := newStages(tel2)
	for _, name := range []string{"parse", "transform", "route", "egress"} {
		runStage(t, ctx, name, fresh[name])
	}
	deadline := time.Now().Add(30 * time.Second)
	for !proxy.refusedAll(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s only these input schemas were looked up: %v (want %v)", proxy.refusedIDs(), ids)
		}
		time.Sleep(50 * time.Millisecond)
	}

	proxy.down()
	cutAt := time.Now()
	sendStagedBatch(t, ctx, addr, sent, len(steps), patients, perBatch)
	time.Sleep(registryOutage - time.Since(cutAt))
	// The outage was real: nothing got past a stage that needs a schema.
	if got := len(recv.messages()); got != 0 {
		t.Errorf("%d messages delivered while egress could not read out.lis: the test does not cut what it means to", got)
	}
	proxy.up(t)
	t.Logf("registry away for %v; %d messages accepted", time.Since(cutAt).Round(time.Millisecond), len(sent))

	// Everything flows once it is back: each message once, unchanged, in
	// order per patient...
	if delivered := waitAllDelivered(recv, sent, 30*time.Second); delivered < len(sent) {
		t.Errorf("%d of %d accepted messages reached the receiver 30 s after the registry came back", delivered, len(sent))
	} else {
		checkDelivered(t, recv, sent, time.Second)
	}
	// ... and nothing was dead-lettered, in any stage.
	for _, s := range []string{"parse", "transform", "route", "egress"} {
		dead := committedDeadLetters(t, ctx, env, env.Kafka.DLQTopic(s))
		for i, d := range dead {
			if i == 3 {
				t.Errorf("... %d dead letters on %s in all", len(dead), env.Kafka.DLQTopic(s))
				break
			}
			t.Errorf("dead letter on %s: stage %s, class %s, attempts %d, control ID %q, reason %q",
				env.Kafka.DLQTopic(s), d.Stage, d.ErrorClass, d.Attempts, d.ControlID, d.Reason)
		}
		for _, tel := range []*telemetry.Telemetry{tel1, tel2} {
			if v, _ := metricValue(t, tel, "hl7bus_dlq_writes_total", "stage", s); v != 0 {
				t.Errorf("hl7bus_dlq_writes_total{stage=%q} = %v, want 0", s, v)
			}
		}
	}
}

// sendStagedBatch sends batch b: perBatch messages for each patient, in order,
// on one connection, each of which must be accepted.
func sendStagedBatch(t *testing.T, ctx context.Context, addr string, sent map[string]string, b, patients, perBatch int) {
	t.Helper()
	c := mllp.NewClient(addr, mllp.WithAckTimeout(20*time.Second))
	defer c.Close()
	for i := 0; i < perBatch; i++ {
		n := b*perBatch + i
		for p := 0; p < patients; p++ {
			msg := message([]string{"ADT", "ORU", "VXU"}[(p+n)%3], p, n)
			m, _ := hl7v2.Parse([]byte(msg))
			reply, err := c.Send(ctx, []byte(msg))
			if err != nil {
				t.Fatalf("batch %d: send %s: %v", b, m.ControlID(), err)
			}
			if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckAccept || !ack.Matches(m.ControlID()) {
				t.Fatalf("batch %d: ACK for %s: %v %+v", b, m.ControlID(), err, ack)
			}
			sent[m.ControlID()] = msg
		}
	}
}

// waitAllDelivered waits until every control ID of sent has reached recv,
// or within passes, and returns how many distinct ones did.
func waitAllDelivered(recv *receiver, sent map[string]string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		seen := map[string]bool{}
		for _, f := range recv.messages() {
			if m, err := hl7v2.Parse(f); err == nil && sent[m.ControlID()] != "" {
				seen[m.ControlID()] = true
			}
		}
		if len(seen) == len(sent) || time.Now().After(deadline) {
			return len(seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// committedDeadLetters returns every committed record of topic, reading
// until the end offsets seen at the start (a topic that was never written
// to has none).
func committedDeadLetters(t *testing.T, ctx context.Context, env *kafkatest.Env, topic string) []*canonical.DeadLetter {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	// A few seconds of polling: dead letters of the outage were committed
	// long before (the messages were due 20 s ago).
	pollCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out []*canonical.DeadLetter
	for pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Errorf("%s offset %d: %v", topic, r.Offset, err)
				return
			}
			if d, ok := rec.(*canonical.DeadLetter); ok {
				out = append(out, d)
			}
		})
	}
	return out
}

// registryProxy stands between the stages and the registry. Up, it
// forwards everything; refusing lookups, it drops the connection of every
// schema lookup by ID (GET /schemas/ids/N) and records the ID, while
// registrations still pass; down, it listens no more and has closed every
// connection (a registry that is gone: connections refused). up listens
// on the same address again.
type registryProxy struct {
	target *url.URL
	addr   string

	mu      sync.Mutex
	srv     *http.Server
	refuse  bool
	refused map[int]bool
}

func startRegistryProxy(t *testing.T, target string) *registryProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &registryProxy{target: u, addr: "127.0.0.1:0", refused: map[int]bool{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *registryProxy) url() string { return "http://" + p.addr }

func (p *registryProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("registry proxy: listening on %s again: %v", p.addr, err)
	}
	rp := httputil.NewSingleHostReverseProxy(p.target)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		// Only the lookup itself: registering reads
		// /schemas/ids/N/versions back.
		if id, ok := strings.CutPrefix(r.URL.Path, "/schemas/ids/"); ok && refuse {
			if n, err := strconv.Atoi(id); err == nil {
				p.mu.Lock()
				p.refused[n] = true
				p.mu.Unlock()
				panic(http.ErrAbortHandler) // the connection drops, no answer
			}
		}
		rp.ServeHTTP(w, r)
	})}
	p.mu.Lock()
	p.srv, p.addr, p.refuse = srv, ln.Addr().String(), false
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (p *registryProxy) refuseLookups() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
}

// refusedAll reports whether a lookup of every ID in ids was refused.
func (p *registryProxy) refusedAll(ids map[int]string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range ids {
		if !p.refused[id] {
			return false
		}
	}
	return true
}

func (p *registryProxy) refusedIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for id := range p.refused {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

func (p *registryProxy) down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// syncBuffer is a log sink safe for the stages' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
