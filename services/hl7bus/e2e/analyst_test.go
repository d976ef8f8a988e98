//go:build interop

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// TestAnalystConsumer has an outside party's client, Python confluent-kafka
// with AvroDeserializer (interop/analyst/consume.py), read every record of
// parsed and transformed through the schema registry. It is built only with
// -tags interop (make test-interop), which also provides the Python, so it
// is never silently skipped.
func TestAnalystConsumer(t *testing.T) {
	python := os.Getenv("HL7BUS_TEST_ANALYST")
	if python == "" {
		t.Fatal("HL7BUS_TEST_ANALYST must name a Python with confluent-kafka (scripts/interop.sh sets it)")
	}
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	in := startPipeline(t, ctx, env, pipeline{Interface: "in"})

	// Ingress answers with the message ID (its ULID) as the ACK's MSH-10.
	const n = 30
	var ids []string
	c := mllp.NewClient(in.Addr("in"))
	defer c.Close()
	for i := 0; i < n; i++ {
		reply, err := c.Send(ctx, []byte(message([]string{"ADT", "ORU", "VXU"}[i%3], i%7, i)))
		if err != nil {
			t.Fatal(err)
		}
		ack, err := hl7v2.Parse(reply)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.ControlID())
	}
	// Wait until both topics hold every record, committed.
	topics := []string{env.Kafka.Topic("parsed"), env.Kafka.Topic("transformed")}
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for (counts[topics[0]] < n || counts[topics[1]] < n) && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) { counts[r.Topic]++ })
	}
	reader.Close()

	idFile := filepath.Join(t.TempDir(), "ids")
	if err := os.WriteFile(idFile, []byte(strings.Join(ids, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("..", "..", "..", "interop", "analyst", "consume.py"),
		"--bootstrap", strings.Join(env.Kafka.Brokers, ","), "--registry", env.RegistryURL,
		"--expect", "30", "--ids", idFile}
	for _, tp := range topics {
		args = append(args, "--topic", tp)
	}
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	t.Logf("analyst's consumer: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("the analyst's consumer failed: %v", err)
	}
}
