//go:build interop

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// TestHAPIRoundTrip: HAPI HL7v2 sends every corpus message HAPI can parse
// to ingress and parses each ACK; egress delivers to a HAPI receiver. Every
// ACK must parse in HAPI with MSA-2 = the message's MSH-10, and every
// delivered message must be what HAPI sent.
func TestHAPIRoundTrip(t *testing.T) {
	cp := os.Getenv("HL7BUS_TEST_HAPI_CP")
	if cp == "" {
		t.Fatal("HL7BUS_TEST_HAPI_CP must be the HAPI peer's classpath (scripts/interop.sh sets it)")
	}
	corpus := filepath.Join("..", "..", "..", "..", "shared", "corpus")
	files, _ := filepath.Glob(filepath.Join(corpus, "fhir-converter", "hl7v2", "*.hl7"))
	for _, f := range []string{"sample_hl7.hl7", "rep_sample_hl7.hl7", "sample_msh.hl7"} {
		files = append(files, filepath.Join(corpus, "python-hl7", f))
	}
	if len(files) < 100 {
		t.Skipf("the shared corpus is not at %s", corpus)
	}
	// A message whose MSH-15 asks for no accept ACK gets none: HAPI would
	// wait for one, so such messages are left out (and counted).
	var send []string
	noAck := 0
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if m, err := hl7v2.Parse(data); err == nil {
			if p := hl7v2.PlanAck(m); p.Enhanced && !p.WantAccept(true) {
				noAck++
				continue
			}
		}
		// Absolute: the peer runs in its own working directory.
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		send = append(send, abs)
	}

	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()

	// The HAPI receiver, egress's destination.
	recvDir, sentDir := t.TempDir(), t.TempDir()
	recvAddr := freeAddr(t)
	_, port, _ := strings.Cut(recvAddr, ":")
	receiver := exec.Command("java", "-cp", cp, "org.hl7bus.interop.HapiPeer", "receive", port, recvDir)
	receiver.Stderr = os.Stderr
	// HAPI's default message-ID generator keeps its counter in ./id_file;
	// a temp working directory keeps it out of the source tree.
	receiver.Dir = t.TempDir()
	if err := receiver.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = receiver.Process.Kill(); _ = receiver.Wait() }()
	waitListening(t, recvAddr, 60*time.Second)

	in := startPipeline(t, ctx, env, pipeline{Interface: "hapi-in",
		Rules: []route.Rule{{Name: "all", Destinations: []string{"hapi"}}},
		Destinations: []egress.Destination{{Name: "hapi", Protocol: "mllp", Address: recvAddr,
			Retry: egress.Retry{InitialBackoff: 50 * time.Millisecond}}}})

	// The HAPI sender.
	sender := exec.CommandContext(ctx, "java", append([]string{"-cp", cp, "org.hl7bus.interop.HapiPeer", "send", in.Addr("hapi-in"), sentDir}, send...)...)
	sender.Dir = t.TempDir()
	out, err := sender.Output()
	if err != nil {
		t.Fatalf("HAPI sender: %v\n%s", err, out)
	}
	var sent, skipped, rejected int
	var accepted []string // files of messages hl7bus accepted, as HAPI encoded them
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r map[string]string
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("sender output %q: %v", sc.Text(), err)
		}
		if r["skipped"] != "" {
			skipped++
			continue
		}
		sent++
		if r["msa_2"] != r["control_id"] || r["ack_type"] != "ACK" {
			t.Errorf("%s: the ACK does not answer the message: %s", filepath.Base(r["file"]), sc.Text())
		}
		// What HAPI sent is accepted exactly when our parser reads it; HAPI
		// re-encodes segments it cannot place with an invalid ID (CON_),
		// which hl7bus rejects (docs/conformance.md).
		body, _ := os.ReadFile(r["sent"])
		_, perr := hl7v2.Parse(body)
		switch {
		case perr == nil && (r["ack_code"] == "AA" || r["ack_code"] == "CA"):
			accepted = append(accepted, r["sent"])
		case perr != nil && r["ack_code"] == "AR":
			rejected++
		default:
			t.Errorf("%s: ACK %s, parse error %v", filepath.Base(r["file"]), r["ack_code"], perr)
		}
	}
	t.Logf("HAPI sent %d messages: %d accepted, %d rejected with AR; left out %d HAPI cannot parse and %d that ask for no ACK; every ACK parsed in HAPI with MSA-2 = MSH-10",
		sent, len(accepted), rejected, skipped, noAck)

	// Every accepted message arrives at the HAPI receiver unchanged.
	deadline := time.Now().Add(120 * time.Second)
	for {
		got, _ := filepath.Glob(filepath.Join(recvDir, "*.hl7"))
		if len(got) >= len(accepted) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	same := 0
	for _, w := range accepted {
		sentBytes, _ := os.ReadFile(w)
		gotBytes, err := os.ReadFile(filepath.Join(recvDir, filepath.Base(w)))
		if err != nil {
			t.Errorf("%s never arrived at the HAPI receiver", filepath.Base(w))
			continue
		}
		if strings.TrimRight(string(gotBytes), "\r") != strings.TrimRight(string(sentBytes), "\r") {
			t.Errorf("%s arrived changed:\n sent %q\n  got %q", filepath.Base(w), sentBytes, gotBytes)
			continue
		}
		same++
	}
	t.Logf("%d of %d accepted messages arrived at the HAPI receiver exactly as HAPI sent them", same, len(accepted))
	if same == 0 {
		t.Fatal("nothing compared")
	}
}
