package e2e

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// TestHardeningSIGHUPReloads (D14, issue 10): SIGHUP used to end the
// process without a log line; now it reloads the configuration (unchanged
// here, and the log says so), and so does a change of the file (the
// watcher's "configuration reloaded"). The process goes on serving
// through both.
func TestHardeningSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	recv := startReceiver(t)
	setup := standaloneConfig(t, t.TempDir(), 1, recv.addr)
	cfg, ingressAddr := setup.cfg, setup.ingressAddr
	p := startProcess(t, "standalone", "standalone", "--config", cfg)
	waitListening(t, ingressAddr, 60*time.Second)
	waitLogLine := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			select {
			case <-p.done:
				t.Fatalf("the process ended: %v", p.err)
			default:
			}
			if b, _ := os.ReadFile(p.log); strings.Contains(string(b), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line %q", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogLine("configuration unchanged")
	// Any edit is a new configuration version; the watcher applies it.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, "# edited\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLogLine("configuration reloaded")
	msg := []byte(message("ADT", 1, 1))
	sendExpectCode(t, ctx, ingressAddr, msg, hl7v2.AckAccept)
	waitFor(t, recv, 30*time.Second, msg)
	p.stop(t)
}
