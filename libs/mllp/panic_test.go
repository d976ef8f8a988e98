package mllp

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestServerSurvivesAPanickingHandler: a handler that panics on one frame
// costs that frame's connection (closed without a reply, so the sender
// resends), not the process: other senders are still served, and the log
// names the panic's type but never its value, which may quote the frame.
func TestServerSurvivesAPanickingHandler(t *testing.T) {
	var logs bytes.Buffer
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
	if strings.Contains(logs.String(), "ZZTESTNAME") {
		t.Errorf("the panic's value was logged: %s", logs.String())
	}
	if !strings.Contains(logs.String(), "panic_type=string") {
		t.Errorf("the panic is not in the log: %s", logs.String())
	}
}
