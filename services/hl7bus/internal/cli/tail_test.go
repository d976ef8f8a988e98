package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestTail(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	topic := env.Kafka.Topic(kafka.TopicRaw)
	if _, err := env.Serde.Register(ctx, topic, schemas.Raw); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, env.Kafka, topic); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		v, err := env.Serde.Encode(&canonical.Raw{MessageID: fmt.Sprintf("ID%d", i), Interface: "in", ReceivedAt: time.Now(),
			Protocol: "mllp", Peer: "p", OrderingKey: "k", Payload: []byte("MSH|^~\\&|A\rPID|1\r")})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	body := fmt.Sprintf("kafka: {brokers: [%s], topic_prefix: %q}\nregistry: {url: %s}\n", env.Kafka.Brokers[0], env.Kafka.TopicPrefix, env.RegistryURL)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errb := run(t, "", "tail", "--config", cfg, "--from-beginning", "--max", "3", "raw")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errb)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	var rec struct {
		Topic string
		Value struct {
			MessageID   string `json:"message_id"`
			Payload     string
			TLSIdentity any `json:"tls_identity"`
		}
	}
	if err := json.Unmarshal([]byte(lines[2]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Topic != topic || rec.Value.MessageID != "ID2" || rec.Value.Payload != "MSH|^~\\&|A\nPID|1\n" || rec.Value.TLSIdentity != nil {
		t.Errorf("record %+v", rec)
	}
}
