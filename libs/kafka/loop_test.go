package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestLoopExactlyOnceWithDeadLetters(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	in, out, dlq := env.Kafka.Topic("in"), env.Kafka.Topic("out"), env.Kafka.DLQTopic("test")

	admin, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, in, out, dlq); err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, in); err != nil {
		t.Fatalf("creating an existing topic must succeed: %v", err)
	}
	if _, err := env.Serde.Register(ctx, dlq, schemas.DeadLetter); err != nil {
		t.Fatal(err)
	}

	const n = 200
	for i := 0; i < n; i++ {
		v := []byte(fmt.Sprintf("msg-%03d", i))
		if i%50 == 7 {
			v = []byte("bad")
		}
		if i == 100 {
			v = []byte("flaky")
		}
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(fmt.Sprint(i % 10)), Value: v,
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-t")}}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	flakyCalls := 0
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, kafka.Ident, error) {
		switch string(rec.Value) {
		case "bad":
			return nil, kafka.Ident{MessageID: "id-bad", ControlID: "C-bad"}, kafka.Permanent(errors.New("not a message"))
		case "flaky":
			// Transient for longer than the old 5-attempt budget: it must
			// be retried, never dead-lettered.
			mu.Lock()
			flakyCalls++
			calls := flakyCalls
			mu.Unlock()
			if calls <= 8 {
				return nil, kafka.Ident{MessageID: "id-flaky"}, errors.New("registry unavailable")
			}
		}
		return []*kgo.Record{{Topic: out, Key: rec.Key, Value: bytes.ToUpper(rec.Value)}}, kafka.Ident{}, nil
	}
	sess, err := kafka.NewTransactSession(env.Kafka, log, "g-test", "txn-test-1", []string{in})
	if err != nil {
		t.Fatal(err)
	}
	tel := telemetry.Nop()
	loop := &kafka.Loop{Stage: "test", Session: sess, DLQTopic: dlq, Serde: env.Serde, Handle: handler, Log: log,
		Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Telemetry: tel}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(runCtx) }()

	// Read both topics read_committed until every input is accounted for.
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(out, dlq),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	outs := map[string]int{}
	var dead []*canonical.DeadLetter
	for len(outs)+len(dead) < n && ctx.Err() == nil {
		fs := reader.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == out {
				outs[string(r.Value)]++
				if len(r.Headers) != 1 || string(r.Headers[0].Value) != "00-t" {
					t.Errorf("headers not carried: %v", r.Headers)
				}
				return
			}
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("dead letter: %v", err)
			}
			dead = append(dead, rec.(*canonical.DeadLetter))
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sess.Close()

	if len(outs) != n-4 {
		t.Errorf("%d distinct outputs, want %d", len(outs), n-4)
	}
	for v, c := range outs {
		if c != 1 {
			t.Errorf("%s produced %d times", v, c)
		}
	}
	if len(dead) != 4 {
		t.Fatalf("%d dead letters, want 4 (transient failures are retried, never dead-lettered)", len(dead))
	}
	for _, d := range dead {
		if d.ErrorClass != canonical.ErrorPermanent || string(d.Value) != "bad" || d.Reason != "not a message" || d.SourceTopic != in ||
			d.MessageID != "id-bad" || d.ControlID != "C-bad" || d.Attempts != 1 {
			t.Errorf("dead letter %+v", d)
		}
		if string(d.Headers["traceparent"]) != "00-t" {
			t.Errorf("dead letter lost headers: %v", d.Headers)
		}
	}
	if outs["FLAKY"] != 1 || flakyCalls != 9 {
		t.Errorf("flaky record: %d outputs after %d handler calls", outs["FLAKY"], flakyCalls)
	}
	// ok counts committed records only: the retried batches do not count.
	if ok := counter(t, tel, "hl7bus_stage_records_total", "ok"); ok != n-4 {
		t.Errorf("hl7bus_stage_records_total{outcome=ok} = %v, want %d", ok, n-4)
	}
	if dl := counter(t, tel, "hl7bus_stage_records_total", "dead_lettered"); dl != 4 {
		t.Errorf("hl7bus_stage_records_total{outcome=dead_lettered} = %v, want 4", dl)
	}
}

// counter returns the value of the series of name whose labels include
// the value want (0 when there is none).
func counter(t *testing.T, tel *telemetry.Telemetry, name, want string) float64 {
	t.Helper()
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == want {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func TestConfigValidate(t *testing.T) {
	if err := (kafka.Config{Brokers: []string{"a:9092"}}).WithDefaults().Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	err := (kafka.Config{TopicPrefix: "bad prefix!", Partitions: -1, Brokers: []string{""}}).Validate()
	for _, want := range []string{"kafka.brokers[0]", "kafka.topic_prefix", "kafka.partitions"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if err := (kafka.Config{}).Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte("kafka.brokers:")) {
		t.Errorf("no brokers: %v", err)
	}
	for _, n := range []int{-1, 1000, 1 << 30} {
		err := (kafka.Config{Brokers: []string{"a:9092"}, MaxRecordBytes: n}).Validate()
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("kafka.max_record_bytes")) {
			t.Errorf("max_record_bytes %d: %v", n, err)
		}
	}
	if c := (kafka.Config{}).WithDefaults(); c.MaxRecordBytes != kafka.DefaultMaxRecordBytes {
		t.Errorf("default record limit %d", c.MaxRecordBytes)
	}
}

// TestEnsureTopicsRecordLimit: new topics get max.message.bytes = the
// record limit; an existing topic with a lower limit (one created before
// the size policy, or by hand) is raised, so an upgrade works; a higher
// one is left alone.
func TestEnsureTopicsRecordLimit(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kafka.NewAdmin(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	low, high, fresh := env.Kafka.Topic("low"), env.Kafka.Topic("high"), env.Kafka.Topic("fresh")
	for topic, v := range map[string]string{low: "1000012", high: strconv.Itoa(64 << 20)} {
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &v}, topic); err != nil {
			t.Fatal(err)
		}
	}
	kc := env.Kafka
	kc.MaxRecordBytes = 17 << 20
	if err := kafka.EnsureTopics(ctx, admin, kc, low, high, fresh); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, low, high, fresh)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{low: strconv.Itoa(17 << 20), high: strconv.Itoa(64 << 20), fresh: strconv.Itoa(17 << 20)}
	got := map[string]string{}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" {
				got[rc.Name] = c.MaybeValue()
			}
		}
	}
	for topic, w := range want {
		if got[topic] != w {
			t.Errorf("%s: max.message.bytes %q, want %s", topic, got[topic], w)
		}
	}
}
