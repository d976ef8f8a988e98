package e2e

// Issue 8, "sizes are one policy": a 15 MB message with a PDF goes end to
// end in-process on whatever broker kafkatest gives (the embedded kfake in
// make test, Apache Kafka in make test-interop, whose broker default of
// 1 MB per record batch the stages must override per topic), and the
// probe's 700 KB message no longer stalls the message after it (D1).

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/services/ingress"
)

func TestLargeMessageThroughPipeline(t *testing.T) {
	env := kafkatest.New(t)
	// The record limit as configuration loading derives it for the
	// default interface limit: the largest message plus the envelope.
	env.Kafka.MaxRecordBytes = ingress.DefaultMaxMessageSize + kafka.EnvelopeHeadroom
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	in, recv := startLISPipeline(t, ctx, env, ingress.Interface{Name: "lab-in"}) // max_message_size: the default
	addr := in.Addr("lab-in")

	big := pdfMessage(t, "BIG15M", 15<<20)
	if len(big) >= ingress.DefaultMaxMessageSize {
		t.Fatalf("the large message is %d bytes, over the default interface limit", len(big))
	}
	small := []byte(message("ADT", 910, 1))
	start := time.Now()
	sendExpectCode(t, ctx, addr, big, hl7v2.AckAccept)
	t.Logf("%d-byte message answered AA in %v", len(big), time.Since(start))
	sendExpectCode(t, ctx, addr, small, hl7v2.AckAccept)
	took := waitFor(t, recv, 150*time.Second, big, small)
	t.Logf("it and the small message after it delivered byte for byte %v after the small one's AA", took)

	// Probe D1: 700 KB (parse's output of it once exceeded 1 MB and
	// stalled every later message), then a small one.
	mid := pdfMessage(t, "MID700K", 700_000)
	small2 := []byte(message("ADT", 911, 1))
	sendExpectCode(t, ctx, addr, mid, hl7v2.AckAccept)
	sendExpectCode(t, ctx, addr, small2, hl7v2.AckAccept)
	took = waitFor(t, recv, 60*time.Second, mid, small2)
	t.Logf("700 KB message and the small one after it delivered in %v", took)
	if n := len(recv.messages()); n != 4 {
		t.Errorf("the receiver got %d messages, want the 4 sent", n)
	}

	// Every topic the message went through was created (or raised) by the
	// stages to hold the record limit.
	adm := kadm.NewClient(mustClient(t, env))
	topics := []string{env.Kafka.Topic("raw"), env.Kafka.Topic("parsed"), env.Kafka.Topic("transformed"),
		env.Kafka.OutTopic("lis"), env.Kafka.Topic("delivery")}
	for _, st := range []string{"parse", "transform", "route", "egress"} {
		topics = append(topics, env.Kafka.DLQTopic(st))
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for _, rc := range rcs {
		if rc.Err != nil {
			t.Errorf("topic %s: %v", rc.Name, rc.Err)
			continue
		}
		described[rc.Name] = true
		limit := -1
		for _, kv := range rc.Configs {
			if kv.Key == "max.message.bytes" {
				limit, _ = strconv.Atoi(kv.MaybeValue())
			}
		}
		if limit < env.Kafka.MaxRecordBytes {
			t.Errorf("topic %s: max.message.bytes %d, want at least the record limit %d", rc.Name, limit, env.Kafka.MaxRecordBytes)
		}
	}
	for _, topic := range topics {
		if !described[topic] {
			t.Errorf("topic %s was not described: the stages did not create it", topic)
		}
	}
}

// mustClient returns a plain client of env's brokers, closed when the test
// ends.
func mustClient(t *testing.T, env *kafkatest.Env) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
