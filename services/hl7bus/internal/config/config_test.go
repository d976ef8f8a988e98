package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestGood(t *testing.T) {
	f, err := Load("testdata/standalone.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.ForStandalone()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if f.Destinations[0].AckTimeout != 10*time.Second || f.Destinations[0].Retry.InitialBackoff != 500*time.Millisecond {
		t.Errorf("durations: %+v", f.Destinations[0])
	}
	if f.Kafka.Partitions != 6 || f.Standalone.DataDir != "hl7bus-data" || f.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("defaults: %+v %+v", f.Kafka, f.Standalone)
	}
	// The default interface max_message_size (16 MiB) + 1 MiB of envelope.
	if f.Kafka.MaxRecordBytes != 17<<20 {
		t.Errorf("kafka.max_record_bytes derived as %d, want %d", f.Kafka.MaxRecordBytes, 17<<20)
	}
}

// TestRecordLimitDerived: kafka.max_record_bytes is the largest
// interface limit + 1 MiB when unset, and a higher value is kept.
func TestRecordLimitDerived(t *testing.T) {
	for _, tc := range []struct {
		overrides []string
		want      int
	}{
		{nil, 5 << 20}, // adt-in's 4 MiB is the largest
		{[]string{"kafka.max_record_bytes=67108864"}, 64 << 20},
		{[]string{"env"}, 32 << 20},
	} {
		if len(tc.overrides) == 1 && tc.overrides[0] == "env" {
			t.Setenv("HL7BUS_KAFKA_MAX_RECORD_BYTES", "33554432")
			tc.overrides = nil
		}
		f, err := Load("testdata/sizes.good.yaml", tc.overrides...)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Validate(); err != nil {
			t.Fatalf("%v: %v", tc.overrides, err)
		}
		if f.Kafka.MaxRecordBytes != tc.want {
			t.Errorf("%v: kafka.max_record_bytes = %d, want %d", tc.overrides, f.Kafka.MaxRecordBytes, tc.want)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("HL7BUS_KAFKA_TOPIC_PREFIX", "test.")
	t.Setenv("HL7BUS_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("HL7BUS_LOG_LEVEL", "debug")
	t.Setenv("HL7BUS_STANDALONE_DATA_DIR", "/tmp/x")
	// Keys of the stages section: bound from the model's yaml tags.
	t.Setenv("HL7BUS_STAGES_RETRY_MAX_BACKOFF", "9s")
	t.Setenv("HL7BUS_STAGES_STALL_AFTER", "1m")
	f, err := Load("testdata/standalone.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Stages.Retry.Max != 9*time.Second || f.Stages.StallAfter != time.Minute {
		t.Errorf("stages overrides not applied: %+v", f.Stages)
	}
	if f.Kafka.TopicPrefix != "test." || len(f.Kafka.Brokers) != 2 || f.Log.Level != "debug" || f.Standalone.DataDir != "/tmp/x" {
		t.Errorf("overrides not applied: %+v %+v %+v", f.Kafka, f.Log, f.Standalone)
	}
}

func TestBad(t *testing.T) {
	tests := map[string][]string{
		"unknown-key.bad.yaml": {"adress"},
		"port-range.bad.yaml": {"interfaces[0].address: port 99999 is not between 0 and 65535",
			"destinations[0].address: port 65536 is not between 1 and 65535"},
		"port-name.bad.yaml": {`interfaces[0].address: port "hl7" is not a number`,
			`destinations[0].address: port "mllp" is not a number`, `http.address: port "metrics" is not a number`},
		"same-address.bad.yaml": {`interfaces[1].address: "localhost:2575" is also the address of interfaces[0] ("127.0.0.1:2575")`,
			`interfaces[3].address: "127.0.0.1:2577" is also the address of interfaces[2] ("0.0.0.0:2577")`},
		"loop.bad.yaml": {`destinations[0].address: "127.0.0.1:2575" is the listener of interfaces[0] ("0.0.0.0:2575")`,
			`destinations[1].address: "localhost:2580" is the listener of interfaces[1] ("127.0.0.1:2580")`},
		"parser.bad.yaml":        {"parser.fallback_charset: hl7v2: unsupported character set"},
		"stages.bad.yaml":        {"stages.retry.multiplier: 0.5 is below 1", "stages.record_timeout: must not be negative", "stages.retry.jitter: 2 is above 1"},
		"duration-unit.bad.yaml": {"destinations[0].retry.max_backoff", "duration needs a unit (e.g. 30s)"},
		"record-limit.bad.yaml": {"kafka.max_record_bytes: 1048576 bytes cannot hold the largest message interfaces accept",
			"interfaces[0].max_message_size", "at least 17825792"},
		"many.bad.yaml": {"log.level", "kafka.partitions", "interfaces[0].protocol", "interfaces[0].address",
			"interfaces[0].ordering", "interfaces[1].name", "destinations[0].name", "routes[0].message_types[0]",
			"routes[0].destinations[0]", "kafka.brokers"},
		// Rules, tables and routes: errors name the key down to the rule.
		"rules-cel.bad.yaml":          {"interfaces[0].rules[1].when: column 22:", "nosuch"},
		"rules-table.bad.yaml":        {`interfaces[0].rules[0].map.table: "lab_code"`},
		"rules-two-ops.bad.yaml":      {"interfaces[0].rules[0]: exactly one operation", "set, clear"},
		"rules-split-out.bad.yaml":    {"destinations[0].rules[1].split:"},
		"rules-route-dest.bad.yaml":   {`routes[0].destinations[1]: "registry" is not a configured destination`},
		"rules-two-defaults.bad.yaml": {"routes[2]", "default"},
		"index-admin.bad.yaml": {`index.driver: "mysql" is not sqlite or postgres`, "index.batch_size: -5 is negative",
			"index.flush_interval: -1s is negative", "index.retention: -24h0m0s is negative",
			"index.audit_retention: -1h0m0s is negative",
			"admin.replay.max_messages: -1 is negative", "admin.replay.rate: 2000 is above admin.replay.max_rate (1000)",
			"admin.oidc.client_id: required", `admin.oidc.role_map.hie-admins: "root" is not one of`,
			"admin.tls.cert_file: required when admin.tls.key_file is set", `admin.tls.min_version: "1.1" is not 1.2 or 1.3`,
			`admin.address: "localhost:9464" is also http.address ("127.0.0.1:9464")`},
		"admin-rates.bad.yaml": {"admin.replay.rate: -1 is negative", "admin.replay.max_rate: -2 is negative",
			"admin.address: port 99999 is not between 0 and 65535", "admin.tls.key_file: required",
			"admin.tls.client_ca_file: required with admin.tls.require_client_cert"},
	}
	for file, wants := range tests {
		f, err := Load("testdata/" + file)
		if err == nil {
			err = f.Validate()
		}
		if err == nil {
			t.Errorf("%s: no error", file)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error does not name %s:\n%v", file, w, err)
			}
		}
	}
}

// TestPrecedence checks defaults < file < environment < --set, key by key.
func TestPrecedence(t *testing.T) {
	file := "testdata/standalone.good.yaml" // sets kafka.topic_prefix: hl7bus.
	prefix := func(overrides ...string) string {
		f, err := Load(file, overrides...)
		if err != nil {
			t.Fatal(err)
		}
		return f.Kafka.TopicPrefix
	}
	if got := prefix(); got != "hl7bus." {
		t.Errorf("file: %q", got)
	}
	t.Setenv("HL7BUS_KAFKA_TOPIC_PREFIX", "env.")
	if got := prefix(); got != "env." {
		t.Errorf("env over file: %q", got)
	}
	if got := prefix("kafka.topic_prefix=flag."); got != "flag." {
		t.Errorf("flag over env: %q", got)
	}
	// A default applies when nothing sets the key.
	f, err := Load(file, "kafka.brokers=a:1,b:2", "destinations.0.name=x")
	if err == nil {
		t.Errorf("--set of a list element path must be refused (lists are set whole), got %+v", f.Destinations)
	}
	f, err = Load(file, "kafka.brokers=a:1,b:2")
	if err != nil || len(f.Kafka.Brokers) != 2 || f.Kafka.Partitions != 6 {
		t.Errorf("list override and default: %v %+v", err, f.Kafka)
	}
	if _, err := Load(file, "kafka.topc_prefix=x"); err == nil || !strings.Contains(err.Error(), "topc_prefix") {
		t.Errorf("a misspelt --set key must be an error naming it: %v", err)
	}
	if _, err := Load(file, "novalue"); err == nil {
		t.Error("--set without = must be an error")
	}
}

func TestSecretsRedactedInPrint(t *testing.T) {
	t.Setenv("HL7BUS_KAFKA_SASL_PASSWORD", "hunter2")
	t.Setenv("HL7BUS_REGISTRY_PASSWORD", "s3cret")
	f, err := Load("testdata/standalone.good.yaml", "kafka.sasl.mechanism=SCRAM-SHA-512", "kafka.sasl.username=u")
	if err != nil {
		t.Fatal(err)
	}
	if f.Kafka.SASL.Password.Value() != "hunter2" || f.Registry.Password.Value() != "s3cret" {
		t.Fatalf("secrets not loaded: %q %q", f.Kafka.SASL.Password.Value(), f.Registry.Password.Value())
	}
	out, _ := yaml.Marshal(f)
	if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "********") {
		t.Errorf("printed configuration shows a secret:\n%s", out)
	}
}

func TestProfiles(t *testing.T) {
	f, err := Load("testdata/profile.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = f.Validate()
	if err == nil || !strings.Contains(err.Error(), "interfaces[1].profile") || strings.Contains(err.Error(), "interfaces[0].profile") {
		t.Fatalf("validate: %v", err)
	}
	f.Interfaces = f.Interfaces[:1]
	ps, err := f.Profiles()
	if err != nil || ps["lab"] == nil || ps["lab"].Name != "natlab-results" {
		t.Fatalf("profiles %v %v", ps, err)
	}
}
