package kafka_test

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
			mu.Lock()
			flakyCalls++
			mu.Unlock()
			return nil, kafka.Ident{MessageID: "id-flaky"}, errors.New("registry unavailable")
		}
		return []*kgo.Record{{Topic: out, Key: rec.Key, Value: bytes.ToUpper(rec.Value)}}, kafka.Ident{}, nil
	}
	sess, err := kafka.NewTransactSession(env.Kafka, log, "g-test", "txn-test-1", []string{in})
	if err != nil {
		t.Fatal(err)
	}
	loop := &kafka.Loop{Stage: "test", Session: sess, DLQTopic: dlq, Serde: env.Serde, Handle: handler, Log: log,
		MaxAttempts: 3, Backoff: 10 * time.Millisecond}
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

	if len(outs) != n-5 {
		t.Errorf("%d distinct outputs, want %d", len(outs), n-5)
	}
	for v, c := range outs {
		if c != 1 {
			t.Errorf("%s produced %d times", v, c)
		}
	}
	if len(dead) != 5 {
		t.Fatalf("%d dead letters, want 5", len(dead))
	}
	transient := 0
	for _, d := range dead {
		switch d.ErrorClass {
		case canonical.ErrorPermanent:
			if string(d.Value) != "bad" || d.Reason != "not a message" || d.SourceTopic != in || d.MessageID != "id-bad" || d.ControlID != "C-bad" || d.Attempts != 1 {
				t.Errorf("permanent dead letter %+v", d)
			}
		case canonical.ErrorTransient:
			transient++
			if string(d.Value) != "flaky" || d.Attempts != 3 || d.Reason != "registry unavailable" || !d.LastFailedAt.After(d.FirstFailedAt) {
				t.Errorf("transient dead letter %+v", d)
			}
		}
		if string(d.Headers["traceparent"]) != "00-t" {
			t.Errorf("dead letter lost headers: %v", d.Headers)
		}
	}
	if transient != 1 || flakyCalls != 3 {
		t.Errorf("transient dead letters %d, handler calls %d", transient, flakyCalls)
	}
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
}
