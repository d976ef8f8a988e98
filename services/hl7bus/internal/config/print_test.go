package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPrintShowsDefaults: config print of a minimal file shows the values
// in force, not zeros: the interface limits (max_frame_size folded into
// max_message_size), the destination's ACK timeout and retry policy, the
// derived record limit. The printed form loads back to the same
// configuration.
func TestPrintShowsDefaults(t *testing.T) {
	const minimal = `kafka: {brokers: ["127.0.0.1:9092"]}
registry: {url: "http://127.0.0.1:8081"}
interfaces:
  - {name: a, protocol: mllp, address: "127.0.0.1:2575"}
  - {name: b, protocol: mllp, address: "127.0.0.1:2577", max_frame_size: 4096}
destinations:
  - {name: lis, protocol: mllp, address: "127.0.0.1:2576"}
routes:
  - {name: all, destinations: [lis]}
`
	p := filepath.Join(t.TempDir(), "min.yaml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	out, err := f.Print()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"max_message_size: 16777216", "max_message_size: 4096", "max_connections: 1000", "idle_timeout: 10m0s", "read_timeout: 30s",
		"ack_timeout: 30s", "connections: 1", "max_attempts: 10", "max_retry_time: 1h0m0s", "initial_backoff: 500ms", "max_backoff: 1m0s",
		"max_record_bytes: 17825792", "topic_prefix: hl7bus.", "partitions: 6", "level: info", "address: 127.0.0.1:9464",
		"ordering: patient", "on_profile_error: accept", "fallback_charset: WINDOWS-1252",
		"record_timeout: 10s", "stall_after: 30s", "initial_backoff: 200ms", "max_backoff: 5s", "attempts: 3",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("print lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "max_frame_size") {
		t.Errorf("print shows the folded max_frame_size:\n%s", out)
	}
	again := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(again, out, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := Load(again)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, out)
	}
	if err := g.Validate(); err != nil {
		t.Fatalf("the printed configuration is invalid: %v", err)
	}
	out2, err := g.Print()
	if err != nil || string(out2) != string(out) {
		t.Errorf("printed twice differs (%v):\n%s\n---\n%s", err, out, out2)
	}
}

// TestValidateSeesTheFileAsWritten: the defaults must not hide a mistake
// from Validate (a negative cap becomes the default, two different sizes
// fold into one), while an interface changed after Load is validated as
// it is now.
func TestValidateSeesTheFileAsWritten(t *testing.T) {
	const body = `kafka: {brokers: ["127.0.0.1:9092"]}
registry: {url: "http://127.0.0.1:8081"}
interfaces:
  - {name: a, protocol: mllp, address: "127.0.0.1:2575", max_connections: -1, max_frame_size: 4096, max_message_size: 8192}
`
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Interfaces[0].MaxConnections != 1000 {
		t.Errorf("defaults not applied: %+v", f.Interfaces[0])
	}
	err = f.Validate()
	for _, want := range []string{"interfaces[0].max_connections", "interfaces[0].max_frame_size"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %s", err, want)
		}
	}
	f.Interfaces[0].Protocol = "http"
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "interfaces[0].protocol") || strings.Contains(err.Error(), "max_connections") {
		t.Errorf("after a change, Validate: %v; want the protocol named and the changed interface validated as it is", err)
	}
}

// TestPrintRules: a rule prints only the operation it has, and the
// printed rules load back to the same ones.
func TestPrintRules(t *testing.T) {
	f, err := Load("testdata/rules.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.Print()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "null") {
		t.Errorf("printed rules show the operations they do not have:\n%s", out)
	}
	p := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := Load(p)
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back.Interfaces[0].Rules, f.Interfaces[0].Rules) || !reflect.DeepEqual(back.Destinations[0].Rules, f.Destinations[0].Rules) ||
		!reflect.DeepEqual(back.Tables, f.Tables) {
		t.Errorf("printed rules load back different:\n%s", out)
	}
}
