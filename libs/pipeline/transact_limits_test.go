package pipeline_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// loopEnv is a running loop over topic in, writing to out and dlq.
type loopEnv struct {
	env          *kafkatest.Env
	admin        *kgo.Client
	in, out, dlq string
	tel          *telemetry.Telemetry
}

// startLoop creates in, out and dlq (out and dlq with max.message.bytes
// limits[topic] when given, else through EnsureTopics), writes inputs to
// in, and runs loop (its Session, Serde, Telemetry and topics filled in)
// until the test ends.
func startLoop(t *testing.T, loop *pipeline.Transact, limits map[string]int, inputs ...[]byte) *loopEnv {
	t.Helper()
	env := kafkatest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	le := &loopEnv{env: env, in: env.Kafka.Topic("in"), out: env.Kafka.Topic("out"), dlq: env.Kafka.DLQTopic("test"), tel: telemetry.Nop()}
	admin, err := kafka.NewAdmin(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	le.admin = admin
	t.Cleanup(admin.Close)
	for _, topic := range []string{le.in, le.out, le.dlq} {
		short := strings.TrimPrefix(topic, env.Kafka.TopicPrefix)
		if n, ok := limits[short]; ok {
			v := strconv.Itoa(n)
			if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &v}, topic); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := kafka.EnsureTopics(ctx, admin, env.Kafka, topic); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Serde.Register(ctx, le.dlq, schemas.DeadLetter); err != nil {
		t.Fatal(err)
	}
	for i, v := range inputs {
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: le.in, Key: []byte(fmt.Sprint(i % 3)), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := kafka.NewTransactSession(env.Kafka, slog.New(slog.DiscardHandler), "g-"+t.Name(), "txn-"+t.Name(), []string{le.in})
	if err != nil {
		t.Fatal(err)
	}
	loop.Stage, loop.Session, loop.DLQTopic, loop.Serde, loop.Telemetry = "test", sess, le.dlq, env.Serde, le.tel
	if loop.Log == nil {
		loop.Log = slog.New(slog.DiscardHandler)
	}
	if loop.Retry.Initial == 0 {
		loop.Retry.Initial, loop.Retry.Max = 10*time.Millisecond, 50*time.Millisecond
	}
	le.tel.Health.Register("test")
	le.tel.Health.Set("test", true)
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		sess.Close()
	})
	return le
}

// read returns the committed values of out and the dead letters, waiting
// until there are want of them together (or 30 s).
func (le *loopEnv) read(t *testing.T, want int) (outs []string, dead []*canonical.DeadLetter) {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(le.env.Kafka.Brokers...), kgo.ConsumeTopics(le.out, le.dlq),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(32<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	within := 30 * time.Second
	if want == 0 {
		within = time.Second // nothing expected: look for a second
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for (want == 0 || len(outs)+len(dead) < want) && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Topic == le.out {
				outs = append(outs, string(r.Value[:min(len(r.Value), 16)]))
				return
			}
			rec, err := le.env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("dead letter: %v", err)
			}
			dead = append(dead, rec.(*canonical.DeadLetter))
		})
	}
	return outs, dead
}

// gauge returns metric name's value for stage "test".
func (le *loopEnv) gauge(t *testing.T, name string) float64 { return counter(t, le.tel, name, "test") }

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// eventually fails unless cond holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoopOutputOverLimitIsDeadLettered: a handler output larger than the
// record limit is never produced (it would fail every attempt and stall
// the partition): its input is dead-lettered as permanent with a reason
// naming the size and the limit, and the records after it flow.
func TestLoopOutputOverLimitIsDeadLettered(t *testing.T) {
	big := randomBytes(t, 100<<10)
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		v := rec.Value
		if string(v) == "big" {
			v = big
		}
		return []*kgo.Record{{Topic: rec.Topic[:len(rec.Topic)-2] + "out", Key: rec.Key, Value: v}}, pipeline.Ident{MessageID: "id-" + string(rec.Value)}, nil
	}
	loop := &pipeline.Transact{Handle: handler, MaxRecordBytes: 64 << 10}
	le := startLoop(t, loop, nil, []byte("before"), []byte("big"), []byte("after"))
	outs, dead := le.read(t, 3)
	slices.Sort(outs)
	if !slices.Equal(outs, []string{"after", "before"}) {
		t.Errorf("outputs %q", outs)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters", len(dead))
	}
	d := dead[0]
	want := fmt.Sprintf("output record for %s is %d bytes, over the record limit of %d bytes (kafka.max_record_bytes)", le.out, len(big)+1+1024, 64<<10)
	if d.ErrorClass != canonical.ErrorPermanent || d.Reason != want || d.MessageID != "id-big" || string(d.Value) != "big" {
		t.Errorf("dead letter %s %q %s %q\nwant reason %q", d.ErrorClass, d.Reason, d.MessageID, d.Value, want)
	}
	if got := counter(t, le.tel, "hl7bus_dlq_writes_total", "test"); got != 1 {
		t.Errorf("hl7bus_dlq_writes_total{stage=test} = %v", got)
	}
}

// TestLoopBrokerRefusalIsDeadLettered: an output the broker refuses for
// the record's own sake (MESSAGE_TOO_LARGE: here the out topic's limit is
// lower than the client's) is attributed to its input, which the next
// attempt dead-letters; the partition does not stall.
func TestLoopBrokerRefusalIsDeadLettered(t *testing.T) {
	big := randomBytes(t, 200<<10)
	var calls atomic.Int64
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		calls.Add(1)
		v := rec.Value
		if string(v) == "big" {
			v = big
		}
		return []*kgo.Record{{Topic: rec.Topic[:len(rec.Topic)-2] + "out", Key: rec.Key, Value: v}}, pipeline.Ident{MessageID: "id-" + string(rec.Value)}, nil
	}
	loop := &pipeline.Transact{Handle: handler}
	le := startLoop(t, loop, map[string]int{"out": 64 << 10}, []byte("before"), []byte("big"), []byte("after"))
	outs, dead := le.read(t, 3)
	slices.Sort(outs)
	if !slices.Equal(outs, []string{"after", "before"}) {
		t.Errorf("outputs %q", outs)
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters", len(dead))
	}
	d := dead[0]
	if d.ErrorClass != canonical.ErrorPermanent || !strings.Contains(d.Reason, "MESSAGE_TOO_LARGE") ||
		!strings.Contains(d.Reason, fmt.Sprintf("output record for %s of %d bytes was refused", le.out, len(big)+1+1024)) || d.MessageID != "id-big" {
		t.Errorf("dead letter %s %q %s", d.ErrorClass, d.Reason, d.MessageID)
	}
}

// TestLoopBlockedWhenDeadLetterCannotBeWritten: when even the dead letter
// is refused, the loop never skips the record: the stage reports not
// ready with hl7bus_stage_blocked 1 and retries, and it resumes once the
// dead letter can be written (here: the DLQ topic's limit is raised).
func TestLoopBlockedWhenDeadLetterCannotBeWritten(t *testing.T) {
	poison := randomBytes(t, 100<<10)
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		if len(rec.Value) > 1000 {
			return nil, pipeline.Ident{MessageID: "id-poison"}, pipeline.Permanent(errors.New("not a message"))
		}
		return []*kgo.Record{{Topic: rec.Topic[:len(rec.Topic)-2] + "out", Key: rec.Key, Value: rec.Value}}, pipeline.Ident{}, nil
	}
	loop := &pipeline.Transact{Handle: handler, StallAfter: time.Minute}
	le := startLoop(t, loop, map[string]int{"dlq.test": 64 << 10}, poison, []byte("after"))
	eventually(t, 10*time.Second, "blocked gauge 1 and not ready", func() bool {
		return le.gauge(t, "hl7bus_stage_blocked") == 1 && le.gauge(t, "hl7bus_stage_stalled") == 1 &&
			slices.Contains(le.tel.Health.NotReady(), "test")
	})
	if outs, dead := le.read(t, 0); len(outs)+len(dead) != 0 {
		t.Fatalf("something committed past the blocked record: %q %d", outs, len(dead))
	}
	v := strconv.Itoa(1 << 20)
	if _, err := kadm.NewClient(le.admin).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &v}}, le.dlq); err != nil {
		t.Fatal(err)
	}
	outs, dead := le.read(t, 2)
	if len(outs) != 1 || len(dead) != 1 || dead[0].MessageID != "id-poison" || len(dead[0].Value) != len(poison) {
		t.Fatalf("after raising the limit: outputs %q, %d dead letters", outs, len(dead))
	}
	eventually(t, 10*time.Second, "ready again", func() bool {
		return le.gauge(t, "hl7bus_stage_blocked") == 0 && le.gauge(t, "hl7bus_stage_stalled") == 0 && len(le.tel.Health.NotReady()) == 0
	})
}

// TestLoopStallVisible (D11): a stage that holds fetched records without
// committing (a handler failing transiently, as when the registry is
// down) is reported stalled and not ready after StallAfter, is never
// dead-lettered for it, and is ready again once it makes progress.
func TestLoopStallVisible(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	handler := func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
		if down.Load() {
			return nil, pipeline.Ident{}, errors.New("registry unavailable")
		}
		return []*kgo.Record{{Topic: rec.Topic[:len(rec.Topic)-2] + "out", Key: rec.Key, Value: rec.Value}}, pipeline.Ident{}, nil
	}
	loop := &pipeline.Transact{Handle: handler, StallAfter: 300 * time.Millisecond}
	le := startLoop(t, loop, nil, []byte("one"), []byte("two"))
	start := time.Now()
	eventually(t, 5*time.Second, "stalled 1 and not ready", func() bool {
		return le.gauge(t, "hl7bus_stage_stalled") == 1 && slices.Contains(le.tel.Health.NotReady(), "test")
	})
	if since := time.Since(start); since < 300*time.Millisecond {
		t.Errorf("stalled after %v, before StallAfter", since)
	}
	if last := le.gauge(t, "hl7bus_stage_last_progress_timestamp_seconds"); last == 0 || last > float64(time.Now().UnixNano())/1e9 {
		t.Errorf("last progress %v", last)
	}
	if ok := counter(t, le.tel, "hl7bus_stage_records_total", "ok"); ok != 0 {
		t.Errorf("ok = %v while nothing committed", ok)
	}
	time.Sleep(time.Second) // several more failed attempts: still no dead letter
	down.Store(false)
	outs, dead := le.read(t, 2)
	if len(outs) != 2 || len(dead) != 0 {
		t.Fatalf("outputs %q, %d dead letters", outs, len(dead))
	}
	eventually(t, 5*time.Second, "ready again", func() bool {
		return le.gauge(t, "hl7bus_stage_stalled") == 0 && len(le.tel.Health.NotReady()) == 0
	})
	if ok := counter(t, le.tel, "hl7bus_stage_records_total", "ok"); ok != 2 {
		t.Errorf("ok = %v, want 2", ok)
	}
}
