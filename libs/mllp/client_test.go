package mllp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientAckTimeoutClosesConnection(t *testing.T) {
	var calls atomic.Int32
	_, addr := startServer(t, HandlerFunc(func(ctx context.Context, _ ConnInfo, f []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			time.Sleep(300 * time.Millisecond) // the ACK comes too late
		}
		return append([]byte("ACK:"), f...), nil
	}))
	c := NewClient(addr, WithAckTimeout(100*time.Millisecond), WithBackoff(time.Millisecond, time.Millisecond))
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("one")); !errors.Is(err, ErrAckTimeout) {
		t.Fatalf("err = %v, want ErrAckTimeout", err)
	}
	if c.Connected() {
		t.Fatal("connection kept after a timeout: the late ACK would answer the next message")
	}
	c2 := NewClient(addr, WithAckTimeout(2*time.Second))
	defer c2.Close()
	if r, err := c2.Send(context.Background(), []byte("two")); err != nil || string(r) != "ACK:two" {
		t.Fatalf("after timeout: %q %v", r, err)
	}
}

func TestClientReconnectsWithBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the first sends fail

	c := NewClient(addr, WithBackoff(50*time.Millisecond, 200*time.Millisecond), WithDialTimeout(time.Second))
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("x")); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	start := time.Now()
	if _, err := c.Send(context.Background(), []byte("x")); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Errorf("reconnect did not back off (waited %v)", waited)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.Send(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("backoff wait must honour the context: %v", err)
	}

	// The receiver comes back: the client reconnects.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	s := NewServer(echoAck)
	go func() { _ = s.Serve(ln2) }()
	defer s.Shutdown(context.Background())
	if r, err := c.Send(context.Background(), []byte("back")); err != nil || string(r) != "ACK:back" {
		t.Fatalf("after the receiver returned: %q %v", r, err)
	}
}

func TestClientPersistentConnection(t *testing.T) {
	var mu sync.Mutex
	seen := map[uint64]bool{}
	_, addr := startServer(t, HandlerFunc(func(_ context.Context, ci ConnInfo, f []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		seen[ci.ID] = true
		return []byte("ok"), nil
	}))
	c := NewClient(addr)
	defer c.Close()
	for i := 0; i < 10; i++ {
		if _, err := c.Send(context.Background(), []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Errorf("used %d connections for 10 messages", len(seen))
	}
	c.Close()
	if _, err := c.Send(context.Background(), []byte("m")); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
}

func TestClientRelease2(t *testing.T) {
	var calls atomic.Int32
	_, addr := startServer(t, HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
		if calls.Add(1) == 1 {
			return []byte{NAKByte}, nil
		}
		return []byte{ACKByte}, nil
	}))
	c := NewClient(addr, WithRelease2())
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("m")); !errors.Is(err, ErrNAK) {
		t.Fatalf("NAK: %v", err)
	}
	r, err := c.Send(context.Background(), []byte("m"))
	if err != nil || !IsCommitACK(r) {
		t.Fatalf("ACK: %q %v", r, err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
