package mllp

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServerSurvivesAPanickingHandler: a handler that panics on one frame
// costs that frame's connection (closed without a reply, so the sender
// resends), not the process: other senders are still served, and the log
// names the panic's type but never its value, which may quote the frame.
func TestServerSurvivesAPanickingHandler(t *testing.T) {
	var logs syncLog
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, f []byte) ([]byte, error) {
		if bytes.Contains(f, []byte("ZZTESTNAME")) {
			panic("cannot handle " + string(f))
		}
		return append([]byte("ACK:"), f...), nil
	})
	_, addr := startServer(t, h, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	bad := NewClient(addr, WithAckTimeout(2*time.Second))
	defer bad.Close()
	if reply, err := bad.Send(context.Background(), []byte("MSH|ZZTESTNAME")); err == nil {
		t.Fatalf("the panicking frame got a reply %q", reply)
	}
	good := NewClient(addr, WithAckTimeout(2*time.Second))
	defer good.Close()
	reply, err := good.Send(context.Background(), []byte("MSH|fine"))
	if err != nil || string(reply) != "ACK:MSH|fine" {
		t.Fatalf("after a panic: reply %q, %v", reply, err)
	}
	// The server logs the panic after it closed the connection: wait for
	// the line rather than race with it.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "panic_type=") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), "ZZTESTNAME") {
		t.Errorf("the panic's value was logged: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic_type=string") {
		t.Errorf("the panic is not in the log: %s", logs.String())
	}
}

// TestServerAnswersAPanicWithThePanicReply: with WithPanicReply the sender
// of the frame that tripped the handler gets the reply built from it, the
// connection serves its next frame, and new connections are served; a
// panic reply that panics itself closes the connection, as without one.
func TestServerAnswersAPanicWithThePanicReply(t *testing.T) {
	var logs syncLog
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, f []byte) ([]byte, error) {
		if bytes.Contains(f, []byte("ZZTESTNAME")) {
			panic("cannot handle " + string(f))
		}
		return append([]byte("ACK:"), f...), nil
	})
	reply := func(f []byte) []byte {
		if bytes.Contains(f, []byte("TWICE")) {
			panic("again " + string(f))
		}
		return []byte("ERROR:" + string(f[:4]))
	}
	_, addr := startServer(t, h, WithPanicReply(reply), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	c := NewClient(addr, WithAckTimeout(2*time.Second))
	defer c.Close()
	for i, tt := range []struct{ send, want string }{
		{"MSH|ZZTESTNAME", "ERROR:MSH|"},
		{"MSH|next on the same connection", "ACK:MSH|next on the same connection"},
		{"MSH|ZZTESTNAME again", "ERROR:MSH|"},
		{"MSH|fine", "ACK:MSH|fine"},
	} {
		got, err := c.Send(context.Background(), []byte(tt.send))
		if err != nil || string(got) != tt.want {
			t.Fatalf("frame %d: reply %q, %v; want %q", i+1, got, err, tt.want)
		}
	}
	// The panic reply panics: no reply, the connection closed, the
	// listener still serves.
	bad := NewClient(addr, WithAckTimeout(2*time.Second))
	defer bad.Close()
	if got, err := bad.Send(context.Background(), []byte("MSH|ZZTESTNAME TWICE")); err == nil {
		t.Fatalf("a panicking panic reply got a reply %q", got)
	}
	good := NewClient(addr, WithAckTimeout(2*time.Second))
	defer good.Close()
	if got, err := good.Send(context.Background(), []byte("MSH|fine")); err != nil || string(got) != "ACK:MSH|fine" {
		t.Fatalf("after two panics: reply %q, %v", got, err)
	}
	if out := logs.String(); strings.Contains(out, "ZZTESTNAME") || !strings.Contains(out, "panic_type=string") ||
		!strings.Contains(out, "mllp panic reply panicked") {
		t.Errorf("log: the panics' types without their values expected: %s", out)
	}
}

// syncLog is a log buffer the server's goroutines write while the test
// reads it.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
