package e2e

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// scripted is a destination whose answer is chosen per message.
type scripted struct {
	mu     sync.Mutex
	got    map[string]int // control ID -> times received
	answer func(ctl string, nth int) string
}

func (s *scripted) serve(t *testing.T, ln net.Listener) *mllp.Server {
	srv := mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, f []byte) ([]byte, error) {
		m, err := hl7v2.Parse(f)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.got[m.ControlID()]++
		nth := s.got[m.ControlID()]
		s.mu.Unlock()
		ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: s.answer(m.ControlID(), nth)})
		if err != nil {
			return nil, err
		}
		return ack.Bytes(), nil
	}))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv
}

func (s *scripted) count() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.got {
		distinct++
		total += n
	}
	return
}

func TestDestinationsFailIndependently(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	healthy := &scripted{got: map[string]int{}, answer: func(string, int) string { return hl7v2.AckAccept }}
	flaky := &scripted{got: map[string]int{}, answer: func(_ string, nth int) string {
		if nth <= 2 {
			return hl7v2.AckError // AE twice, then accepted
		}
		return hl7v2.AckAccept
	}}
	rejecting := &scripted{got: map[string]int{}, answer: func(string, int) string { return hl7v2.AckReject }}
	late := &scripted{got: map[string]int{}, answer: func(string, int) string { return hl7v2.AckAccept }}

	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	lnHealthy, lnFlaky, lnRejecting := listen(), listen(), listen()
	healthy.serve(t, lnHealthy)
	flaky.serve(t, lnFlaky)
	rejecting.serve(t, lnRejecting)
	lateAddr := freeAddr(t) // nothing listens there yet

	retry := egress.Retry{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	dests := []egress.Destination{
		{Name: "healthy", Protocol: "mllp", Address: lnHealthy.Addr().String(), Retry: retry},
		{Name: "flaky", Protocol: "mllp", Address: lnFlaky.Addr().String(), Retry: retry},
		{Name: "rejecting", Protocol: "mllp", Address: lnRejecting.Addr().String(), Retry: retry},
		{Name: "late", Protocol: "mllp", Address: lateAddr, Retry: retry},
	}
	in := startPipeline(t, ctx, env, pipeline{Interface: "in", Destinations: dests,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"healthy", "flaky", "rejecting", "late"}}}})

	const n = 30
	sent := sendAll(t, ctx, in.Addr("in"), 3, 5, 2)
	if len(sent) != n {
		t.Fatalf("sent %d", len(sent))
	}
	waitFor := func(what string, d *scripted, want int) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if distinct, _ := d.count(); distinct == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		distinct, _ := d.count()
		t.Fatalf("%s received %d distinct messages, want %d", what, distinct, want)
	}
	// The healthy destination gets everything while "late" is still down.
	waitFor("healthy", healthy, n)
	if distinct, _ := late.count(); distinct != 0 {
		t.Fatalf("late destination received before it was up")
	}
	waitFor("flaky", flaky, n)
	// Each message is answered AE twice, then AA: three deliveries each.
	deadline := time.Now().Add(30 * time.Second)
	for _, total := flaky.count(); total < 3*n && time.Now().Before(deadline); _, total = flaky.count() {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a fourth delivery, if egress made one, would show by now
	if _, total := flaky.count(); total != 3*n {
		t.Errorf("flaky destination got %d deliveries, want %d (two AEs then AA each)", total, 3*n)
	}
	waitFor("rejecting", rejecting, n)

	// The late destination comes up and receives every message.
	lnLate, err := net.Listen("tcp", lateAddr)
	if err != nil {
		t.Fatalf("reopening %s: %v", lateAddr, err)
	}
	late.serve(t, lnLate)
	waitFor("late", late, n)

	// Every AR became a dead letter in dlq.egress; AE retries left
	// delivery records with outcome "retry".
	dead := deadLetters(t, ctx, env.Kafka.Brokers, env.Serde, env.Kafka.DLQTopic("egress"), n)
	if len(dead) != n {
		t.Fatalf("%d dead letters, want %d", len(dead), n)
	}
	for _, d := range dead {
		if d.Reason != "receiver answered AR" || d.ErrorClass != canonical.ErrorPermanent || !strings.HasPrefix(d.ControlID, "C0") || d.MessageID == "" {
			t.Errorf("dead letter %+v", d)
		}
	}
	var retries, delivered atomic.Int64
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(env.Kafka.Topic("delivery")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pollCtx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	for delivered.Load() < 3*n && pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			d := rec.(*canonical.Delivery)
			switch {
			case d.Outcome == canonical.OutcomeDelivered:
				delivered.Add(1)
			case d.Outcome == canonical.OutcomeRetry && d.Destination == "flaky" && d.AckCode == "AE":
				retries.Add(1)
			}
		})
	}
	if delivered.Load() != 3*n || retries.Load() < 2*n {
		t.Errorf("delivery records: %d delivered, %d AE retries", delivered.Load(), retries.Load())
	}
}
