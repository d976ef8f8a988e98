package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
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
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		switch string(rec.Value) {
		case "bad":
			return nil, pipeline.Ident{MessageID: "id-bad", ControlID: "C-bad"}, pipeline.Permanent(errors.New("not a message"))
		case "flaky":
			// Transient for longer than the old 5-attempt budget: it must
			// be retried, never dead-lettered.
			mu.Lock()
			flakyCalls++
			calls := flakyCalls
			mu.Unlock()
			if calls <= 8 {
				return nil, pipeline.Ident{MessageID: "id-flaky"}, errors.New("registry unavailable")
			}
		}
		return []*kgo.Record{{Topic: out, Key: rec.Key, Value: bytes.ToUpper(rec.Value)}}, pipeline.Ident{}, nil
	}
	sess, err := kafka.NewTransactSession(env.Kafka, log, "g-test", "txn-test-1", []string{in})
	if err != nil {
		t.Fatal(err)
	}
	tel := telemetry.Nop()
	loop := &pipeline.Transact{Stage: "test", Session: sess, DLQTopic: dlq, Serde: env.Serde, Handle: handler, Log: log,
		Retry: pipeline.RetryPolicy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}, Telemetry: tel}
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
