package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestLoopScopedDeadLetters: the transactional driver commits a handler's
// scoped dead letters with its other outputs (two outputs and one scoped
// dead letter per input make three records), counts every dead letter it
// writes in hl7bus_dlq_writes_total, and an input whose only output is a
// scoped dead letter finishes as dead_lettered.
func TestLoopScopedDeadLetters(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	in, out, dlq := env.Kafka.Topic("transformed"), env.Kafka.Topic("out"), env.Kafka.DLQTopic("test")
	admin, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, in, out, dlq); err != nil {
		t.Fatal(err)
	}
	for topic, s := range map[string]string{in: schemas.Transformed, out: schemas.Out, dlq: schemas.DeadLetter} {
		if _, err := env.Serde.Register(ctx, topic, s); err != nil {
			t.Fatal(err)
		}
	}
	inputs := map[string][]byte{}
	for _, id := range []string{"M1", "M2", "M3", "only", "bad"} {
		v, err := env.Serde.Encode(&canonical.Transformed{MessageID: id, Header: canonical.Header{ControlID: "C-" + id}, Message: []byte("MSH|" + id)})
		if err != nil {
			t.Fatal(err)
		}
		inputs[id] = v
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: in, Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	handle := pipeline.Typed(env.Serde, func(_ context.Context, tr *canonical.Transformed) ([]pipeline.Output, error) {
		lis := pipeline.Output{DeadLetter: &pipeline.Scoped{Destination: "lis", Reason: "rule lis-codes: lab_codes has no GLU"}}
		switch tr.MessageID {
		case "only":
			return []pipeline.Output{lis}, nil
		case "bad":
			return nil, pipeline.Permanent(errors.New("rule stamp: no such field"))
		}
		return []pipeline.Output{
			{Topic: out, Record: &canonical.Out{MessageID: tr.MessageID, Destination: "ehr"}},
			lis,
			{Topic: out, Record: &canonical.Out{MessageID: tr.MessageID, Destination: "state"}},
		}, nil
	})
	sess, err := kafka.NewTransactSession(env.Kafka, log, "g-scoped", "txn-scoped-1", []string{in})
	if err != nil {
		t.Fatal(err)
	}
	tel := telemetry.Nop()
	loop := &pipeline.Transact{Stage: "test", Session: sess, DLQTopic: dlq, Serde: env.Serde, Handle: handle, Log: log, Telemetry: tel}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- loop.Run(runCtx) }()

	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(out, dlq),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	const want = 3*3 + 1 + 1 // three inputs of three records, one scoped only, one failed
	outs := map[string]int{}
	var dead []*canonical.DeadLetter
	for len(dead)+sum(outs) < want && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("%s: %v", r.Topic, err)
			}
			switch x := rec.(type) {
			case *canonical.Out:
				outs[x.MessageID+">"+x.Destination]++
			case *canonical.DeadLetter:
				dead = append(dead, x)
			}
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sess.Close()

	for _, id := range []string{"M1", "M2", "M3"} {
		for _, d := range []string{"ehr", "state"} {
			if outs[id+">"+d] != 1 {
				t.Errorf("%s to %s written %d times", id, d, outs[id+">"+d])
			}
		}
	}
	if sum(outs) != 6 || len(dead) != 5 {
		t.Fatalf("%d outputs and %d dead letters, want 6 and 5", sum(outs), len(dead))
	}
	scoped := 0
	for _, d := range dead {
		if !bytes.Equal(d.Value, inputs[d.MessageID]) || d.ErrorClass != canonical.ErrorPermanent || d.Stage != "test" ||
			d.SourceTopic != in || d.ControlID != "C-"+d.MessageID {
			t.Errorf("dead letter %+v", d)
		}
		switch {
		case d.MessageID == "bad":
			if d.Destination != "" || d.Reason != "rule stamp: no such field" {
				t.Errorf("whole-input dead letter scoped: %+v", d)
			}
		case d.Destination == "lis" && d.Reason == "rule lis-codes: lab_codes has no GLU":
			scoped++
		default:
			t.Errorf("dead letter %+v", d)
		}
	}
	if scoped != 4 {
		t.Errorf("%d scoped dead letters, want 4", scoped)
	}
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"hl7bus_dlq_writes_total", "test", 5},
		{"hl7bus_stage_records_total", "ok", 3},
		{"hl7bus_stage_records_total", "dead_lettered", 2},
	} {
		if got := counter(t, tel, c.name, c.label); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.label, got, c.want)
		}
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
