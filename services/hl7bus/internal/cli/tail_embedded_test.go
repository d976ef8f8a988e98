package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTailEmbeddedDefault: hl7bus tail, given the standalone's own
// configuration file and nothing else, reads a topic of the locked-down
// embedded broker with the credentials from the data directory; --data-dir
// points it at another data directory as it does for standalone.
func TestTailEmbeddedDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	kafkaAddr, registryAddr := freePort(t), freePort(t)
	body := fmt.Sprintf("kafka: {partitions: 2}\nstandalone: {data_dir: %q, kafka_address: %q, registry_address: %q}\n", data, kafkaAddr, registryAddr)
	cfg := filepath.Join(dir, "hl7bus.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.ForStandalone()
	emb, err := standalone.StartEmbedded(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()

	// Write one raw record as ingress would, with the standalone's clients.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := f.Registry.Client()
	if err != nil {
		t.Fatal(err)
	}
	serde := canonical.NewSerde(reg)
	topic := f.Kafka.Topic(kafka.TopicRaw)
	if _, err := serde.Register(ctx, topic, schemas.Raw); err != nil {
		t.Fatal(err)
	}
	cl, err := kafka.NewAdmin(f.Kafka, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, cl, f.Kafka, topic); err != nil {
		t.Fatal(err)
	}
	v, err := serde.Encode(&canonical.Raw{MessageID: "EMB1", Interface: "in", ReceivedAt: time.Now(), Protocol: "mllp",
		Peer: "p", OrderingKey: "k", Payload: []byte("MSH|^~\\&|A\r")})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
	}{
		{"the standalone's file, no extra flags", []string{"tail", "--config", cfg, "--from-beginning", "--max", "1", "raw"}},
		{"--data-dir overrides standalone.data_dir", []string{"tail", "--config", cfg, "--set", "standalone.data_dir=" + filepath.Join(dir, "elsewhere"),
			"--data-dir", data, "--from-beginning", "--max", "1", "raw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errb := runWithin(t, 20*time.Second, tt.args...)
			if code != 0 {
				t.Fatalf("code %d: %s", code, errb)
			}
			var rec struct {
				Value struct {
					MessageID string `json:"message_id"`
				}
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rec); err != nil || rec.Value.MessageID != "EMB1" {
				t.Fatalf("tail printed %q (%v); stderr %s", out, err, errb)
			}
		})
	}

	// A data directory the standalone never started on has no
	// credentials: tail says where it looked, at once.
	code, _, errb := runWithin(t, 20*time.Second, "tail", "--config", cfg, "--data-dir", filepath.Join(dir, "never-started"), "--max", "1", "raw")
	if code == 0 || !strings.Contains(errb, filepath.Join(dir, "never-started", "secrets")) {
		t.Errorf("tail on a data directory without credentials: code %d, %s", code, errb)
	}
}

// runWithin runs a command in-process and fails the test if it has not
// finished within d (a tail that cannot authenticate would wait forever).
func runWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errb := run(t, "", args...)
		done <- result{code, out, errb}
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(d):
		t.Fatalf("%v did not finish within %v", args, d)
		return 0, "", ""
	}
}

// TestStandaloneRefusesNonLoopback: an embedded broker or registry address
// off loopback is a configuration error naming the key, before anything
// starts.
func TestStandaloneRefusesNonLoopback(t *testing.T) {
	tests := []struct{ name, kafka, registry, key string }{
		{"registry on every interface", "127.0.0.1:0", "0.0.0.0:0", "standalone.registry_address"},
		{"broker on a LAN address", "192.168.1.10:9092", "127.0.0.1:0", "standalone.kafka_address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "hl7bus.yaml")
			body := fmt.Sprintf("http: {address: \"off\"}\nstandalone: {data_dir: %q, kafka_address: %q, registry_address: %q}\n",
				filepath.Join(dir, "data"), tt.kafka, tt.registry)
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errb := runWithin(t, 20*time.Second, "standalone", "--config", cfg)
			if code != ExitUsage || !strings.Contains(errb, tt.key) || !strings.Contains(errb, "loopback") {
				t.Errorf("code %d, stderr %s; want %d and an error naming %s", code, errb, ExitUsage, tt.key)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Errorf("the data directory was created for a refused configuration")
			}
			// hl7bus config validate says the same of the standalone file.
			code, _, errb = run(t, "", "config", "validate", cfg)
			if code != ExitInvalid || !strings.Contains(errb, tt.key) {
				t.Errorf("config validate: code %d, %s; want an error naming %s", code, errb, tt.key)
			}
		})
	}
}
