package egress

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// panicky is a protocol whose sender panics on a message holding PANIC
// (with the message in the panic value, as a careless bug would) and
// delivers every other.
type panicky struct {
	mu        sync.Mutex
	built     int
	delivered []string
}

func (p *panicky) Validate(string, Destination) []error { return nil }

func (p *panicky) NewSender(Destination, *slog.Logger) (Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.built++
	return panickySender{p}, nil
}

func (p *panicky) snapshot() (built int, delivered []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.built, append([]string(nil), p.delivered...)
}

type panickySender struct{ p *panicky }

func (s panickySender) Send(_ context.Context, m *canonical.Out) Result {
	if bytes.Contains(m.Payload, []byte("PANIC")) {
		panic(fmt.Sprintf("bug while sending %s", m.Payload))
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.delivered = append(s.p.delivered, m.ControlID)
	return Result{Verdict: Delivered, Answered: true, Reply: []byte("ok")}
}

func (panickySender) Close() error { return nil }

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A sender that panics on one message: that message is dead-lettered with
// class panic, the messages after it (of the same key) are still
// delivered, the stage keeps running, and the log has the panic's type and
// stack but not its value (which quotes the message).
func TestSenderPanicDeadLettersTheMessage(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	out := env.Kafka.OutTopic("lis")
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafka.EnsureTopics(ctx, prod, env.Kafka, out); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Serde.Register(ctx, out, schemas.Out); err != nil {
		t.Fatal(err)
	}
	for _, ctl := range []string{"M1", "M2", "M3"} {
		payload := "MSH|^~\\&|HIS|H|LIS|L|20261201||ADT^A01|" + ctl + "|P|2.5\rPID|1||ZZSECRET99\r"
		if ctl == "M2" {
			payload += "NTE|1||PANIC\r"
		}
		v, err := env.Serde.Encode(&canonical.Out{MessageID: "ID" + ctl, ControlID: ctl, OrderingKey: "p1", Destination: "lis",
			ContentType: canonical.ContentTypeV2, Payload: []byte(payload), ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: out, Key: []byte("p1"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	adapter := &panicky{}
	s := New(Config{Destinations: []Destination{{Name: "lis", Protocol: "panicky"}},
		Adapters: map[string]Adapter{"panicky": adapter}}, env.Kafka, env.Serde, log)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, d := adapter.snapshot(); len(d) == 2 || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the stage stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	built, delivered := adapter.snapshot()
	if strings.Join(delivered, ",") != "M1,M3" {
		t.Fatalf("delivered %v, want M1 and M3 (the message after the panic, same key, still goes)", delivered)
	}
	if built != 2 {
		t.Errorf("%d senders built, want 2: the one that panicked is replaced", built)
	}

	reader, err := kafka.NewReader(env.Kafka, slog.New(slog.DiscardHandler), env.Kafka.DLQTopic("egress"), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	var dead []*canonical.DeadLetter
	for len(dead) < 1 && pctx.Err() == nil {
		reader.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if rec, err := env.Serde.Decode(ctx, r.Value); err == nil {
				dead = append(dead, rec.(*canonical.DeadLetter))
			}
		})
	}
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if dl := dead[0]; dl.ControlID != "M2" || dl.Destination != "lis" || dl.ErrorClass != pipeline.ClassPanic || dl.Reason != "delivering the message panicked (a string)" ||
		!bytes.Contains(dl.Value, []byte("PANIC")) {
		t.Errorf("dead letter %s (destination %q) class %q reason %q, want M2's record untouched for lis, class panic", dl.ControlID, dl.Destination, dl.ErrorClass, dl.Reason)
	}

	// Every receipt, the panicked one's too, points at the out record it
	// is about: that is what a replay to this destination re-sends.
	offsets := map[string]int64{}
	for _, r := range env.Read(t, out, 3) {
		rec, err := env.Serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		offsets[rec.(*canonical.Out).ControlID] = r.Offset
	}
	for _, rec := range env.ReadDecoded(t, env.Kafka.Topic(kafka.TopicDelivery), 3) {
		d := rec.(*canonical.Delivery)
		if d.Source == nil || d.Source.Topic != out || d.Source.Offset != offsets[d.ControlID] {
			t.Errorf("delivery of %s (%s) has source %+v, want %s offset %d", d.ControlID, d.Outcome, d.Source, out, offsets[d.ControlID])
		}
	}

	select {
	case err := <-done:
		t.Fatalf("the stage stopped after the panic: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	l := logs.String()
	if !strings.Contains(l, `"panic_type":"string"`) || !strings.Contains(l, `"stack":"goroutine`) {
		t.Errorf("the log lacks the panic's type or stack:\n%s", l)
	}
	if strings.Contains(l, "ZZSECRET") || strings.Contains(l, "bug while sending") {
		t.Errorf("the log quotes the panic value")
	}
}
