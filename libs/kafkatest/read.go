package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// DefaultReadTimeout is how long Read waits when Env.ReadTimeout is zero:
// long enough for a stage on a loaded CI machine (or a real cluster) to
// commit, short enough that a test waiting for a record that never comes
// fails in its own name rather than at the go test deadline.
const DefaultReadTimeout = 30 * time.Second

// Read returns the first n committed records of topic, reading from its
// start, and fails the test if fewer arrive within the read timeout.
// topic is the full name (env.Kafka.Topic(kafka.TopicRaw)). Records of
// aborted transactions are never returned: stages write transactionally,
// and an aborted batch is processed again. Order is per partition; across
// partitions it is the order fetches came back in.
func (e *Env) Read(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	timeout := e.ReadTimeout
	if timeout == 0 {
		timeout = DefaultReadTimeout
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kafkatest: reader for %s: %v", topic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				t.Logf("kafkatest: fetching %s: %v", topic, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if len(out) < n {
				out = append(out, r)
			}
		})
	}
	if len(out) < n {
		t.Fatalf("kafkatest: %d of %d records on %s within %v", len(out), n, topic, timeout)
	}
	return out
}

// ReadDecoded is Read followed by decoding each record with the Env's
// Serde; a record that does not decode fails the test.
func (e *Env) ReadDecoded(t testing.TB, topic string, n int) []canonical.Record {
	t.Helper()
	recs := e.Read(t, topic, n)
	out := make([]canonical.Record, 0, len(recs))
	for _, r := range recs {
		rec, err := e.Serde.Decode(context.Background(), r.Value)
		if err != nil {
			t.Fatalf("kafkatest: %s partition %d offset %d: %v", topic, r.Partition, r.Offset, err)
		}
		out = append(out, rec)
	}
	return out
}
