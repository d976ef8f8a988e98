package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

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

// TestEnsureCompactedTopics: the control and replay topics are created
// with one partition and cleanup.policy=compact, and a second call (the
// next start, or another replica) is no error.
func TestEnsureCompactedTopics(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kafka.NewAdmin(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := env.Kafka.Topic(kafka.TopicControl)
	for range 2 {
		if err := kafka.EnsureCompactedTopics(ctx, admin, env.Kafka, topic); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(admin)
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td[topic].Partitions); n != 1 {
		t.Errorf("%s has %d partitions, want 1", topic, n)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, kv := range rcs[0].Configs {
		if kv.Key == "cleanup.policy" {
			policy = kv.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Errorf("%s cleanup.policy = %q, want compact", topic, policy)
	}
}
