package kafka_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// TestInstrumentClientLabel: the franz-go metrics of two clients in one
// registry are one metric family with a client label, not one family per
// client with the client's name inside the metric name (hl7bus_kafka_parse_*,
// as before), which no query can aggregate.
func TestInstrumentClientLabel(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	tel := telemetry.Nop()
	topic := env.Kafka.Topic("metrics")
	clients := []string{"ingress", "egress-lab.1"}
	for i, name := range clients {
		cl, err := kafka.NewProducer(env.Kafka, log, kafka.Instrument(tel, name).Opts()...)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := kafka.EnsureTopics(ctx, cl, env.Kafka, topic); err != nil {
				t.Fatal(err)
			}
		}
		// kprom unregisters a client's metrics when it closes.
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// kgo runs the produce hooks after it resolves the promise, so the
	// last client's bytes may be counted just after ProduceSync returns.
	var byClient map[string]bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		byClient = producedBy(t, tel, clients)
		if len(byClient) == len(clients) || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range clients {
		if !byClient[c] {
			t.Errorf("hl7bus_kafka_produce_bytes_total has no series with client=%q: %v", c, byClient)
		}
	}
}

// producedBy gathers tel's registry, fails on a kafka metric whose name
// holds a client name, and returns the clients with a nonzero
// hl7bus_kafka_produce_bytes_total series.
func producedBy(t *testing.T, tel *telemetry.Telemetry, clients []string) map[string]bool {
	t.Helper()
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byClient := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "hl7bus_kafka_") {
			continue
		}
		for _, c := range clients {
			if strings.Contains(name, strings.NewReplacer("-", "_", ".", "_").Replace(c)) {
				t.Errorf("metric %s carries the client name %s", name, c)
			}
		}
		if name != "hl7bus_kafka_produce_bytes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client" && m.GetCounter().GetValue() > 0 {
					byClient[l.GetValue()] = true
				}
			}
		}
	}
	return byClient
}
