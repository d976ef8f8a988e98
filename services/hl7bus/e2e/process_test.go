package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hl7bus.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStagesAsProcesses runs the end-to-end scenario with each stage as its
// own process, against a broker and registry in the test process, as a
// Kubernetes deployment runs them against a Kafka cluster.
func TestStagesAsProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs five processes")
	}
	env := kafkatest.New(t)
	// srfake's test server listens on loopback; the processes reach it
	// through its URL.
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	recv := startReceiver(t)
	ingressAddr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
kafka:
  brokers: [%s]
  topic_prefix: "%s"
  partitions: 3
registry:
  url: %s
interfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
destinations:
  - {name: lis, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms}}
routes:
  - {name: all, destinations: [lis]}
`, strings.Join(env.Kafka.Brokers, ", "), env.Kafka.TopicPrefix, env.RegistryURL, ingressAddr, recv.addr))
	var procs []*process
	for _, stage := range []string{"ingress", "parse", "transform", "route", "egress"} {
		procs = append(procs, startProcess(t, stage, stage, "--config", cfg, "--instance", "p0", "--http-address", "127.0.0.1:0"))
	}
	waitListening(t, ingressAddr, 60*time.Second)

	sent := sendAll(t, ctx, ingressAddr, 8, 5, 6)
	sendMalformed(t, ctx, ingressAddr)
	checkDelivered(t, recv, sent, 120*time.Second)
	dead := deadLetters(t, ctx, env.Kafka.Brokers, env.Serde, env.Kafka.DLQTopic("parse"), 1)
	if len(dead) != 1 || dead[0].Stage != "parse" {
		t.Fatalf("dead letters: %+v", dead)
	}
	for _, p := range procs {
		p.stop(t)
	}
}

// TestStandaloneCrash kills the standalone process with SIGKILL while
// messages flow and restarts it on the same data directory: every message
// that was ACKed must be delivered. Duplicates towards the receiver (the
// price of at-least-once delivery to MLLP peers) are counted and reported.
func TestStandaloneCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	recv := startReceiver(t)
	setup := standaloneConfig(t, t.TempDir(), 3, recv.addr)
	cfg, ingressAddr := setup.cfg, setup.ingressAddr
	start := func() *process {
		p := startProcess(t, "standalone", "standalone", "--config", cfg)
		waitListening(t, ingressAddr, 60*time.Second)
		return p
	}
	p := start()

	// Senders behave like real interfaces: a message is resent until it is
	// ACKed, then the next one is sent.
	senders := startResenders(ctx, ingressAddr, 4, 5, 10, 5*time.Second)
	total := senders.total
	// Kill the process once some messages are through, mid-flow.
	senders.waitAcked(ctx, total/3)
	p.kill()
	t.Logf("killed after %d ACKed messages", senders.nAcked.Load())
	p = start()
	senders.finish(t)

	// Every ACKed message must arrive; count duplicates.
	dups := senders.waitDelivered(t, recv, 120*time.Second)
	t.Logf("all %d ACKed messages delivered; %d duplicates towards the receiver", total, dups)
	p.stop(t)
}
