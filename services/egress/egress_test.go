package egress

import (
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

func TestUndecodableRecords(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dlq := env.Kafka.DLQTopic("egress")
	prod, err := kafka.NewProducer(env.Kafka, log)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafka.EnsureTopics(ctx, prod, env.Kafka, dlq); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Serde.Register(ctx, dlq, schemas.DeadLetter); err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, env.Kafka, env.Serde, log)
	w := newWorker(s, Destination{Name: "lis", Retry: Retry{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}}.WithDefaults(), MLLP(),
		prod, dlq, env.Kafka.Topic(kafka.TopicDelivery))

	// A schema ID the registry does not know (yet): held for a retry, never
	// dead-lettered, and no attempt counted. (No client: nothing is sent.)
	unknown := &job{Rec: &kgo.Record{Topic: "t", Value: []byte{0, 0, 0, 0, 77, 2}}}
	if r := w.process(ctx, unknown, nil); r.Kind != pipeline.RetryLater || unknown.State.attempts != 0 || r.At.IsZero() {
		t.Errorf("a record whose schema cannot be fetched was passed: result %+v, attempts %d", r, unknown.State.attempts)
	}
	// Bytes that are no record at all: dead-lettered at once.
	r := w.process(ctx, &job{Rec: &kgo.Record{Topic: "t", Value: []byte("not avro")}}, nil)
	if r.Kind == pipeline.Fatal {
		t.Fatalf("fatal: %v", r.Err)
	}
	if r.Kind != pipeline.Done {
		t.Fatal("garbage was not dead-lettered")
	}
	reader, err := kafka.NewReader(env.Kafka, log, dlq, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	var dead []*canonical.DeadLetter
	for len(dead) < 1 && pctx.Err() == nil {
		reader.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err == nil {
				dead = append(dead, rec.(*canonical.DeadLetter))
			}
		})
	}
	if len(dead) != 1 || string(dead[0].Value) != "not avro" || !strings.Contains(dead[0].Reason, "Confluent wire format") {
		t.Fatalf("dead letters %+v", dead)
	}
}
