// Package kafkatest runs an in-process Kafka (franz-go's kfake) and schema
// registry (srfake) for tests, with a ready kafka.Config; both are closed by
// t.Cleanup. There are no Kafka mocks in hl7bus: tests talk the real
// protocol to these.
package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
)

// Env is a running broker and registry.
type Env struct {
	Cluster  *kfake.Cluster
	Registry *srfake.Registry
	Kafka    kafka.Config
	SR       *sr.Client
	Serde    *canonical.Serde
}

// New starts a three-partition-per-topic broker and a registry.
func New(t testing.TB, opts ...kfake.Opt) *Env {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatalf("registry client: %v", err)
	}
	cfg := kafka.Config{Brokers: c.ListenAddrs(), Partitions: 3}.WithDefaults()
	return &Env{Cluster: c, Registry: reg, Kafka: cfg, SR: cl, Serde: canonical.NewSerde(cl)}
}
