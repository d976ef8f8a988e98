package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// TestRulesReloadWhileMessagesFlow (issue 10): a standalone exchange
// delivers a steady stream while its configuration file is rewritten
// twice. The first rewrite (a destination rule's value changes, a new
// inbound rule appears) is applied without a restart: every message sent
// after the log says so carries the new values, every one sent before the
// edit the old. The second rewrite has an expression that does not compile:
// it is refused with the key and column in the log, and the stream goes on
// under the rules in force. Nothing is lost or delivered twice.
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
	write(configText("LIS_V1", ""))
	p := startProcess(t, "standalone", "standalone", "--config", cfg)
	waitListening(t, ingressAddr, 60*time.Second)
	logCount := func(want string) int {
		b, _ := os.ReadFile(p.log)
		return strings.Count(string(b), want)
	}
	waitLog := func(want string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for logCount(want) < n {
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

	// One sender, one message at a time: each is stored (AA) before the
	// next goes, so "sent before / after" is well defined.
	const total = 150
	var sent atomic.Int32
	msgs := make([]string, total)
	for i := range msgs {
		msgs[i] = message("ADT", i%10, i)
	}
	errc := make(chan error, 1)
	go func() {
		for i, m := range msgs {
			if err := sendOneAA(ctx, ingressAddr, m); err != nil {
				errc <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			sent.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		errc <- nil
	}()
	waitSent := func(n int32) {
		t.Helper()
		for sent.Load() < n {
			select {
			case err := <-errc:
				t.Fatalf("sender stopped early: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	waitSent(30)
	beforeEdit := int(sent.Load())
	write(configText("LIS_V2", `
      - {name: mark, set: {path: EVN-5, value: RELOADED}}`))
	waitLog("configuration reloaded", 1)
	afterReload := int(sent.Load()) + 1 // the one in flight may be on either side

	waitSent(int32(afterReload + 40))
	write(strings.Replace(configText("LIS_V3", ""), "msg.type == 'ADT'", "msg.type == ", 1))
	waitLog("configuration refused", 1)
	afterRefusal := int(sent.Load()) + 1

	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Every message exactly once, each with the rules it was sent under.
	deadline := time.Now().Add(60 * time.Second)
	for len(recv.messages()) < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
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
	if len(got) != total {
		t.Fatalf("%d distinct messages delivered, want %d", len(got), total)
	}
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
		case i >= afterReload:
			// The refused third version must not have been applied.
			if recvApp != "LIS_V2" || mark != "RELOADED" {
				t.Errorf("message %d, sent after the reload (refusal at %d): MSH-5 %q EVN-5 %q, want LIS_V2 and RELOADED",
					i, afterRefusal, recvApp, mark)
			}
		}
	}
	b, _ := os.ReadFile(p.log)
	if !strings.Contains(string(b), "routes[0].when") {
		t.Errorf("the refusal does not name the key routes[0].when:\n%s", b)
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
