package egress

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// TestPausedRecordIsHeld: a record already fetched when its destination
// is paused is held before anything is done with it (no decode, no send,
// no attempt, no dead letter), and the destination is not marked down; a
// resume during the try lets it go at once.
func TestPausedRecordIsHeld(t *testing.T) {
	env := kafkatest.New(t)
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	s := New(Config{}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	w := newWorker(s, Destination{Name: "lis"}.WithDefaults(), &panicky{}, prod, env.Kafka.DLQTopic("egress"), env.Kafka.Topic(kafka.TopicDelivery))
	w.outage.set(false, time.Now())
	idle := &panicky{}
	w.snds = []Sender{panickySender{idle}}
	s.ctl.set("lis", &canonical.ControlState{Destination: "lis", State: canonical.ControlPaused})
	// Garbage: were it decoded, it would be dead-lettered.
	j := &job{Rec: &kgo.Record{Topic: "t", Value: []byte("not avro")}}
	start := time.Now()
	o := w.deliver(context.Background(), 0, j)
	if o.Kind != pipeline.Hold || o.Resume || j.State.attempts != 0 {
		t.Fatalf("paused: outcome %+v, attempts %d; want a hold and no attempt", o, j.State.attempts)
	}
	if d := time.Since(start); d < pauseProbe/2 || d > 5*pauseProbe {
		t.Errorf("the try waited %v for a resume, want about %v", d, pauseProbe)
	}
	if _, sent := idle.snapshot(); len(sent) != 0 {
		t.Errorf("a paused record was sent: %v", sent)
	}
	if up := testutil.ToFloat64(w.outage.up); up != 1 {
		t.Errorf("destination up %v after a pause hold, want 1: paused is no outage", up)
	}

	snd := &panicky{}
	sender, _ := snd.NewSender(w.d, nil)
	v := []byte("MSH|^~\\&|A|B|C|D|20261201||ADT^A01|C1|P|2.5\r")
	j = &job{Rec: &kgo.Record{Topic: "t"}, State: delivery{out: &canonical.Out{MessageID: "M1", ControlID: "C1", Payload: v}}}
	go func() {
		time.Sleep(pauseProbe / 5)
		s.ctl.set("lis", &canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})
	}()
	start = time.Now()
	o = w.process(context.Background(), j, sender)
	if o.Kind != pipeline.Done || time.Since(start) > pauseProbe {
		t.Fatalf("resumed during the try: outcome %+v after %v, want delivered at once", o, time.Since(start))
	}
	if _, got := snd.snapshot(); len(got) != 1 {
		t.Errorf("sent %v, want C1", got)
	}
}

// TestPauseNotCountedAsRetryTime: max_retry_time counts neither an
// outage nor a pause.
func TestPauseNotCountedAsRetryTime(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name  string
		steps []struct {
			paused bool
			at     time.Duration
		}
		at   time.Duration
		want time.Duration
	}{
		{name: "never paused", at: time.Minute, want: 0},
		{name: "paused, then resumed", steps: []struct {
			paused bool
			at     time.Duration
		}{{true, time.Second}, {false, 4 * time.Second}}, at: time.Minute, want: 3 * time.Second},
		{name: "still paused", steps: []struct {
			paused bool
			at     time.Duration
		}{{true, time.Second}, {true, 2 * time.Second}}, at: 11 * time.Second, want: 10 * time.Second},
		{name: "twice", steps: []struct {
			paused bool
			at     time.Duration
		}{{true, 0}, {false, time.Second}, {true, 2 * time.Second}, {false, 4 * time.Second}}, at: time.Minute, want: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c pauseClock
			for _, s := range tc.steps {
				c.set(s.paused, t0.Add(s.at))
			}
			if got := c.elapsed(t0.Add(tc.at)); got != tc.want {
				t.Errorf("elapsed %v, want %v", got, tc.want)
			}
		})
	}
}
