// Package egresstest is the conformance suite every egress sender must
// pass (the way Watermill's tests.TestPubSub is for every Pub/Sub): one
// table of behaviours (delivery, order, ACK/NAK, reconnect, timeout,
// garbage, an unreachable peer, lifecycle) run against the sender and a
// fake receiver of its protocol that the suite steers.
//
// A protocol's test calls Run with a Factory that starts a Peer of that
// protocol and builds a sender to it:
//
//	func TestMLLPSenderConformance(t *testing.T) {
//		egresstest.Run(t, func(t egresstest.T, s egresstest.Settings) (egress.Sender, egresstest.Peer) {
//			p := egresstest.NewMLLPPeer(t)
//			d := egress.Destination{Name: "conformance", Address: p.Addr(), AckTimeout: s.AckTimeout}.WithDefaults()
//			snd, err := egress.MLLP().NewSender(d, slog.New(slog.DiscardHandler))
//			...
//			return snd, p
//		})
//	}
//
// The suite closes the sender at the end of each case.
package egresstest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/egress"
)

// T is what the suite needs of a test: *testing.T has it. It is an
// interface so that the suite's own tests can run it under a recorder and
// check that it fails a sender that breaks the contract.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Context() context.Context
}

// Settings are the destination settings a case needs; the factory builds
// its sender with them.
type Settings struct {
	// AckTimeout is the destination's ack_timeout.
	AckTimeout time.Duration
}

// Factory starts a peer of the protocol and builds a sender to it, for
// one case. Both are stopped by the test's cleanup; the suite closes the
// sender itself (and checks Close).
type Factory func(t T, s Settings) (egress.Sender, Peer)

// Answer is how the peer answers each message it receives.
type Answer int

const (
	// Accept is a positive acknowledgement (MLLP: AA naming the message).
	Accept Answer = iota
	// Error is a negative acknowledgement worth retrying (MLLP: AE).
	Error
	// Reject refuses the message for good (MLLP: AR).
	Reject
	// Garbage is a reply that is no acknowledgement at all; it quotes the
	// message (a broken peer echoing), which must not leak into a Reason.
	Garbage
	// Nothing: the message is read and never answered, the connection
	// left open.
	Nothing
)

// Behaviour is what the peer does with every later message.
type Behaviour struct {
	Answer Answer
	// CloseAfter closes the connection after each answer, as receivers
	// that take one message per connection do.
	CloseAfter bool
}

// Peer is a fake receiver of one protocol that the suite steers.
type Peer interface {
	// Behave sets what the peer does with every later message (Accept,
	// keeping the connection, until told otherwise).
	Behave(b Behaviour)
	// Received returns the payloads of the messages the peer got, in
	// arrival order, each time it got one (a resend shows twice).
	Received() [][]byte
	// Down closes the peer's listener and every connection, as a receiver
	// that is stopped; while it is down nothing can reach it.
	Down()
	// Up listens again on the same address.
	Up()
}

// Case timing. Most cases give the peer plenty of time to answer, so that
// a loaded machine does not turn a slow ACK into a failure; the timeout
// case uses a short one and checks it is kept.
const (
	ackTimeout      = 5 * time.Second
	shortAckTimeout = 500 * time.Millisecond
	// slack is how much later than its ack_timeout a sender may give up.
	slack = 2 * time.Second
	// unreachableWithin bounds how long a sender may take to say that a
	// peer that is down cannot be reached.
	unreachableWithin = 5 * time.Second
)

// marker is in every message the suite sends (a patient name): a Reason
// quoting it would leak message content.
const marker = "ZZCONFORMANCE"

// testCase is one behaviour of the contract.
type testCase struct {
	name     string
	settings Settings
	run      func(t T, c *conn)
}

// cases is the suite. Each case says in its failures which part of the
// contract (sender.go) the sender broke.
var cases = []testCase{
	{"Delivery", Settings{AckTimeout: ackTimeout}, testDelivery},
	{"OrderPerKey", Settings{AckTimeout: ackTimeout}, testOrderPerKey},
	{"AckNak", Settings{AckTimeout: ackTimeout}, testAckNak},
	{"Reconnect", Settings{AckTimeout: ackTimeout}, testReconnect},
	{"Timeout", Settings{AckTimeout: shortAckTimeout}, testTimeout},
	{"Garbage", Settings{AckTimeout: ackTimeout}, testGarbage},
	{"Unreachable", Settings{AckTimeout: ackTimeout}, testUnreachable},
	{"Lifecycle", Settings{AckTimeout: ackTimeout}, testLifecycle},
}

// Run runs the conformance suite against the senders f builds, one
// subtest per behaviour.
func Run(t *testing.T, f Factory) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCase(t, c, f) })
	}
}

// runCase sets up one case and runs it; the sender is closed at the end.
func runCase(t T, c testCase, f Factory) {
	snd, peer := f(t, c.settings)
	cn := &conn{t: t, snd: snd, peer: peer, settings: c.settings}
	t.Cleanup(func() {
		if !cn.closed {
			if err := snd.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	c.run(t, cn)
}

// conn is one case's sender and peer with the suite's helpers.
type conn struct {
	t        T
	snd      egress.Sender
	peer     Peer
	settings Settings
	n        int
	closed   bool
}

// msg returns a new message of ordering key key: a valid HL7 v2.5 ADT^A01
// with its own control ID.
func (c *conn) msg(key string) *canonical.Out {
	c.n++
	ctl := fmt.Sprintf("CONF%s%04d", key, c.n)
	payload := fmt.Sprintf("MSH|^~\\&|HIS|HOSP|LIS|LAB|20261201101500||ADT^A01^ADT_A01|%s|P|2.5\r"+
		"PID|1||%s^^^HOSP^MR||%s^PATIENT\r", ctl, key, marker)
	return &canonical.Out{MessageID: "01CONF" + ctl, Interface: "conformance", ReceivedAt: time.Now(),
		OrderingKey: key, ControlID: ctl, Destination: "conformance", Route: "all",
		ContentType: canonical.ContentTypeV2, Payload: []byte(payload)}
}

// send sends m and checks what holds for every result: a failure has a
// class label, and no reason quotes the message.
func (c *conn) send(m *canonical.Out) (egress.Result, time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), c.settings.AckTimeout+unreachableWithin+slack)
	defer cancel()
	start := time.Now()
	r := c.snd.Send(ctx, m)
	took := time.Since(start)
	if (r.Verdict == egress.Failed || r.Verdict == egress.Rejected) && r.Class == "" {
		c.t.Errorf("%s: verdict %v without a Class (the failure reason label)", m.ControlID, r.Verdict)
	}
	if bytes.Contains([]byte(r.Reason), []byte(marker)) {
		c.t.Errorf("%s: Reason %q quotes the message", m.ControlID, r.Reason)
	}
	return r, took
}

// expect sends m and fails the case unless the verdict is want.
func (c *conn) expect(m *canonical.Out, want egress.Verdict, why string) egress.Result {
	c.t.Helper()
	r, _ := c.send(m)
	if r.Verdict != want {
		c.t.Errorf("%s: verdict %v (class %q, reason %q), want %v: %s", m.ControlID, r.Verdict, r.Class, r.Reason, want, why)
	}
	return r
}

// received fails the case unless the peer got exactly want, in order.
func (c *conn) received(why string, want ...*canonical.Out) {
	c.t.Helper()
	got := c.peer.Received()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = bytes.Equal(got[i], want[i].Payload)
	}
	if !same {
		var ids []string
		for _, w := range want {
			ids = append(ids, w.ControlID)
		}
		c.t.Errorf("the peer received %d messages, want exactly %v in that order: %s", len(got), ids, why)
	}
}

func testDelivery(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Accept})
	var sent []*canonical.Out
	for range 3 {
		m := c.msg("A")
		sent = append(sent, m)
		r := c.expect(m, egress.Delivered, "the peer accepted it")
		if !r.Answered || len(r.Reply) == 0 {
			t.Errorf("%s: delivered with Answered %v and a %d-byte Reply: the peer's answer must be returned", m.ControlID, r.Answered, len(r.Reply))
		}
		if r.Class != "" {
			t.Errorf("%s: delivered with failure class %q", m.ControlID, r.Class)
		}
	}
	c.received("each message delivered once", sent...)
}

func testOrderPerKey(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Accept})
	var sent []*canonical.Out
	for i := range 12 {
		m := c.msg(string(rune('A' + i%3)))
		sent = append(sent, m)
		c.expect(m, egress.Delivered, "the peer accepted it")
	}
	c.received("a sender delivers in the order of its Send calls", sent...)
}

func testAckNak(t T, c *conn) {
	steps := []struct {
		answer Answer
		want   egress.Verdict
		why    string
	}{
		{Accept, egress.Delivered, "a positive ACK is delivery"},
		{Error, egress.Failed, "a negative ACK (AE) is a failed attempt, retried"},
		{Reject, egress.Rejected, "a reject (AR) is dead-lettered at once"},
		{Accept, egress.Delivered, "a NAK must leave the sender usable"},
	}
	var sent []*canonical.Out
	for _, s := range steps {
		c.peer.Behave(Behaviour{Answer: s.answer})
		m := c.msg("A")
		sent = append(sent, m)
		r := c.expect(m, s.want, s.why)
		if s.want != egress.Delivered && (!r.Answered || len(r.Reply) == 0) {
			t.Errorf("%s: a NAK with Answered %v and a %d-byte Reply: the peer's answer must be returned", m.ControlID, r.Answered, len(r.Reply))
		}
	}
	c.received("a sender never resends on its own after a NAK", sent...)
}

func testReconnect(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Accept})
	m1 := c.msg("A")
	c.expect(m1, egress.Delivered, "the peer accepted it")
	c.peer.Down()
	c.peer.Up()
	m2 := c.msg("A")
	c.expect(m2, egress.Delivered, "the peer restarted between two messages: the sender must reconnect by itself")
	c.peer.Behave(Behaviour{Answer: Accept, CloseAfter: true})
	sent := []*canonical.Out{m1, m2}
	for range 4 {
		m := c.msg("A")
		sent = append(sent, m)
		c.expect(m, egress.Delivered, "the peer closes the connection after each answer: the next message goes on a new one")
	}
	c.received("reconnecting sends each message once", sent...)
}

func testTimeout(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Nothing})
	m1 := c.msg("A")
	r, took := c.send(m1)
	if r.Verdict != egress.Failed {
		t.Errorf("%s: verdict %v, want failed: the peer read the message and never answered", m1.ControlID, r.Verdict)
	}
	if to := c.settings.AckTimeout; took < to*9/10 || took > to+slack {
		t.Errorf("%s: gave up after %v with ack_timeout %v: must wait the timeout, and not much longer", m1.ControlID, took, to)
	}
	c.peer.Behave(Behaviour{Answer: Accept})
	m2 := c.msg("A")
	c.expect(m2, egress.Delivered, "after a timeout the sender must deliver the next message")
	c.received("the unanswered message arrived once, then the next", m1, m2)
}

func testGarbage(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Garbage})
	m1 := c.msg("A")
	r := c.expect(m1, egress.Failed, "a reply that is no acknowledgement is not delivery")
	if !r.Answered || len(r.Reply) == 0 {
		t.Errorf("%s: garbage answer with Answered %v and a %d-byte Reply: the peer answered (it is reachable)", m1.ControlID, r.Answered, len(r.Reply))
	}
	c.peer.Behave(Behaviour{Answer: Accept})
	m2 := c.msg("A")
	c.expect(m2, egress.Delivered, "after garbage the sender must deliver the next message")
	c.received("the garbage-answered message arrived once, then the next", m1, m2)
}

func testUnreachable(t T, c *conn) {
	c.peer.Behave(Behaviour{Answer: Accept})
	c.peer.Down()
	m := c.msg("A")
	r, took := c.send(m)
	if r.Verdict != egress.NotSent {
		t.Errorf("%s: verdict %v (class %q), want not sent: the peer is down, nothing reached it", m.ControlID, r.Verdict, r.Class)
	}
	if took > unreachableWithin {
		t.Errorf("%s: took %v to find the peer down, want under %v", m.ControlID, took, unreachableWithin)
	}
	c.peer.Up()
	c.expect(m, egress.Delivered, "the peer is back")
	c.received("a message not sent did not arrive; sent again, it did", m)
}

func testLifecycle(t T, c *conn) {
	// A sender connects lazily: built while the peer is up, it has sent
	// nothing, and closing it unused is clean.
	c.closed = true
	if err := c.snd.Close(); err != nil {
		t.Errorf("Close of an unused sender: %v", err)
	}
	c.received("an unused sender sends nothing")
}
