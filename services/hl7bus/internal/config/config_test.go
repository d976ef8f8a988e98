package config

import (
	"strings"
	"testing"
	"time"
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
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("HL7BUS_KAFKA_TOPIC_PREFIX", "test.")
	t.Setenv("HL7BUS_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("HL7BUS_LOG_LEVEL", "debug")
	t.Setenv("HL7BUS_STANDALONE_DATA_DIR", "/tmp/x")
	f, err := Load("testdata/standalone.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Kafka.TopicPrefix != "test." || len(f.Kafka.Brokers) != 2 || f.Log.Level != "debug" || f.Standalone.DataDir != "/tmp/x" {
		t.Errorf("overrides not applied: %+v %+v %+v", f.Kafka, f.Log, f.Standalone)
	}
}

func TestBad(t *testing.T) {
	tests := map[string][]string{
		"unknown-key.bad.yaml": {"adress"},
		"many.bad.yaml": {"log.level", "kafka.partitions", "interfaces[0].protocol", "interfaces[0].address",
			"interfaces[0].ordering", "interfaces[1].name", "destinations[0].name", "routes[0].message_types[0]",
			"routes[0].destinations[0]", "kafka.brokers"},
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
