package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrintShowsDefaults: `hl7bus config print` of a minimal
// standalone file shows the values in force (the interface's 16 MiB
// message limit, the destination's retry policy), with secrets redacted.
func TestConfigPrintShowsDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "min.yaml")
	body := `kafka: {sasl: {mechanism: SCRAM-SHA-512, username: u, password: hunter2}}
interfaces: [{name: a, protocol: mllp, address: "127.0.0.1:2575"}]
destinations: [{name: lis, protocol: mllp, address: "127.0.0.1:2576"}]
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"config", "print", p}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"max_message_size: 16777216", "max_attempts: 10", "initial_backoff: 500ms", "max_backoff: 1m0s",
		"max_retry_time: 1h0m0s", "ack_timeout: 30s", "password: '********'"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "max_frame_size: 0") {
		t.Errorf("config print shows a secret or a folded max_frame_size:\n%s", out)
	}
}
