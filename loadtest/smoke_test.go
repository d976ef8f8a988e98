package loadtest_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/loadtest/internal/load"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSmoke runs the smoke scenario (300 msg/s for 10 s over 4 connections)
// against hl7bus standalone and asserts what must hold on any machine: no
// loss, no per-patient order violation, every message ACKed. Timings are
// for docs/benchmarks.md, not for a test.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hl7bus standalone under load for 10 s")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hl7bus")
	if out, err := exec.Command("go", "build", "-o", bin, "../services/hl7bus").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ingress, receiver := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "hl7bus.yaml")
	body := "log: {level: warn, format: text}\nhttp: {address: \"127.0.0.1:0\"}\n" +
		"standalone: {data_dir: \"" + filepath.Join(dir, "data") + "\", kafka_address: \"" + freeAddr(t) + "\", registry_address: \"" + freeAddr(t) + "\"}\n" +
		"admin: {address: \"127.0.0.1:0\"}\n" +
		"interfaces: [{name: in, protocol: mllp, address: \"" + ingress + "\"}]\n" +
		"destinations: [{name: lis, protocol: mllp, address: \"" + receiver + "\", retry: {initial_backoff: 50ms}}]\n" +
		"routes: [{name: all, destinations: [lis]}]\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "standalone", "--config", cfg)
	logf, _ := os.Create(filepath.Join(dir, "hl7bus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", ingress); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	corpus, err := load.LoadCorpus("corpus")
	if err != nil {
		t.Fatal(err)
	}
	r, err := load.Run(context.Background(), load.Config{Name: "smoke", Target: ingress, Receiver: receiver, Rate: 300,
		Connections: 4, Duration: 10 * time.Second, Patients: 100, Drain: 60 * time.Second, Corpus: corpus})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d acked %d delivered %d lost %d duplicates %d order violations %d; ACK p99 %.1f ms, end-to-end p99 %.1f ms",
		r.Sent, r.Acked, r.Delivered, r.Lost, r.Duplicates, r.OrderViolations, r.AckLatency.P99, r.E2ELatency.P99)
	if r.Sent < 2000 || r.Acked != r.Sent || r.Lost != 0 || r.OrderViolations != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "hl7bus.log"))
		t.Fatalf("smoke run failed: %+v\nhl7bus log:\n%s", r, b)
	}
}
