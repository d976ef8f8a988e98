package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListTargets(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"--list-targets"}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"MODULE", "broker", "registry", "ingress", "egress"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--list-targets lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(stdout.String()), " "), "parse broker,registry raw parsed,dlq.parse") {
		t.Errorf("--list-targets does not show parse's dependencies and topics:\n%s", stdout.String())
	}
}

// TestStageCommands: every stage of the registry is a subcommand, and the
// embedded modules are not.
func TestStageCommands(t *testing.T) {
	var stdout bytes.Buffer
	Main([]string{"help"}, Env{Stdout: &stdout, Stderr: &stdout})
	for _, name := range []string{"ingress", "parse", "transform", "route", "egress", "standalone"} {
		if !strings.Contains(stdout.String(), "\n  "+name+" ") {
			t.Errorf("help lacks the %s command:\n%s", name, stdout.String())
		}
	}
	for _, name := range []string{"broker", "registry"} {
		var out, errb bytes.Buffer
		if code := Main([]string{name}, Env{Stdout: &out, Stderr: &errb}); code != ExitUsage || !strings.Contains(errb.String(), "unknown command") {
			t.Errorf("hl7bus %s: exit %d %s; want an unknown command", name, code, errb.String())
		}
	}
}

func standaloneFile(t *testing.T, kafkaAddr string) (path, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	path = filepath.Join(dir, "hl7bus.yaml")
	body := fmt.Sprintf(`standalone: {data_dir: %q, kafka_address: %q, registry_address: "127.0.0.1:18081"}
interfaces: [{name: a, protocol: mllp, address: "127.0.0.1:2575"}]
`, dataDir, kafkaAddr)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dataDir
}

func TestStandaloneUnknownTarget(t *testing.T) {
	cfg, _ := standaloneFile(t, "127.0.0.1:19092")
	var stdout, stderr bytes.Buffer
	code := Main([]string{"standalone", "--config", cfg, "--targets", "broker,nope"}, Env{Stdout: &stdout, Stderr: &stderr})
	if code != ExitUsage || !strings.Contains(stderr.String(), `unknown target "nope" (valid: broker, registry, ingress, parse, transform, route, egress`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestStageOnEmbeddedNeedsItsStandalone: a stage process given a
// standalone file uses the embedded broker's credentials; without them
// (no standalone has started on that data directory), or with a port it
// cannot know, it says so instead of failing later at the broker.
func TestStageOnEmbeddedNeedsItsStandalone(t *testing.T) {
	tests := []struct {
		name, kafkaAddr, want string
	}{
		{"no credentials yet", "127.0.0.1:19092", "no credentials of the embedded broker and registry"},
		{"port 0", "127.0.0.1:0", "standalone.kafka_address: \"127.0.0.1:0\": port 0 cannot be found from another process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := standaloneFile(t, tt.kafkaAddr)
			var stdout, stderr bytes.Buffer
			code := Main([]string{"parse", "--config", cfg, "--http-address", "off"}, Env{Stdout: &stdout, Stderr: &stderr})
			if code != ExitInvalid || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, stderr.String(), tt.want)
			}
		})
	}
}
