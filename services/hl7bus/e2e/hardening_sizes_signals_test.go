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

// TestHardeningSIGHUPIsLogged (D14): SIGHUP used to end the process
// without a log line. It is logged as not supported yet, and the process
// goes on serving.
func TestHardeningSIGHUPIsLogged(t *testing.T) {
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
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const want = "SIGHUP received; configuration reload is not supported yet (restart to apply changes)"
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("the process ended on SIGHUP: %v", p.err)
		default:
		}
		if b, _ := os.ReadFile(p.log); strings.Contains(string(b), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q", want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg := []byte(message("ADT", 1, 1))
	sendExpectCode(t, ctx, ingressAddr, msg, hl7v2.AckAccept)
	waitFor(t, recv, 30*time.Second, msg)
	p.stop(t)
}
