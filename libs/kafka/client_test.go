package kafka_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

// TestNewProducerHasNoDefaultTopic: a record without a topic fails. Before,
// the producer defaulted to raw, so an egress record missing its topic
// would have been taken in as a new message and processed again.
func TestNewProducerHasNoDefaultTopic(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	raw := env.Kafka.Topic(kafka.TopicRaw)
	admin, err := kafka.NewAdmin(env.Kafka, log)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, raw); err != nil {
		t.Fatal(err)
	}
	prod, err := kafka.NewProducer(env.Kafka, log)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	tests := []struct {
		name  string
		topic string
		fails bool
	}{
		{"no topic", "", true},
		{"raw named", raw, false},
	}
	for _, tt := range tests {
		err := prod.ProduceSync(ctx, &kgo.Record{Topic: tt.topic, Value: []byte(tt.name)}).FirstErr()
		if (err != nil) != tt.fails {
			t.Errorf("%s: produce error %v, want failure %v", tt.name, err, tt.fails)
		}
	}
	// Only the record that named raw is there.
	rd, err := kafka.NewReader(env.Kafka, log, raw, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for len(got) < 1 && ctx.Err() == nil {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	short, stop := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	rd.PollFetches(short).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	if len(got) != 1 || got[0] != "raw named" {
		t.Errorf("raw holds %q, want only the record that named it", got)
	}
}
