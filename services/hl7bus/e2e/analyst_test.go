//go:build interop

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// corpusFrames returns every sample message the project and the shared
// corpus hold (the library's testdata, latin1 and cp1252 among them;
// python-hl7's samples and batches; the FHIR converter's v2 messages), by
// file name. The shared corpus is read by path and left out when absent.
func corpusFrames(t *testing.T) map[string][]byte {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		filepath.Join("..", "..", "..", "libs", "hl7v2", "testdata", "*.hl7"),
		filepath.Join("..", "..", "..", "..", "shared", "corpus", "*", "*.hl7"),
		filepath.Join("..", "..", "..", "..", "shared", "corpus", "*", "hl7v2", "*"),
	} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// TestAnalystConsumer has an outside party's client, Python confluent-kafka
// with AvroDeserializer (interop/analyst/consume.py), read every record of
// raw, parsed, transformed, dlq.parse, out.lis and delivery through the
// schema registry, for
// every message of the shared corpus (latin1 and cp1252 included: every
// string field must be UTF-8 for fastavro to decode it). It is built only
// with -tags interop (make test-interop), which also provides the Python,
// so it is never silently skipped.
func TestAnalystConsumer(t *testing.T) {
	python := os.Getenv("HL7BUS_TEST_ANALYST")
	if python == "" {
		t.Fatal("HL7BUS_TEST_ANALYST must name a Python with confluent-kafka (scripts/interop.sh sets it)")
	}
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	// All five stages, so every topic an analyst may read has records: a
	// healthy receiver gets everything route sends to out.lis, and egress
	// writes a delivery record for each.
	recv := startReceiver(t)
	in := startPipeline(t, ctx, env, pipeline{Interface: "in",
		Rules:        []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: recv.addr}}})

	frames := corpusFrames(t)
	if len(frames) < 20 {
		t.Fatalf("only %d corpus files found", len(frames))
	}
	names := make([]string, 0, len(frames))
	for f := range frames {
		names = append(names, f)
	}
	sort.Strings(names)
	c := mllp.NewClient(in.Addr("in"), mllp.WithAckTimeout(time.Second))
	defer c.Close()
	for _, f := range names {
		// Acknowledgements in the corpus get no answer: a timeout is the
		// expected reply to those, and they are stored all the same.
		_, _ = c.Send(ctx, frames[f])
	}

	// Read what the pipeline made of them until every stage is done: raw
	// holds every frame, and parsed + dlq.parse and transformed stop
	// growing.
	topics := []string{env.Kafka.Topic("raw"), env.Kafka.Topic("parsed"), env.Kafka.Topic("transformed"), env.Kafka.DLQTopic("parse"),
		env.Kafka.OutTopic("lis"), env.Kafka.Topic(kafka.TopicDelivery)}
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	counts := map[string]int{}
	// The consumer counts messages, not records: a message may have more
	// than one delivery record (one per attempt).
	distinct := map[string]map[string]bool{}
	stable := time.Now()
	for ctx.Err() == nil {
		pollCtx, pcancel := context.WithTimeout(ctx, time.Second)
		fetches := reader.PollFetches(pollCtx)
		pcancel()
		grew := false
		fetches.EachRecord(func(r *kgo.Record) {
			v, err := env.Serde.DecodeNative(ctx, r.Value)
			if err != nil {
				t.Fatalf("%s offset %d: %v", r.Topic, r.Offset, err)
			}
			if m, ok := v.(map[string]any); ok {
				if id, _ := m["message_id"].(string); id != "" {
					ids[id] = true
					if distinct[r.Topic] == nil {
						distinct[r.Topic] = map[string]bool{}
					}
					distinct[r.Topic][id] = true
				}
			}
			counts[r.Topic]++
			grew = true
		})
		if grew {
			stable = time.Now()
		}
		if counts[topics[0]] >= len(frames) && time.Since(stable) > 5*time.Second {
			break
		}
	}
	reader.Close()
	if counts[topics[0]] != len(frames) || counts[topics[1]] == 0 || counts[topics[2]] == 0 || counts[topics[4]] == 0 || counts[topics[5]] == 0 {
		t.Fatalf("records per topic %v for %d frames", counts, len(frames))
	}

	idList := make([]string, 0, len(ids))
	for id := range ids {
		idList = append(idList, id)
	}
	idFile := filepath.Join(t.TempDir(), "ids")
	if err := os.WriteFile(idFile, []byte(strings.Join(idList, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{filepath.Join("..", "..", "..", "interop", "analyst", "consume.py"),
		"--bootstrap", strings.Join(env.Kafka.Brokers, ","), "--registry", env.RegistryURL, "--ids", idFile}
	for _, tp := range topics {
		args = append(args, "--topic", fmt.Sprintf("%s=%d", tp, len(distinct[tp])))
	}
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	t.Logf("analyst's consumer: %s", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("the analyst's consumer failed: %v", err)
	}
}
