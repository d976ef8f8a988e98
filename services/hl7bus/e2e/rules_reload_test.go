package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// TestRulesReloadWhileMessagesFlow (issue 10): a standalone exchange
// delivers a stream while its configuration file is rewritten twice. The
// first rewrite (a destination rule's value changes, a new inbound rule
// appears) is applied without a restart: every message sent after the log
// says so carries the new values, every one sent before the edit the old,
// and the config_version the log reports is the new file's. The second
// rewrite has an expression that does not compile: it is refused with the
// key and column in the log, the version in force stays, and the stream
// goes on under the rules in force. Nothing is lost or delivered twice.
//
// Before each rewrite the sender stops and the test waits until the
// receiver has every message sent so far: a message still in the
// pipeline when the swap lands could be transformed under one version and
// routed under the other (each stage swaps on its own), which is allowed
// but would make "sent before the edit" say nothing about its rules.
func TestRulesReloadWhileMessagesFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	recv := startReceiver(t)
	dir := t.TempDir()
	ingressAddr, kafkaAddr, registryAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	configText := func(receiving, extraInbound string) string {
		return fmt.Sprintf(`log: {level: info, format: text}
http: {address: "127.0.0.1:0"}
kafka: {partitions: 2}
standalone: {data_dir: "%s/data", kafka_address: "%s", registry_address: "%s"}
admin: {address: "127.0.0.1:0"}
interfaces:
  - name: adt-in
    protocol: mllp
    address: "%s"
    rules:
      - {name: hub, set: {path: MSH-6, value: NATHUB}}%s
destinations:
  - name: lis
    protocol: mllp
    address: "%s"
    retry: {initial_backoff: 50ms, max_backoff: 1s}
    rules:
      - {name: lis-receiver, set: {path: MSH-5, value: %s}}
routes:
  - {name: adt, when: "msg.type == 'ADT'", destinations: [lis]}
`, dir, kafkaAddr, registryAddr, ingressAddr, extraInbound, recv.addr, receiving)
	}
	cfg := dir + "/hl7bus.yaml"
	write := func(body string) {
		t.Helper()
		// Write then rename, as editors and Kubernetes do, so the watcher
		// never reads a half-written file.
		if err := os.WriteFile(cfg+".tmp", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg+".tmp", cfg); err != nil {
			t.Fatal(err)
		}
	}
	// The file has no tables, so its version is the first 12 hex digits
	// of the SHA-256 of its bytes alone.
	version := func(body string) string {
		sum := sha256.Sum256([]byte(body))
		return hex.EncodeToString(sum[:])[:12]
	}
	v1 := configText("LIS_V1", "")
	v2 := configText("LIS_V2", `
      - {name: mark, set: {path: EVN-5, value: RELOADED}}`)
	v3 := strings.Replace(configText("LIS_V3", ""), "msg.type == 'ADT'", "msg.type == ", 1)
	write(v1)
	p := startProcess(t, "standalone", "standalone", "--config", cfg)
	waitListening(t, ingressAddr, 60*time.Second)
	readLog := func() string {
		b, _ := os.ReadFile(p.log)
		return string(b)
	}
	waitLog := func(want string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(readLog(), want) < n {
			select {
			case <-p.done:
				t.Fatalf("the process ended: %v", p.err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line %q after 20s", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// versionsLogged returns the config_version of every log line with
	// message msg, in order.
	versionsLogged := func(msg string) []string {
		re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `[^"]*".*\bconfig_version=([0-9a-f]*)`)
		var out []string
		for _, m := range re.FindAllStringSubmatch(readLog(), -1) {
			out = append(out, m[1])
		}
		return out
	}

	// One message at a time: each is stored (AA) before the next goes, so
	// "sent before / after" is well defined.
	const total = 150
	msgs := make([]string, total)
	for i := range msgs {
		msgs[i] = message("ADT", i%10, i)
	}
	sendRange := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := sendOneAA(ctx, ingressAddr, msgs[i]); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// delivered returns the distinct messages the receiver has, by
	// control ID, and fails on one delivered twice.
	delivered := func() map[string]*hl7v2.Message {
		t.Helper()
		got := map[string]*hl7v2.Message{}
		for _, b := range recv.messages() {
			m, err := hl7v2.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := got[m.ControlID()]; dup {
				t.Errorf("%s delivered twice", m.ControlID())
			}
			got[m.ControlID()] = m
		}
		return got
	}
	// waitDelivered waits until the receiver has the first n messages,
	// so none of them is still in the pipeline.
	waitDelivered := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for len(recv.messages()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d messages delivered after 60s, want %d", len(recv.messages()), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := len(delivered()); got != n {
			t.Fatalf("%d distinct messages delivered, want %d", got, n)
		}
	}

	const beforeEdit, beforeRefusal = 30, 80
	sendRange(0, beforeEdit)
	waitDelivered(beforeEdit)
	write(v2)
	waitLog("configuration reloaded", 1)

	sendRange(beforeEdit, beforeRefusal)
	waitDelivered(beforeRefusal)
	write(v3)
	waitLog("configuration refused", 1)

	sendRange(beforeRefusal, total)
	waitDelivered(total)

	// The applied reload changed the version to the new file's; the
	// refused one kept it (the refusal logs the version in force).
	if got := versionsLogged("configuration reloaded"); len(got) != 1 || got[0] != version(v2) || got[0] == version(v1) {
		t.Errorf("configuration reloaded with config_version %q, want once, %s (the first file's was %s)", got, version(v2), version(v1))
	}
	if got := versionsLogged("configuration refused"); len(got) != 1 || got[0] != version(v2) {
		t.Errorf("configuration refused with config_version %q in force, want once, %s", got, version(v2))
	}

	// Every message exactly once, each with the rules it was sent under.
	got := delivered()
	for i, text := range msgs {
		sentMsg, _ := hl7v2.Parse([]byte(text))
		m := got[sentMsg.ControlID()]
		if m == nil {
			t.Fatalf("message %d (%s) not delivered", i, sentMsg.ControlID())
		}
		if v := m.Header(6); v != "NATHUB" {
			t.Errorf("message %d: MSH-6 %q, want NATHUB (an inbound rule in force throughout)", i, v)
		}
		recvApp, _ := m.Get("MSH-5")
		mark, _ := m.Get("EVN-5")
		switch {
		case i < beforeEdit:
			if recvApp != "LIS_V1" || mark != "" {
				t.Errorf("message %d, sent before the edit: MSH-5 %q EVN-5 %q, want LIS_V1 and none", i, recvApp, mark)
			}
		default:
			// The refused third version must not have been applied.
			if recvApp != "LIS_V2" || mark != "RELOADED" {
				t.Errorf("message %d, sent after the reload (refusal at %d): MSH-5 %q EVN-5 %q, want LIS_V2 and RELOADED",
					i, beforeRefusal, recvApp, mark)
			}
		}
	}
	if log := readLog(); !strings.Contains(log, "routes[0].when: column") {
		t.Errorf("the refusal does not name the key routes[0].when and the column:\n%s", log)
	}
	p.stop(t)
}

// sendOneAA sends msg on a fresh connection and wants AA.
func sendOneAA(ctx context.Context, addr, msg string) error {
	reply, err := sendOne(ctx, addr, []byte(msg), 30*time.Second)
	if err != nil {
		return err
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		return err
	}
	if ack.Code != hl7v2.AckAccept {
		return fmt.Errorf("answer %s", ack.Code)
	}
	return nil
}
