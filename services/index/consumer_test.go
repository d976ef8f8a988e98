package index

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
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

// indexGroups lists the index's consumer groups on the broker.
func indexGroups(t *testing.T, p *pipeline, s *Service) []string {
	t.Helper()
	listed, err := kadm.NewClient(p.prod).ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range listed.Groups() {
		if s.isIndexGroup(g) {
			out = append(out, g)
		}
	}
	sort.Strings(out)
	return out
}

func TestConsumerRebuild(t *testing.T) {
	p := newPipeline(t)
	p.message(t, "m1", t0)
	tel := telemetry.Nop()
	s, stop := p.run(t, p.cfg, tel)
	base := p.env.Kafka.TopicPrefix + "index"
	read := openStore(t, DriverSQLite, p.cfg.DSN)
	eventually(t, "indexing", func() (bool, string) {
		st := statusesOf(t, read)
		return st["m1"] == StatusRouted, fmt.Sprint(st)
	})
	if v := testutil.ToFloat64(tel.GaugeVec(groupInfoOpts, "group").WithLabelValues(base)); v != 1 {
		t.Errorf("group info of %s = %v, want 1", base, v)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := indexGroups(t, p, s); fmt.Sprint(got) != "["+base+"]" {
		t.Fatalf("groups before the rebuild: %v", got)
	}
	// A row no topic says anything about: a rebuild drops it.
	apply(t, read, []Update{{MessageID: "stray", At: t0, Status: StatusReceived}})
	cfg := p.cfg
	cfg.Rebuild = true
	tel = telemetry.Nop()
	_, stop = p.run(t, cfg, tel)
	eventually(t, "rebuilding", func() (bool, string) {
		st := statusesOf(t, read)
		return st["m1"] == StatusRouted && st["stray"] == "", fmt.Sprint(st)
	})
	g, err := read.ConsumerGroup(context.Background())
	if err != nil || !strings.HasPrefix(g, base+".rebuild-") {
		t.Fatalf("group after rebuild %q %v", g, err)
	}
	// The metric names the group the index now reads in, and the one
	// before the rebuild is gone from the broker (its lag would only grow).
	if v := testutil.ToFloat64(tel.GaugeVec(groupInfoOpts, "group").WithLabelValues(g)); v != 1 {
		t.Errorf("group info of %s = %v, want 1", g, v)
	}
	eventually(t, "the old group deleted", func() (bool, string) {
		got := indexGroups(t, p, s)
		return fmt.Sprint(got) == "["+g+"]", fmt.Sprint(got)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The next start (no rebuild) goes on in the rebuild's group.
	s, err = New(p.cfg, p.env.Kafka, p.env.Serde, discard(), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.group(context.Background(), read); got != g || err != nil {
		t.Fatalf("group %q %v, want %q", got, err, g)
	}
	// A second rebuild deletes the first one's group.
	time.Sleep(time.Millisecond) // a new group name (microseconds)
	_, stop = p.run(t, cfg, telemetry.Nop())
	g2 := ""
	eventually(t, "the first rebuild's group deleted", func() (bool, string) {
		g2, _ = read.ConsumerGroup(context.Background())
		got := indexGroups(t, p, s)
		return g2 != g && fmt.Sprint(got) == "["+g2+"]", fmt.Sprint(got)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestDropStaleGroupsKeepsMembers: a stale group that still has a member
// (an instance not restarted since the rebuild) is not deleted, and
// groups that are not the index's are never touched.
func TestDropStaleGroupsKeepsMembers(t *testing.T) {
	p := newPipeline(t)
	kc := p.env.Kafka
	s, err := New(p.cfg, kc, p.env.Serde, discard(), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(p.prod)
	ctx := context.Background()
	raw := kc.Topic(kafka.TopicRaw)
	p.message(t, "m1", t0)
	// An empty group of another stage, with offsets: left alone.
	if _, err := adm.CommitOffsets(ctx, kc.TopicPrefix+"egress", kadm.OffsetsFromRecords(kgo.Record{Topic: raw, Offset: 0})); err != nil {
		t.Fatal(err)
	}
	// An empty old rebuild group: deleted.
	old := kc.TopicPrefix + "index.rebuild-20260101T000000.000000Z"
	if _, err := adm.CommitOffsets(ctx, old, kadm.OffsetsFromRecords(kgo.Record{Topic: raw, Offset: 0})); err != nil {
		t.Fatal(err)
	}
	// <prefix>index with a live member: kept.
	base := kc.TopicPrefix + "index"
	member, err := kafka.NewConsumer(kc, discard(), base, []string{raw})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	eventually(t, "the member joined", func() (bool, string) {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		member.PollRecords(pctx, 1) // joins the group
		cancel()
		dg, err := adm.DescribeGroups(ctx, base)
		if err != nil {
			return false, err.Error()
		}
		return len(dg[base].Members) == 1, dg[base].State
	})
	s.dropStaleGroups(ctx, adm, kc.TopicPrefix+"index.rebuild-20260301T000000.000000Z")
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := listed.Groups()
	sort.Strings(got)
	if want := fmt.Sprint([]string{kc.TopicPrefix + "egress", base}); fmt.Sprint(got) != want {
		t.Fatalf("groups after dropStaleGroups: %v, want %s", got, want)
	}
}

// TestCheckRetention: a warning when index.retention is not the raw
// topic's retention.ms, none when it is (-1 is 0).
func TestCheckRetention(t *testing.T) {
	p := newPipeline(t)
	kc := p.env.Kafka
	adm := kadm.NewClient(p.prod)
	ctx := context.Background()
	check := func(retention time.Duration) string {
		var buf bytes.Buffer
		cfg := p.cfg
		cfg.Retention = retention
		s, err := New(cfg, kc, p.env.Serde, slog.New(slog.NewTextHandler(&buf, nil)), telemetry.Nop())
		if err != nil {
			t.Fatal(err)
		}
		s.checkRetention(ctx, adm)
		return buf.String()
	}
	// kfake's default retention.ms is Kafka's: 7 days.
	if out := check(168 * time.Hour); out != "" {
		t.Errorf("index.retention = retention.ms: logged %q", out)
	}
	out := check(48 * time.Hour)
	if !strings.Contains(out, "index.retention differs") || !strings.Contains(out, "retention_ms=168h0m0s") || !strings.Contains(out, "index_retention=48h0m0s") {
		t.Errorf("index.retention 48h, retention.ms 7 days: logged %q, want a warning with both", out)
	}
	forever := "-1"
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &forever}}, kc.Topic(kafka.TopicRaw))
	if err == nil {
		_, err = rs.On(kc.Topic(kafka.TopicRaw), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if out := check(0); out != "" {
		t.Errorf("index.retention 0, retention.ms -1: logged %q", out)
	}
	if out := check(168 * time.Hour); !strings.Contains(out, "retention_ms=0s") {
		t.Errorf("index.retention 168h, retention.ms -1: logged %q, want a warning", out)
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
