package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestLoopRecoversFromAPanic: a handler that panics on one record (a bug a
// hostile message trips) dead-letters that record with class panic and a reason that does
// not quote the panic's value, and the loop goes on with the others. Before,
// the panic ended the process, which restarted on the same record.
func TestLoopRecoversFromAPanic(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	in, out, dlq := env.Kafka.Topic("pin"), env.Kafka.Topic("pout"), env.Kafka.DLQTopic("ptest")
	admin, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, in, out, dlq); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Serde.Register(ctx, dlq, schemas.DeadLetter); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "ZZTESTNAME", "b"} {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte("k"), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		if string(rec.Value) == "ZZTESTNAME" {
			panic("index out of range handling " + string(rec.Value))
		}
		return []*kgo.Record{{Topic: out, Key: rec.Key, Value: bytes.ToUpper(rec.Value)}}, pipeline.Ident{}, nil
	}
	sess, err := kafka.NewTransactSession(env.Kafka, log, "g-panic", "txn-panic-1", []string{in})
	if err != nil {
		t.Fatal(err)
	}
	loop := &pipeline.Transact{Stage: "ptest", Session: sess, DLQTopic: dlq, Serde: env.Serde, Handle: handler, Log: log,
		Retry: pipeline.RetryPolicy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(runCtx) }()

	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(out, dlq),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var outs []string
	var dead []*canonical.DeadLetter
	for len(outs)+len(dead) < 3 && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Topic == out {
				outs = append(outs, string(r.Value))
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
	if strings.Join(outs, ",") != "A,B" {
		t.Errorf("outputs %v, want A,B", outs)
	}
	if len(dead) != 1 || string(dead[0].Value) != "ZZTESTNAME" || dead[0].ErrorClass != pipeline.ClassPanic ||
		!strings.Contains(dead[0].Reason, "panicked") {
		t.Fatalf("dead letters %+v; want the panicking record, class panic, saying the handler panicked", dead)
	}
	if strings.Contains(dead[0].Reason, "ZZTESTNAME") || strings.Contains(logs.String(), "ZZTESTNAME") {
		t.Errorf("the panic's value (message content) was quoted: reason %q, logs %s", dead[0].Reason, logs.String())
	}
	if !strings.Contains(logs.String(), "panic_type=string") {
		t.Errorf("the panic was not logged with its type: %s", logs.String())
	}
}
