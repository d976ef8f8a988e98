package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
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
	ingressAddr, kafkaAddr, registryAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
http: {address: "127.0.0.1:0"}
kafka: {partitions: 3}
standalone: {data_dir: "%s", kafka_address: "%s", registry_address: "%s"}
interfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
destinations:
  - {name: lis, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms, max_backoff: 1s}}
routes:
  - {name: all, destinations: [lis]}
`, t.TempDir(), kafkaAddr, registryAddr, ingressAddr, recv.addr))
	start := func() *process {
		p := startProcess(t, "standalone", "standalone", "--config", cfg)
		waitListening(t, ingressAddr, 60*time.Second)
		return p
	}
	p := start()

	// Senders behave like real interfaces: a message is resent until it is
	// ACKed, then the next one is sent.
	const senders, patientsPer, perPatient = 4, 5, 10
	total := senders * patientsPer * perPatient
	var acked sync.Map // control ID -> message
	var nAcked atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mllp.NewClient(ingressAddr, mllp.WithAckTimeout(5*time.Second), mllp.WithBackoff(50*time.Millisecond, 500*time.Millisecond))
			defer c.Close()
			for n := 0; n < perPatient; n++ {
				for pt := s * patientsPer; pt < (s+1)*patientsPer; pt++ {
					msg := message([]string{"ADT", "ORU", "VXU"}[(pt+n)%3], pt, n)
					m, _ := hl7v2.Parse([]byte(msg))
					for ctx.Err() == nil {
						reply, err := c.Send(ctx, []byte(msg))
						if err != nil {
							continue // down: the client backs off, then resend
						}
						if ack, err := hl7v2.ParseACK(reply); err == nil && ack.Code == hl7v2.AckAccept {
							acked.Store(m.ControlID(), msg)
							nAcked.Add(1)
							break
						}
					}
				}
			}
		}()
	}
	// Kill the process once some messages are through, mid-flow.
	for nAcked.Load() < int64(total/3) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	t.Logf("killed after %d ACKed messages", nAcked.Load())
	p = start()
	wg.Wait()
	if nAcked.Load() != int64(total) {
		t.Fatalf("only %d of %d messages were ACKed", nAcked.Load(), total)
	}

	// Every ACKed message must arrive; count duplicates.
	deadline := time.Now().Add(120 * time.Second)
	var counts map[string]int
	for {
		counts = map[string]int{}
		for _, f := range recv.messages() {
			if m, err := hl7v2.Parse(f); err == nil {
				counts[m.ControlID()]++
			}
		}
		missing := 0
		acked.Range(func(k, _ any) bool {
			if counts[k.(string)] == 0 {
				missing++
			}
			return true
		})
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ACKed messages were never delivered", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dups := 0
	for _, c := range counts {
		dups += c - 1
	}
	t.Logf("all %d ACKed messages delivered; %d duplicates towards the receiver", total, dups)
	p.stop(t)
}
