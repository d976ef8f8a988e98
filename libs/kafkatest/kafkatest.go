// Package kafkatest gives tests a Kafka and a schema registry with a ready
// kafka.Config, cleaned up by t.Cleanup. There are no Kafka mocks in
// hl7bus: tests talk the real protocol.
//
// By default the broker is franz-go's in-process kfake and the registry
// srfake. With HL7BUS_TEST_KAFKA_BROKERS (and optionally
// HL7BUS_TEST_REGISTRY_URL) set, the same tests run against a real Kafka
// cluster and registry instead, each test under its own topic prefix: this
// is how `make test-interop` runs the end-to-end suite on Apache Kafka.
package kafkatest

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
)

// Env is a running broker and registry.
type Env struct {
	// Cluster is the in-process broker, nil against an external cluster.
	Cluster     *kfake.Cluster
	Kafka       kafka.Config
	RegistryURL string
	SR          *sr.Client
	Serde       *canonical.Serde
	// External reports whether the broker is a real cluster.
	External bool
	// ReadTimeout bounds Read and ReadDecoded; zero means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
}

var seq atomic.Int64

// New starts (or connects to) a broker with three partitions per topic and
// a registry. In -short mode (make test-short) it skips the test instead,
// so every broker test is skipped there without its own check.
func New(t testing.TB, opts ...kfake.Opt) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a broker; skipped in -short mode")
	}
	env := &Env{}
	if brokers := os.Getenv("HL7BUS_TEST_KAFKA_BROKERS"); brokers != "" {
		env.External = true
		// A prefix per test keeps tests apart on a shared cluster; topics
		// are left behind (cheap, and useful when a test fails).
		prefix := fmt.Sprintf("t%d-%d.", time.Now().UnixNano()%1e9, seq.Add(1))
		env.Kafka = kafka.Config{Brokers: strings.Split(brokers, ","), TopicPrefix: prefix, Partitions: 3}.WithDefaults()
	} else {
		c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(3)}, opts...)...)
		if err != nil {
			t.Fatalf("starting kfake: %v", err)
		}
		t.Cleanup(c.Close)
		env.Cluster = c
		env.Kafka = kafka.Config{Brokers: c.ListenAddrs(), Partitions: 3}.WithDefaults()
	}
	if u := os.Getenv("HL7BUS_TEST_REGISTRY_URL"); u != "" {
		env.RegistryURL = u
		// Registry clients (pkg/sr's default http.Client) keep keep-alive
		// connections to a real registry in http.DefaultTransport, the
		// test's and those of the code under test alike: close them when
		// the test ends, so goleak in the package's TestMain sees none.
		t.Cleanup(func() {
			if tr, ok := http.DefaultTransport.(*http.Transport); ok {
				tr.CloseIdleConnections()
			}
		})
	} else {
		reg := srfake.New()
		t.Cleanup(reg.Close)
		env.RegistryURL = reg.URL()
	}
	cl, err := sr.NewClient(sr.URLs(env.RegistryURL))
	if err != nil {
		t.Fatalf("registry client: %v", err)
	}
	env.SR, env.Serde = cl, canonical.NewSerde(cl)
	return env
}
