package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// pdfMessage returns an ORU^R01 of about size bytes whose OBX-5 carries a
// base64 "PDF" (random bytes, so it compresses as poorly as a real one).
func pdfMessage(t *testing.T, ctl string, size int) []byte {
	t.Helper()
	head := fmt.Sprintf("MSH|^~\\&|LIS|GENHOSP|HIS|GENHOSP|20261201101500||ORU^R01^ORU_R01|%s|P|2.5.1\r"+
		"PID|1||P900^^^GENHOSP^MR||DOE^JANE||19800101|F\rOBR|1||L900|11502-2^Laboratory report^LN\r"+
		"OBX|1|ED|11502-2^Laboratory report^LN||^AP^PDF^Base64^", ctl)
	tail := "||||||F\r"
	raw := make([]byte, (size-len(head)-len(tail))*3/4)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		t.Fatal(err)
	}
	copy(raw, "%PDF-1.7\n")
	return []byte(head + base64.StdEncoding.EncodeToString(raw) + tail)
}

// sendExpect sends msg and fails unless the answer is code.
func sendExpectCode(t *testing.T, ctx context.Context, addr string, msg []byte, code string) {
	t.Helper()
	c := mllp.NewClient(addr, mllp.WithAckTimeout(60*time.Second))
	defer c.Close()
	reply, err := c.Send(ctx, msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil || ack.Code != code {
		t.Fatalf("answer %+v (%v), want %s: %q", ack, err, code, reply)
	}
}

// waitFor waits until recv holds a message equal to each of want (byte for
// byte) and returns how long that took.
func waitFor(t *testing.T, recv *receiver, within time.Duration, want ...[]byte) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		missing := 0
		got := recv.messages()
		for _, w := range want {
			found := false
			for _, g := range got {
				if bytes.Equal(g, w) {
					found = true
					break
				}
			}
			if !found {
				missing++
			}
		}
		if missing == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%d of %d messages not delivered (byte for byte) within %v; receiver has %d", missing, len(want), within, len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHardeningSizesLargeMessages runs the standalone binary with the
// default size policy (16 MiB messages, records of 17 MiB on the embedded
// broker): a 15 MiB message with a PDF in OBX-5 is accepted (AA, not AE)
// and delivered byte for byte, and a 700 KB message followed by a small
// one no longer stalls the pipeline (D1, D2).
func TestHardeningSizesLargeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and moves 16 MB through it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	recv := startReceiver(t)
	ingressAddr, kafkaAddr, registryAddr, httpAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
http: {address: "%s"}
kafka: {partitions: 3}
standalone: {data_dir: "%s", kafka_address: "%s", registry_address: "%s"}
admin: {address: "127.0.0.1:0"}
interfaces:
  - {name: lab-in, protocol: mllp, address: "%s"}
destinations:
  - {name: his, protocol: mllp, address: "%s", ack_timeout: 60s, retry: {initial_backoff: 50ms, max_backoff: 1s}}
routes:
  - {name: all, destinations: [his]}
`, httpAddr, t.TempDir(), kafkaAddr, registryAddr, ingressAddr, recv.addr))
	p := startProcess(t, "standalone", "standalone", "--config", cfg)
	waitListening(t, ingressAddr, 60*time.Second)

	// D1 probe: the large one first, then a small one.
	mid := pdfMessage(t, "MID700K", 700_000)
	small := []byte(message("ADT", 901, 1))
	sendExpectCode(t, ctx, ingressAddr, mid, hl7v2.AckAccept)
	sendExpectCode(t, ctx, ingressAddr, small, hl7v2.AckAccept)
	took := waitFor(t, recv, 60*time.Second, mid, small)
	t.Logf("700 KB message and the small one after it delivered in %v", took)

	big := pdfMessage(t, "BIG15M", 15<<20)
	start := time.Now()
	sendExpectCode(t, ctx, ingressAddr, big, hl7v2.AckAccept)
	t.Logf("15 MiB message (%d bytes) answered AA in %v", len(big), time.Since(start))
	after := []byte(message("ADT", 902, 1))
	sendExpectCode(t, ctx, ingressAddr, after, hl7v2.AckAccept)
	took = waitFor(t, recv, 120*time.Second, big, after)
	t.Logf("15 MiB message delivered byte for byte %v after its AA", took)

	// The stages made progress all along: ready, nothing stalled.
	body := get(t, "http://"+httpAddr+"/metrics")
	for _, st := range []string{"parse", "transform", "route"} {
		if !strings.Contains(body, fmt.Sprintf(`hl7bus_stage_stalled{stage="%s"} 0`, st)) {
			t.Errorf("stage %s: no hl7bus_stage_stalled 0 in /metrics", st)
		}
	}
	if r := get(t, "http://"+httpAddr+"/readyz"); !strings.HasPrefix(r, "ready") {
		t.Errorf("/readyz: %q", r)
	}
	p.stop(t)
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHardeningSizesNoStall: a record whose stage output exceeds the
// record limit must not stall the pipeline (D1; the probe's 10,000-OBX
// case). With a 1 MiB record limit, the 330 KB message fits raw, but
// parse's output (the message plus a validation report of 10,000 issues)
// does not: it is dead-lettered with a reason naming the size and the
// limit (and no content), and the small message sent after it is
// delivered. Once the validation report is bounded, the parsed record fits
// and the message is delivered instead; either way nothing stalls.
func TestHardeningSizesNoStall(t *testing.T) {
	env := kafkatest.New(t)
	env.Kafka.MaxRecordBytes = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	recv := startReceiver(t)
	in := startPipeline(t, ctx, env, pipeline{Interface: "lab-in",
		Rules: []route.Rule{{Name: "all", Destinations: []string{"his"}}},
		Destinations: []egress.Destination{{Name: "his", Protocol: "mllp", Address: recv.addr,
			Retry: egress.Retry{InitialBackoff: 50 * time.Millisecond}}}})

	var b strings.Builder
	b.WriteString("MSH|^~\\&|LIS|GENHOSP|HIS|GENHOSP|20261201101500||ORU^R01^ORU_R01|OBX10K|P|2.5.1\r" +
		"PID|1||P904^^^GENHOSP^MR||DOE^JANE||19800101|F\rOBR|1||L904|GLU^Glucose\r")
	for i := 1; i <= 10000; i++ {
		// OBX-11 "Q" is not in table 0085: one validation issue per OBX.
		fmt.Fprintf(&b, "OBX|%d|NM|GLU^Glucose||%d|mg/dL|||||Q\r", i, i%200)
	}
	mid := []byte(b.String())
	small := []byte(message("ADT", 903, 1))
	sendExpectCode(t, ctx, in.Addr("lab-in"), mid, hl7v2.AckAccept)
	sendExpectCode(t, ctx, in.Addr("lab-in"), small, hl7v2.AckAccept)
	waitFor(t, recv, 60*time.Second, small)

	// The large message was delivered too, or dead-lettered by the stage
	// whose output could not hold it.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range recv.messages() {
			if bytes.Equal(g, mid) {
				return
			}
		}
		for _, st := range []string{"parse", "transform", "route"} {
			for _, d := range deadLettersNow(t, ctx, env, env.Kafka.DLQTopic(st)) {
				if !strings.Contains(d.Reason, "record limit of 1048576 bytes") || strings.Contains(d.Reason, "JANE") {
					t.Fatalf("%s dead letter reason %q: want the size and the limit, no content", st, d.Reason)
				}
				t.Logf("%s dead-lettered the 10,000-OBX message: %s", st, d.Reason)
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the 10,000-OBX message was neither delivered nor dead-lettered")
}

// deadLettersNow returns the committed dead letters of topic that can be
// read within a second.
func deadLettersNow(t *testing.T, ctx context.Context, env *kafkatest.Env, topic string) []*canonical.DeadLetter {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pollCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var dead []*canonical.DeadLetter
	for pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			dead = append(dead, rec.(*canonical.DeadLetter))
		})
	}
	return dead
}
