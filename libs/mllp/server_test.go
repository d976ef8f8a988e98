package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// echoAck replies "ACK:" + the frame.
var echoAck = HandlerFunc(func(_ context.Context, _ ConnInfo, f []byte) ([]byte, error) {
	return append([]byte("ACK:"), f...), nil
})

func startServer(t *testing.T, h Handler, opts ...ServerOption) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, opts...)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, ln.Addr().String()
}

func TestServerConcurrentConnections(t *testing.T) {
	_, addr := startServer(t, echoAck)
	const conns, msgs = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewClient(addr, WithAckTimeout(5*time.Second))
			defer c.Close()
			for j := 0; j < msgs; j++ {
				m := []byte(fmt.Sprintf("MSH|%d|%d", i, j))
				reply, err := c.Send(context.Background(), m)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(reply, append([]byte("ACK:"), m...)) {
					errs <- fmt.Errorf("reply %q to %q", reply, m)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	_, addr := startServer(t, echoAck, WithIdleTimeout(100*time.Millisecond))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1)
	if _, err := nc.Read(buf); err == nil {
		t.Fatal("idle connection was not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server kept the idle connection open")
	}
}

func TestServerReadTimeout(t *testing.T) {
	_, addr := startServer(t, echoAck, WithReadTimeout(100*time.Millisecond))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("\x0bMSH|never finished")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("half-sent frame did not time out")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("server kept waiting for the frame")
	}
}

func TestServerOversizeReplyAndClose(t *testing.T) {
	heads := make(chan []byte, 1)
	limits := make(chan int, 1)
	_, addr := startServer(t, echoAck, WithMaxFrameSize(1024), WithOversizeReply(func(head []byte, limit int) []byte {
		heads <- append([]byte(nil), head...)
		limits <- limit
		return []byte("AR")
	}))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	go func() { _ = WriteFrame(nc, append([]byte("MSH|big"), bytes.Repeat([]byte("x"), 100<<10)...)) }()
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := NewReader(nc, 0)
	reply, err := r.ReadFrame()
	if err != nil || string(reply) != "AR" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	if _, err := r.ReadFrame(); err == nil {
		t.Fatal("connection not closed after oversize frame")
	}
	if head := <-heads; !bytes.HasPrefix(head, []byte("MSH|big")) {
		t.Errorf("oversize head %q", head[:10])
	}
	if limit := <-limits; limit != 1024 {
		t.Errorf("oversize reply told limit %d, want 1024", limit)
	}
}

func TestServerHandlerErrorClosesWithoutReply(t *testing.T) {
	_, addr := startServer(t, HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
		return nil, errors.New("kafka unavailable")
	}))
	c := NewClient(addr, WithAckTimeout(2*time.Second))
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("MSH|1")); err == nil || errors.Is(err, ErrAckTimeout) {
		t.Fatalf("want the connection closed at once, got %v", err)
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	s, addr := startServer(t, HandlerFunc(func(ctx context.Context, _ ConnInfo, f []byte) ([]byte, error) {
		close(entered)
		<-release
		return []byte("done"), ctx.Err()
	}))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	c := NewClient(addr, WithAckTimeout(5*time.Second))
	defer c.Close()
	replyc := make(chan []byte, 1)
	go func() {
		r, err := c.Send(context.Background(), []byte("MSH|1"))
		if err != nil {
			t.Errorf("in-flight send: %v", err)
		}
		replyc <- r
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	// The idle connection is closed promptly while the busy one waits.
	_ = idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection left open during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned before the in-flight frame finished: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if r := <-replyc; string(r) != "done" {
		t.Errorf("reply %q", r)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// New connections are refused.
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	entered := make(chan struct{})
	s, addr := startServer(t, HandlerFunc(func(ctx context.Context, _ ConnInfo, f []byte) ([]byte, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	c := NewClient(addr)
	defer c.Close()
	go func() { _, _ = c.Send(context.Background(), []byte("MSH|1")) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
}

func TestShutdownWithoutServe(t *testing.T) {
	s := NewServer(echoAck)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestMaxConnections(t *testing.T) {
	_, addr := startServer(t, echoAck, WithMaxConnections(1))
	c1 := NewClient(addr)
	defer c1.Close()
	if _, err := c1.Send(context.Background(), []byte("a")); err != nil {
		t.Fatal(err)
	}
	c2 := NewClient(addr, WithAckTimeout(2*time.Second))
	defer c2.Close()
	if _, err := c2.Send(context.Background(), []byte("b")); err == nil {
		t.Fatal("second connection served beyond the cap")
	}
}

func TestTLS(t *testing.T) {
	cert := selfSigned(t)
	_, addr := startServer(t, HandlerFunc(func(_ context.Context, ci ConnInfo, f []byte) ([]byte, error) {
		if ci.TLS == nil || !ci.TLS.HandshakeComplete {
			return nil, errors.New("no TLS state")
		}
		return []byte("ok"), nil
	}), WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	c := NewClient(addr, WithClientTLS(&tls.Config{InsecureSkipVerify: true})) //nolint:gosec // test against a self-signed cert
	defer c.Close()
	if r, err := c.Send(context.Background(), []byte("MSH|1")); err != nil || string(r) != "ok" {
		t.Fatalf("%q %v", r, err)
	}
}
