package e2e

// Egress against receivers that misbehave the way real ones do (fault
// probe 2026-12, section 3): an ACK naming another message (D5), a receiver
// that closes after each ACK (D6), one message answered AE for ever while
// other patients wait behind it (D8), and a destination that is down for a
// while (the egress retry contract: an outage never dead-letters).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/route"
)

// sinkReply is what a faulty sink does with one message.
type sinkReply struct {
	code   string // MSA-1; "" with garbage or none
	msa2   string // MSA-2 when it must not be the message's MSH-10
	close  bool   // close the connection after the reply
	silent bool   // no reply at all (the sender's ACK timeout passes)
}

// faultySink is an MLLP receiver written for these tests: it answers each
// frame as answer says and records every arrival in order.
type faultySink struct {
	ln     net.Listener
	answer func(ctl string, nth int) sinkReply

	mu      sync.Mutex
	arrived []string // control IDs in arrival order, resends included
	nth     map[string]int
	conns   int
	open    map[net.Conn]bool
	wg      sync.WaitGroup
}

// startFaultySink listens on addr ("" for any free port).
func startFaultySink(t *testing.T, addr string, answer func(ctl string, nth int) sinkReply) *faultySink {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &faultySink{ln: ln, answer: answer, nth: map[string]int{}, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.open[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *faultySink) addr() string { return s.ln.Addr().String() }

func (s *faultySink) serve(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := mllp.NewReader(c, 0)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return
		}
		m, err := hl7v2.Parse(f)
		if err != nil {
			return
		}
		ctl := m.ControlID()
		s.mu.Lock()
		s.arrived = append(s.arrived, ctl)
		s.nth[ctl]++
		n := s.nth[ctl]
		s.mu.Unlock()
		rep := s.answer(ctl, n)
		if rep.silent {
			continue
		}
		var out []byte
		switch {
		case rep.code == "":
			out = []byte("NOT HL7")
		default:
			msa2 := ctl
			if rep.msa2 != "" {
				msa2 = rep.msa2
			}
			out = fmt.Appendf(nil, "MSH|^~\\&|SINK|SINK|||20261201101500||ACK^A01^ACK|S%s-%d|P|%s\rMSA|%s|%s\r",
				ctl, n, m.Version(), rep.code, msa2)
		}
		if err := mllp.WriteFrame(c, out); err != nil {
			return
		}
		if rep.close {
			return
		}
	}
}

// stop closes the listener and every connection, as a receiver that goes
// down does.
func (s *faultySink) stop() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *faultySink) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.arrived...)
}

func (s *faultySink) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// waitArrived waits until cond holds for the arrival log.
func (s *faultySink) waitArrived(t *testing.T, within time.Duration, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.log()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; arrivals %v", what, within, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func distinct(log []string) map[string]int {
	n := map[string]int{}
	for _, c := range log {
		n[c]++
	}
	return n
}

// sendEach sends the messages in order on one connection and requires AA
// for each; it returns their control IDs.
func sendEach(t *testing.T, ctx context.Context, addr string, msgs ...string) []string {
	t.Helper()
	c := mllp.NewClient(addr, mllp.WithAckTimeout(20*time.Second))
	defer c.Close()
	var ctls []string
	for _, msg := range msgs {
		m, err := hl7v2.Parse([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		reply, err := c.Send(ctx, []byte(msg))
		if err != nil {
			t.Fatalf("send %s: %v", m.ControlID(), err)
		}
		if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckAccept {
			t.Fatalf("ACK for %s: %v %+v", m.ControlID(), err, ack)
		}
		ctls = append(ctls, m.ControlID())
	}
	return ctls
}

// readDeliveries reads the delivery topic until want records of dest are
// there (or 20 s pass).
func readDeliveries(t *testing.T, ctx context.Context, env *kafkatest.Env, dest string, want int) []*canonical.Delivery {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(env.Kafka.Topic("delivery")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pollCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out []*canonical.Delivery
	for len(out) < want && pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			if d := rec.(*canonical.Delivery); d.Destination == dest {
				out = append(out, d)
			}
		})
	}
	return out
}

// metricValue returns the value of the sample of name whose labels include
// every pair given, and whether there is one.
func metricValue(t *testing.T, tel *telemetry.Telemetry, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// D5: an ACK whose MSA-2 names another message is not delivery. It is
// retried on a fresh connection, counts as an attempt and shows in the
// delivery record and a metric.
func TestEgressWrongControlIDIsNotDelivery(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tel := telemetry.New(nil)
	// Each message is first answered AA naming another message (a late ACK
	// of a desynchronised stream), then correctly.
	sink := startFaultySink(t, "", func(_ string, nth int) sinkReply {
		if nth == 1 {
			return sinkReply{code: hl7v2.AckAccept, msa2: "SOMEOTHERMSG"}
		}
		return sinkReply{code: hl7v2.AckAccept}
	})
	in := startPipeline(t, ctx, env, pipeline{Interface: "in", Telemetry: tel,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: sink.addr(),
			Retry: egress.Retry{MaxAttempts: 5, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}}}})

	ctls := sendEach(t, ctx, in.Addr("in"), message("ADT", 1, 0), message("ADT", 2, 0), message("ADT", 3, 0))
	got := sink.waitArrived(t, 30*time.Second, "every message resent after its mismatched ACK", func(l []string) bool {
		n := distinct(l)
		for _, c := range ctls {
			if n[c] < 2 {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a third copy, if egress sent one, would show by now
	for c, n := range distinct(sink.log()) {
		if n != 2 {
			t.Errorf("%s arrived %d times, want 2 (the mismatched ACK, then the right one)", c, n)
		}
	}
	_ = got
	// A mismatch closes the connection: the resend comes on a new one.
	if n := sink.connections(); n < 1+len(ctls) {
		t.Errorf("%d connections for %d mismatched ACKs: the connection was not closed after a mismatch", n, len(ctls))
	}
	recs := readDeliveries(t, ctx, env, "lis", 2*len(ctls))
	byCtl := map[string][]*canonical.Delivery{}
	for _, d := range recs {
		byCtl[d.ControlID] = append(byCtl[d.ControlID], d)
	}
	for _, c := range ctls {
		ds := byCtl[c]
		if len(ds) != 2 {
			t.Fatalf("%s: %d delivery records, want 2: %+v", c, len(ds), ds)
		}
		first, second := ds[0], ds[1]
		if first.Outcome != canonical.OutcomeRetry || first.AckCode != hl7v2.AckAccept || first.Attempt != 1 ||
			!strings.Contains(first.Error, "MSA-2") {
			t.Errorf("%s: first attempt recorded %+v, want a retry showing the MSA-2 mismatch", c, first)
		}
		if second.Outcome != canonical.OutcomeDelivered || second.Attempt != 2 {
			t.Errorf("%s: second attempt recorded %+v, want delivered at attempt 2", c, second)
		}
	}
	if v, _ := metricValue(t, tel, "hl7bus_egress_attempt_failures_total", "destination", "lis", "reason", "ack_mismatch"); v != float64(len(ctls)) {
		t.Errorf("hl7bus_egress_attempt_failures_total{reason=ack_mismatch} = %v, want %d", v, len(ctls))
	}
}

// D6: a receiver that closes after each ACK costs no attempt: with
// max_attempts 1 every message is delivered once, none dead-lettered.
func TestEgressReceiverClosingAfterEachAck(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sink := startFaultySink(t, "", func(string, int) sinkReply { return sinkReply{code: hl7v2.AckAccept, close: true} })
	in := startPipeline(t, ctx, env, pipeline{Interface: "in",
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lab2"}}},
		Destinations: []egress.Destination{{Name: "lab2", Protocol: "mllp", Address: sink.addr(), AckTimeout: 3 * time.Second,
			Retry: egress.Retry{MaxAttempts: 1, InitialBackoff: 500 * time.Millisecond}}}})

	var msgs []string
	for i := 0; i < 6; i++ {
		msgs = append(msgs, message("ADT", 10+i%2, i)) // two patients, so two keys on one or two partitions
	}
	ctls := sendEach(t, ctx, in.Addr("in"), msgs...)
	sink.waitArrived(t, 30*time.Second, "every message delivered", func(l []string) bool { return len(distinct(l)) == len(ctls) })
	time.Sleep(300 * time.Millisecond)
	for c, n := range distinct(sink.log()) {
		if n != 1 {
			t.Errorf("%s arrived %d times, want once", c, n)
		}
	}
	recs := readDeliveries(t, ctx, env, "lab2", len(ctls))
	for _, d := range recs {
		if d.Outcome != canonical.OutcomeDelivered || d.Attempt != 1 {
			t.Errorf("delivery record %+v, want delivered at attempt 1", d)
		}
	}
	if len(recs) != len(ctls) {
		t.Errorf("%d delivery records, want %d", len(recs), len(ctls))
	}
	if dead := deadLettersWithin(t, ctx, env, 2*time.Second); len(dead) != 0 {
		t.Errorf("%d dead letters for a healthy destination: %+v", len(dead), dead)
	}
}

// deadLettersWithin reads dlq.egress for a short while and returns what is
// there (for checks that there is none).
func deadLettersWithin(t *testing.T, ctx context.Context, env *kafkatest.Env, d time.Duration) []*canonical.DeadLetter {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(env.Kafka.DLQTopic("egress")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var dead []*canonical.DeadLetter
	for c.Err() == nil {
		fs := reader.PollFetches(c)
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			dead = append(dead, rec.(*canonical.DeadLetter))
		})
		if fs.IsClientClosed() || errors.Is(c.Err(), context.DeadlineExceeded) {
			break
		}
	}
	return dead
}

// D8 and the old max_attempts 0 default: one message answered AE for ever
// holds back only the later messages of its own patient. Other patients on
// the same partition are delivered meanwhile; the poison message
// dead-letters after its attempts, and then its patient's next message is
// delivered, in order. It holds with one connection (the default: the
// held message waits on its timer while the connection serves other
// patients) and with several.
func TestEgressPoisonMessageHoldsOnlyItsKey(t *testing.T) {
	for _, conns := range []int{0, 3} {
		t.Run(fmt.Sprintf("connections=%d", conns), func(t *testing.T) { poisonHoldsOnlyItsKey(t, conns) })
	}
}

func poisonHoldsOnlyItsKey(t *testing.T, conns int) {
	env := kafkatest.New(t)
	env.Kafka.Partitions = 1 // every patient on one partition
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	poison, later := "C001-0000", "C001-0001"
	sink := startFaultySink(t, "", func(ctl string, _ int) sinkReply {
		if ctl == poison {
			return sinkReply{code: hl7v2.AckError}
		}
		return sinkReply{code: hl7v2.AckAccept}
	})
	const attempts = 4
	in := startPipeline(t, ctx, env, pipeline{Interface: "in",
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: sink.addr(), Connections: conns,
			Retry: egress.Retry{MaxAttempts: attempts, InitialBackoff: 300 * time.Millisecond, MaxBackoff: 600 * time.Millisecond}}}})

	sendEach(t, ctx, in.Addr("in"), message("ADT", 1, 0), message("ADT", 2, 0), message("ADT", 2, 1),
		message("ADT", 1, 1), message("ADT", 2, 2), message("ADT", 3, 0))
	others := []string{"C002-0000", "C002-0001", "C002-0002", "C003-0000"}
	log := sink.waitArrived(t, 60*time.Second, "the poison message's patient delivered after it", func(l []string) bool {
		n := distinct(l)
		return n[later] == 1
	})
	pos := func(ctl string, nth int) int {
		seen := 0
		for i, c := range log {
			if c == ctl {
				seen++
				if seen == nth {
					return i
				}
			}
		}
		return -1
	}
	n := distinct(log)
	if n[poison] != attempts {
		t.Fatalf("the poison message was sent %d times, want %d: %v", n[poison], attempts, log)
	}
	lastPoison := pos(poison, attempts)
	for _, c := range others {
		if p := pos(c, 1); p < 0 || p > lastPoison {
			t.Errorf("%s arrived at %d, after the poison message's last attempt (%d): it was held by another patient's message: %v", c, p, lastPoison, log)
		}
	}
	if p := pos(later, 1); p < lastPoison {
		t.Errorf("%s (same patient) arrived before the poison message was dead-lettered: order lost: %v", later, log)
	}
	// Patient 2's own order is kept.
	if !(pos("C002-0000", 1) < pos("C002-0001", 1) && pos("C002-0001", 1) < pos("C002-0002", 1)) {
		t.Errorf("patient 2's messages out of order: %v", log)
	}
	dead := deadLetters(t, ctx, env.Kafka.Brokers, env.Serde, env.Kafka.DLQTopic("egress"), 1)
	if len(dead) != 1 || dead[0].ControlID != poison || dead[0].Reason != "receiver answered AE" || dead[0].Attempts != attempts {
		t.Fatalf("dead letters %+v, want the poison message after %d attempts", dead, attempts)
	}
}

// The egress retry contract: a destination that cannot be reached counts no
// attempt and never dead-letters; it shows as down, and when it comes back
// delivery resumes at once, not after a message backoff. delivery.latency_ms
// is the send-to-ACK time of the attempt, never the wait (D17).
func TestEgressOutageNeverDeadLetters(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tel := telemetry.New(nil)
	addr := freeAddr(t) // nothing listens there yet
	in := startPipeline(t, ctx, env, pipeline{Interface: "in", Telemetry: tel,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lab"}}},
		// A message backoff far longer than the test: resuming must not wait for it.
		Destinations: []egress.Destination{{Name: "lab", Protocol: "mllp", Address: addr, AckTimeout: 2 * time.Second,
			Retry: egress.Retry{MaxAttempts: 1, InitialBackoff: time.Minute, MaxBackoff: time.Minute}}}})

	var msgs []string
	for i := 0; i < 5; i++ {
		msgs = append(msgs, message("ORU", 20+i, 0))
	}
	ctls := sendEach(t, ctx, in.Addr("in"), msgs...)
	// Down for a while: more than any single retry a message would get.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, ok := metricValue(t, tel, "hl7bus_destination_up", "destination", "lab"); ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hl7bus_destination_up{destination=lab} never went to 0 while the destination was down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if dead := deadLettersWithin(t, ctx, env, time.Second); len(dead) != 0 {
		t.Fatalf("%d dead letters while the destination was down: an outage must never dead-letter", len(dead))
	}
	if v, _ := metricValue(t, tel, "hl7bus_egress_attempts_total", "destination", "lab"); v != 0 {
		t.Errorf("%v attempts counted while the destination was down, want 0", v)
	}
	up := time.Now()
	sink := startFaultySink(t, addr, func(string, int) sinkReply { return sinkReply{code: hl7v2.AckAccept} })
	sink.waitArrived(t, 30*time.Second, "every message delivered after the outage", func(l []string) bool { return len(distinct(l)) == len(ctls) })
	if took := time.Since(up); took > 5*time.Second {
		t.Errorf("delivery resumed %v after the destination came back, want within a few seconds", took)
	}
	recs := readDeliveries(t, ctx, env, "lab", len(ctls))
	if len(recs) != len(ctls) {
		t.Fatalf("%d delivery records, want %d: %+v", len(recs), len(ctls), recs)
	}
	for _, d := range recs {
		if d.Outcome != canonical.OutcomeDelivered || d.Attempt != 1 {
			t.Errorf("delivery record %+v, want delivered at attempt 1", d)
		}
		if d.LatencyMS > 1000 {
			t.Errorf("%s: latency_ms %v includes the outage, want the send-to-ACK time", d.ControlID, d.LatencyMS)
		}
	}
	if dead := deadLettersWithin(t, ctx, env, time.Second); len(dead) != 0 {
		t.Errorf("%d dead letters after the outage", len(dead))
	}
	if v, _ := metricValue(t, tel, "hl7bus_destination_up", "destination", "lab"); v != 1 {
		t.Errorf("hl7bus_destination_up{destination=lab} = %v after the destination came back", v)
	}
}

// D17 and destination_up: latency_ms is the time of one exchange, never a
// reconnect backoff (the MLLP client's own backoff outlived a message's
// attempts and was counted in the next message's first one); a
// destination that answers, even garbage, is up.
func TestEgressLatencyAndUpPerAttempt(t *testing.T) {
	env := kafkatest.New(t)
	env.Kafka.Partitions = 1 // the two messages in the order sent
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tel := telemetry.New(nil)
	// The first message is never answered; the second gets garbage.
	silent := "C030-0000"
	sink := startFaultySink(t, "", func(ctl string, _ int) sinkReply {
		if ctl == silent {
			return sinkReply{silent: true}
		}
		return sinkReply{}
	})
	const ackTimeout, backoff = 300 * time.Millisecond, 700 * time.Millisecond
	in := startPipeline(t, ctx, env, pipeline{Interface: "in", Telemetry: tel,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: sink.addr(), AckTimeout: ackTimeout,
			Retry: egress.Retry{MaxAttempts: 2, InitialBackoff: backoff, MaxBackoff: backoff}}}})
	sendEach(t, ctx, in.Addr("in"), message("ADT", 30, 0), message("ADT", 31, 0))
	recs := readDeliveries(t, ctx, env, "lis", 4)
	if len(recs) != 4 {
		t.Fatalf("%d delivery records, want 4: %+v", len(recs), recs)
	}
	for _, d := range recs {
		t.Logf("%s attempt %d %s latency_ms %.1f", d.ControlID, d.Attempt, d.Outcome, d.LatencyMS)
		if d.LatencyMS >= float64(backoff.Milliseconds()) {
			t.Errorf("%s attempt %d: latency_ms %v includes a wait (ack timeout %v, backoff %v)", d.ControlID, d.Attempt, d.LatencyMS, ackTimeout, backoff)
		}
		if d.Attempt == 2 && d.Outcome != canonical.OutcomeDeadLettered {
			t.Errorf("%s: last attempt %+v, want dead-lettered", d.ControlID, d)
		}
	}
	deadLetters(t, ctx, env.Kafka.Brokers, env.Serde, env.Kafka.DLQTopic("egress"), 2)
	// The last answer was garbage: still reachable.
	if v, ok := metricValue(t, tel, "hl7bus_destination_up", "destination", "lis"); !ok || v != 1 {
		t.Errorf("hl7bus_destination_up{destination=lis} = %v (%v) after garbage answers, want 1: up means reachable", v, ok)
	}
	if n := len(sink.log()); n != 4 {
		t.Errorf("the sink got %d copies, want 4", n)
	}
}

// Probe 3.8: a receiver restarted between messages. The pooled connection
// is dead; with max_attempts 1 the next message is still delivered at its
// first attempt, and the messages sent while it was down follow when it is
// back.
func TestEgressReceiverRestartedBetweenMessages(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	accept := func(string, int) sinkReply { return sinkReply{code: hl7v2.AckAccept} }
	sink := startFaultySink(t, "", accept)
	addr := sink.addr()
	in := startPipeline(t, ctx, env, pipeline{Interface: "in",
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}},
		Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: addr, AckTimeout: 3 * time.Second,
			Retry: egress.Retry{MaxAttempts: 1}}}})
	first := sendEach(t, ctx, in.Addr("in"), message("ADT", 40, 0))
	sink.waitArrived(t, 30*time.Second, "the first message", func(l []string) bool { return len(l) == 1 })
	sink.stop()
	later := sendEach(t, ctx, in.Addr("in"), message("ADT", 40, 1), message("ADT", 41, 0))
	time.Sleep(1500 * time.Millisecond) // egress finds the destination gone meanwhile
	sink2 := startFaultySink(t, addr, accept)
	sink2.waitArrived(t, 30*time.Second, "the messages sent while it was down", func(l []string) bool { return len(distinct(l)) == len(later) })
	recs := readDeliveries(t, ctx, env, "lis", len(first)+len(later))
	for _, d := range recs {
		if d.Outcome != canonical.OutcomeDelivered || d.Attempt != 1 {
			t.Errorf("delivery record %+v, want delivered at attempt 1", d)
		}
	}
	if len(recs) != len(first)+len(later) {
		t.Errorf("%d delivery records, want %d", len(recs), len(first)+len(later))
	}
	if dead := deadLettersWithin(t, ctx, env, time.Second); len(dead) != 0 {
		t.Errorf("%d dead letters after a receiver restart", len(dead))
	}
}

// A second egress instance joins the destination's group mid-flow and
// leaves again: partitions move both ways (the revocation path), every
// message is delivered and each patient's messages arrive in order.
func TestEgressRebalanceKeepsOrder(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sink := startFaultySink(t, "", func(string, int) sinkReply {
		time.Sleep(25 * time.Millisecond) // a receiver that takes its time, so the handovers happen mid-flow
		return sinkReply{code: hl7v2.AckAccept}
	})
	dests := []egress.Destination{{Name: "lis", Protocol: "mllp", Address: sink.addr(), Connections: 2,
		Retry: egress.Retry{InitialBackoff: 20 * time.Millisecond}}}
	in := startPipeline(t, ctx, env, pipeline{Interface: "in", Destinations: dests,
		Rules: []route.Rule{{Name: "all", Destinations: []string{"lis"}}}})

	var sent map[string]string
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		sent = sendAll(t, ctx, in.Addr("in"), 3, 5, 8)
	}()
	// The second instance joins once delivery is under way, and leaves.
	sink.waitArrived(t, 30*time.Second, "delivery under way", func(l []string) bool { return len(l) >= 10 })
	bctx, bstop := context.WithCancel(ctx)
	bdone := make(chan error, 1)
	btel := telemetry.New(nil)
	go func() {
		bdone <- egress.New(egress.Config{Destinations: dests, Telemetry: btel}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler)).Run(bctx)
	}()
	// Until the second instance has delivered some (it got partitions).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, _ := metricValue(t, btel, "hl7bus_egress_attempts_total", "destination", "lis", "outcome", canonical.OutcomeDelivered); v >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second egress instance never delivered: no partitions moved to it")
		}
	}
	bstop()
	if err := <-bdone; err != nil {
		t.Errorf("second egress: %v", err)
	}
	<-sendDone
	log := sink.waitArrived(t, 60*time.Second, "every message delivered", func(l []string) bool { return len(distinct(l)) == len(sent) })
	first := map[string]bool{}
	last := map[string]int{}
	dups := 0
	for _, ctl := range log {
		if first[ctl] {
			dups++
			continue
		}
		first[ctl] = true
		var p, n int
		fmt.Sscanf(ctl, "C%03d-%04d", &p, &n)
		if prev, ok := last[fmt.Sprint(p)]; ok && n <= prev {
			t.Errorf("patient %d: message %d arrived after %d", p, n, prev)
		}
		last[fmt.Sprint(p)] = n
	}
	t.Logf("%d messages delivered across the handovers, %d delivered twice", len(sent), dups)
}
