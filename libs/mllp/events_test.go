package mllp

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// eventCounter counts ConnEvents.
type eventCounter struct {
	open     atomic.Int64
	mu       sync.Mutex
	rejected map[string]int
}

func (e *eventCounter) events() ConnEvents {
	e.rejected = map[string]int{}
	return ConnEvents{
		Opened: func() { e.open.Add(1) },
		Closed: func() { e.open.Add(-1) },
		Rejected: func(reason string) {
			e.mu.Lock()
			e.rejected[reason]++
			e.mu.Unlock()
		},
	}
}

func (e *eventCounter) rejections(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rejected[reason]
}

// TestMaxConnectionsClosesExcessAtOnce: the connection over the cap is
// closed at once (not held), counted, and a freed slot serves again.
func TestMaxConnectionsClosesExcessAtOnce(t *testing.T) {
	var ev eventCounter
	_, addr := startServer(t, echoAck, WithMaxConnections(2), WithConnEvents(ev.events()))
	var held []net.Conn
	for range 2 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		held = append(held, nc)
	}
	waitFor(t, "two open connections", func() bool { return ev.open.Load() == 2 })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	assertClosedSoon(t, extra)
	waitFor(t, "the refusal to be counted", func() bool { return ev.rejections(RejectMaxConnections) == 1 })
	if n := ev.open.Load(); n != 2 {
		t.Errorf("open connections %d, want 2 (a refused one is never opened)", n)
	}

	held[0].Close()
	waitFor(t, "the slot to free", func() bool { return ev.open.Load() == 1 })
	c := NewClient(addr, WithAckTimeout(3*time.Second))
	defer c.Close()
	if r, err := c.Send(context.Background(), []byte("MSH|again")); err != nil || string(r) != "ACK:MSH|again" {
		t.Fatalf("after a slot freed: %q %v", r, err)
	}
}

func TestRejectedConnectionsAreCountedByReason(t *testing.T) {
	var ev eventCounter
	_, addr := startServer(t, echoAck, WithConnEvents(ev.events()), WithMaxJunk(100))
	for _, in := range [][]byte{clientHello, []byte("GET / HTTP/1.1\r\n\r\n"), bytes.Repeat([]byte{'j'}, 101)} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(in); err != nil {
			t.Fatal(err)
		}
		assertClosedSoon(t, nc)
		nc.Close()
	}
	waitFor(t, "every connection to close", func() bool { return ev.open.Load() == 0 })
	for _, reason := range []string{RejectTLS, RejectHTTP, RejectNoStartBlock} {
		if n := ev.rejections(reason); n != 1 {
			t.Errorf("rejections for %s = %d, want 1", reason, n)
		}
	}
}

// TestOversizeReplyGetsTheResolvedLimit: with no limit set (0), the reply
// is told the default the reader enforces, never 0.
func TestOversizeReplyGetsTheResolvedLimit(t *testing.T) {
	limits := make(chan int, 1)
	_, addr := startServer(t, echoAck, WithMaxFrameSize(0), WithOversizeReply(func(_ []byte, limit int) []byte {
		limits <- limit
		return []byte("too big")
	}))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() { _ = WriteFrame(nc, bytes.Repeat([]byte("x"), DefaultMaxFrameSize+10)) }()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if r, err := NewReader(nc, 0).ReadFrame(); err != nil || string(r) != "too big" {
		t.Fatalf("reply %q %v", r, err)
	}
	if l := <-limits; l != DefaultMaxFrameSize {
		t.Errorf("limit %d, want %d", l, DefaultMaxFrameSize)
	}
}

// TestOversizeWithoutReplyCloses: by default (no HL7 known here) an
// oversize frame only closes the connection.
func TestOversizeWithoutReplyCloses(t *testing.T) {
	_, addr := startServer(t, echoAck, WithMaxFrameSize(64))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := WriteFrame(nc, bytes.Repeat([]byte("x"), 200)); err != nil {
		t.Fatal(err)
	}
	assertClosedSoon(t, nc)
}
