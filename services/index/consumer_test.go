package index

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// pipeline is a broker and registry with the schemas of every topic the
// index reads registered, a producer, and an index configuration on a
// fresh SQLite file.
type pipeline struct {
	env  *kafkatest.Env
	prod *kgo.Client
	cfg  Config
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	env := kafkatest.New(t)
	ctx := context.Background()
	kc := env.Kafka
	topics := map[string]string{
		kc.Topic(kafka.TopicRaw): schemas.Raw, kc.Topic(kafka.TopicParsed): schemas.Parsed,
		kc.Topic(kafka.TopicTransformed): schemas.Transformed, kc.Topic(kafka.TopicDecisions): schemas.Decisions,
		kc.Topic(kafka.TopicDelivery): schemas.Delivery, kc.DLQTopic("egress"): schemas.DeadLetter,
		kc.Topic(kafka.TopicReplay): schemas.Replay, kc.Topic(kafka.TopicAudit): schemas.Audit,
	}
	prod, err := kafka.NewProducer(kc, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	for topic, sch := range topics {
		if err := kafka.EnsureTopics(ctx, prod, kc, topic); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Serde.Register(ctx, topic, sch); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	sec := filepath.Join(dir, "index-hmac")
	if err := os.WriteFile(sec, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return &pipeline{env: env, prod: prod, cfg: Config{Driver: DriverSQLite, DSN: filepath.Join(dir, "index.db"), SecretFile: sec,
		BatchSize: 50, FlushInterval: 20 * time.Millisecond}}
}

func discard() *slog.Logger {
	if os.Getenv("INDEX_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (p *pipeline) produce(t *testing.T, topic string, key string, recs ...canonical.Record) {
	t.Helper()
	var krs []*kgo.Record
	for _, r := range recs {
		b, err := p.env.Serde.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		krs = append(krs, &kgo.Record{Topic: topic, Key: []byte(key), Value: b,
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}})
	}
	if err := p.prod.ProduceSync(context.Background(), krs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// message produces one message's journey: raw, parsed and a decision
// routing it to lis.
func (p *pipeline) message(t *testing.T, id string, at time.Time) {
	t.Helper()
	kc := p.env.Kafka
	h := hdr
	h.ControlID = "C-" + id
	p.produce(t, kc.Topic(kafka.TopicRaw), id, &canonical.Raw{MessageID: id, Interface: "lab", ReceivedAt: at, Header: h, Payload: []byte("MSH|")})
	p.produce(t, kc.Topic(kafka.TopicParsed), id, &canonical.Parsed{MessageID: id, Interface: "lab", ReceivedAt: at, Header: h})
	p.produce(t, kc.Topic(kafka.TopicDecisions), id, &canonical.Decision{MessageID: id, Interface: "lab", ControlID: h.ControlID, MessageType: "ORU^R01",
		Stage: canonical.StageRoute, DecidedAt: at.Add(time.Millisecond), Outcome: canonical.OutcomeRouted,
		Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}}})
}

func (p *pipeline) delivered(t *testing.T, id string, at time.Time) {
	t.Helper()
	p.produce(t, p.env.Kafka.Topic(kafka.TopicDelivery), id, &canonical.Delivery{MessageID: id, Destination: "lis", Attempt: 1,
		Outcome: canonical.OutcomeDelivered, AckCode: "AA", At: at, Source: &canonical.RecordRef{Topic: p.env.Kafka.OutTopic("lis"), Offset: 3}})
}

// run starts the index and returns a function that stops it and returns
// what Run returned.
func (p *pipeline) run(t *testing.T, cfg Config, tel *telemetry.Telemetry) (*Service, func() error) {
	t.Helper()
	s, err := New(cfg, p.env.Kafka, p.env.Serde, discard(), tel)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := s.Run(ctx)
		if err != nil && ctx.Err() == nil {
			t.Errorf("index stopped: %v", err)
		}
		done <- err
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("index did not stop:\n%s", buf[:runtime.Stack(buf, true)])
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// eventually polls cond until it holds or the time runs out.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%s: still %s\n%s", what, last, buf[:runtime.Stack(buf, true)])
}

func statusesOf(t *testing.T, s *Store) map[string]string {
	t.Helper()
	rows, _, err := s.Search(context.Background(), Query{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.MessageID] = r.Status
	}
	return out
}

func TestConsumerIndexesEveryTopic(t *testing.T) {
	p := newPipeline(t)
	kc := p.env.Kafka
	for i, id := range []string{"m1", "m2", "m3"} {
		p.message(t, id, t0.Add(time.Duration(i)*time.Second))
	}
	p.delivered(t, "m1", t0.Add(time.Minute))
	p.produce(t, kc.Topic(kafka.TopicDelivery), "m2", &canonical.Delivery{MessageID: "m2", Destination: "lis", Attempt: 1,
		Outcome: canonical.OutcomeDeadLettered, AckCode: "AR", At: t0.Add(time.Minute)})
	p.produce(t, kc.DLQTopic("egress"), "m2", &canonical.DeadLetter{MessageID: "m2", ControlID: "C-m2", Stage: "egress", Destination: "lis",
		ErrorClass: canonical.ErrorPermanent, Reason: "AR", Attempts: 1, LastFailedAt: t0.Add(time.Minute), SourceTopic: kc.OutTopic("lis")})
	p.produce(t, kc.Topic(kafka.TopicAudit), "ana", &canonical.AuditEvent{EventID: "e1", At: t0, Service: "admin", Actor: "ana",
		Action: "message.content", Outcome: canonical.AuditOK})
	// A record that is not Avro, and one the index has no use for.
	if err := p.prod.ProduceSync(context.Background(), &kgo.Record{Topic: kc.Topic(kafka.TopicParsed), Value: []byte("garbage")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tel := telemetry.Nop()
	p.run(t, p.cfg, tel)
	read := openStore(t, DriverSQLite, p.cfg.DSN)
	eventually(t, "indexing", func() (bool, string) {
		st := statusesOf(t, read)
		return st["m1"] == StatusDelivered && st["m2"] == StatusRejected && st["m3"] == StatusRouted, fmt.Sprint(st)
	})
	m, err := read.Message(context.Background(), "m2")
	if err != nil {
		t.Fatal(err)
	}
	if m.ControlID != "C-m2" || m.TraceID != "0af7651916cd43dd8448eb211c80319c" || len(m.DeadLetters) != 1 || !strings.HasPrefix(m.DeadLetters[0].ID, "egress:") {
		t.Fatalf("m2 %+v", m)
	}
	dl := m.DeadLetters[0]
	// Discard it through the replay topic: dlq list no longer shows it.
	p.produce(t, kc.Topic(kafka.TopicReplay), "discard/"+dl.ID, &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: t0.Add(time.Hour),
		Discard: &canonical.Discard{DeadLetterID: dl.ID, MessageID: "m2", Reason: "sent by hand", Actor: "op"}})
	eventually(t, "discard", func() (bool, string) {
		d, err := read.DeadLetter(context.Background(), dl.ID)
		return err == nil && d.Discarded != nil, fmt.Sprint(d, err)
	})
	m1, err := read.Message(context.Background(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	var out bool
	for _, ptr := range m1.Pointers {
		out = out || ptr.Kind == KindOut && ptr.Topic == kc.OutTopic("lis")
	}
	if !out {
		t.Fatalf("m1 has no pointer to its out record: %+v", m1.Pointers)
	}
	if ev, _, err := read.Audit(context.Background(), AuditQuery{}); err != nil || len(ev) != 1 || ev[0].Actor != "ana" {
		t.Fatalf("audit %+v %v", ev, err)
	}
	if n := testutil.ToFloat64(tel.CounterVec(skippedOpts, "topic").WithLabelValues(kc.Topic(kafka.TopicParsed))); n != 1 {
		t.Fatalf("skipped records %v, want 1", n)
	}
	if n := testutil.CollectAndCount(tel.Registry, "hl7bus_index_batch_seconds"); n != 1 {
		t.Fatalf("batch histogram: %d series", n)
	}
}

// TestConsumerRestartLosesNothing stops the index while it is half-way
// through the topics, writes more, and starts it again: every message is
// indexed, with its last status.
func TestConsumerRestartLosesNothing(t *testing.T) {
	p := newPipeline(t)
	const n = 120
	for i := range n {
		p.message(t, fmt.Sprintf("m%03d", i), t0.Add(time.Duration(i)*time.Second))
	}
	cfg := p.cfg
	cfg.BatchSize = 10 // many batches, so the stop falls between two
	_, stop := p.run(t, cfg, telemetry.Nop())
	read := openStore(t, DriverSQLite, p.cfg.DSN)
	eventually(t, "first batches", func() (bool, string) {
		st := statusesOf(t, read)
		return len(st) > 0, fmt.Sprint(len(st))
	})
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	// Meanwhile the first half was delivered.
	for i := range n / 2 {
		p.delivered(t, fmt.Sprintf("m%03d", i), t0.Add(time.Hour))
	}
	p.run(t, cfg, telemetry.Nop())
	eventually(t, "after the restart", func() (bool, string) {
		st := statusesOf(t, read)
		var delivered, routed int
		for _, s := range st {
			switch s {
			case StatusDelivered:
				delivered++
			case StatusRouted:
				routed++
			}
		}
		return delivered == n/2 && routed == n-n/2, fmt.Sprintf("%d delivered, %d routed of %d", delivered, routed, len(st))
	})
}

func TestConsumerRebuild(t *testing.T) {
	p := newPipeline(t)
	p.message(t, "m1", t0)
	_, stop := p.run(t, p.cfg, telemetry.Nop())
	read := openStore(t, DriverSQLite, p.cfg.DSN)
	eventually(t, "indexing", func() (bool, string) {
		st := statusesOf(t, read)
		return st["m1"] == StatusRouted, fmt.Sprint(st)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// A row no topic says anything about: a rebuild drops it.
	apply(t, read, []Update{{MessageID: "stray", At: t0, Status: StatusReceived}})
	cfg := p.cfg
	cfg.Rebuild = true
	_, stop = p.run(t, cfg, telemetry.Nop())
	eventually(t, "rebuilding", func() (bool, string) {
		st := statusesOf(t, read)
		return st["m1"] == StatusRouted && st["stray"] == "", fmt.Sprint(st)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	g, err := read.ConsumerGroup(context.Background())
	if err != nil || !strings.HasPrefix(g, p.env.Kafka.TopicPrefix+"index.rebuild-") {
		t.Fatalf("group after rebuild %q %v", g, err)
	}
	// The next start (no rebuild) goes on in the rebuild's group.
	s, err := New(p.cfg, p.env.Kafka, p.env.Serde, discard(), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.group(context.Background(), read); got != g || err != nil {
		t.Fatalf("group %q %v, want %q", got, err, g)
	}
}

func TestNewNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no dsn", Config{SecretFile: empty}, "index.dsn"},
		{"bad driver", Config{Driver: "mysql", DSN: "x", SecretFile: empty}, "index.driver"},
		{"no secret", Config{DSN: "x"}, "index.secret_file"},
		{"missing secret", Config{DSN: "x", SecretFile: filepath.Join(dir, "nope")}, "index.secret_file"},
		{"empty secret", Config{DSN: "x", SecretFile: empty}, "index.secret_file"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, kafka.Config{}, nil, discard(), nil)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
}

func TestTraceID(t *testing.T) {
	tests := []struct {
		hs   []kgo.RecordHeader
		want string
	}{
		{[]kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}, "0af7651916cd43dd8448eb211c80319c"},
		{[]kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-short-b7-01")}}, ""},
		{[]kgo.RecordHeader{{Key: "other", Value: []byte("x")}}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := traceID(tt.hs); got != tt.want {
			t.Errorf("traceID(%v) = %q, want %q", tt.hs, got, tt.want)
		}
	}
}
