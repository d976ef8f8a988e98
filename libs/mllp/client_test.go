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

// rawServer accepts connections and runs serve on each; it returns its
// address and a function that counts the connections accepted.
func rawServer(t *testing.T, serve func(n int, c net.Conn)) (string, func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), func() int { return int(conns.Load()) }
}

// A receiver that closes after each ACK: every message is sent once, on a
// new connection, and none fails (fault probe 3.6, D6).
func TestClientRedialsWhenPeerClosedPooledConnection(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	addr, conns := rawServer(t, func(_ int, c net.Conn) {
		f, err := NewReader(c, 0).ReadFrame()
		if err != nil {
			return
		}
		mu.Lock()
		got[string(f)]++
		mu.Unlock()
		_ = WriteFrame(c, append([]byte("ACK:"), f...))
		// and close (deferred)
	})
	c := NewClient(addr, WithAckTimeout(2*time.Second))
	defer c.Close()
	for i := 0; i < 5; i++ {
		msg := []byte{'m', byte('0' + i)}
		// Give the close time to arrive, as between two real messages.
		time.Sleep(20 * time.Millisecond)
		r, err := c.Send(context.Background(), msg)
		if err != nil || string(r) != "ACK:"+string(msg) {
			t.Fatalf("message %d: %q %v", i, r, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for m, n := range got {
		if n != 1 {
			t.Errorf("%s received %d times, want once (the stale connection was written to)", m, n)
		}
	}
	if len(got) != 5 || conns() != 5 {
		t.Errorf("%d messages on %d connections, want 5 on 5", len(got), conns())
	}
}

func TestPeekSocket(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer func(c *net.TCPConn)
		want sockState
	}{
		{"idle", func(*net.TCPConn) {}, sockIdle},
		{"data waiting", func(c *net.TCPConn) { _, _ = c.Write([]byte("late ACK")) }, sockData},
		{"closed", func(c *net.TCPConn) { _ = c.Close() }, sockClosed},
		{"reset", func(c *net.TCPConn) { _ = c.SetLinger(0); _ = c.Close() }, sockClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			tc.peer(server.(*net.TCPConn))
			time.Sleep(20 * time.Millisecond) // let the FIN, RST or bytes arrive
			st, ok := peekSocket(client)
			if !ok || st != tc.want {
				t.Fatalf("peekSocket = %v %v, want %v", st, ok, tc.want)
			}
			if tc.want == sockData {
				// Peeking consumed nothing.
				b := make([]byte, 8)
				if n, _ := client.Read(b); string(b[:n]) != "late ACK" {
					t.Errorf("peek consumed data: read %q", b[:n])
				}
			}
		})
	}
}

// The peer closes the reused connection just as the message goes out (it
// had closed it before reading): Send resends once on a new connection,
// and the caller sees one successful exchange.
func TestClientResendsOnceWhenReusedConnectionClosesSilently(t *testing.T) {
	var received atomic.Int32
	addr, conns := rawServer(t, func(n int, c net.Conn) {
		r := NewReader(c, 0)
		for i := 0; ; i++ {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			received.Add(1)
			if n == 1 && i == 1 {
				return // the second message on the first connection: closed without a reply
			}
			if err := WriteFrame(c, append([]byte("ACK:"), f...)); err != nil {
				return
			}
		}
	})
	c := NewClient(addr, WithAckTimeout(2*time.Second), WithBackoff(time.Hour, time.Hour))
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("one")); err != nil {
		t.Fatal(err)
	}
	r, err := c.Send(context.Background(), []byte("two"))
	if err != nil || string(r) != "ACK:two" {
		t.Fatalf("second message: %q %v", r, err)
	}
	if received.Load() != 3 || conns() != 2 {
		t.Errorf("%d frames on %d connections, want 3 on 2 (one resend on a fresh connection)", received.Load(), conns())
	}
	// On a fresh connection the same silence is a real failure: no resend.
	addr2, _ := rawServer(t, func(_ int, c net.Conn) { _, _ = NewReader(c, 0).ReadFrame() })
	c2 := NewClient(addr2, WithAckTimeout(2*time.Second))
	defer c2.Close()
	if _, err := c2.Send(context.Background(), []byte("x")); err == nil || errors.Is(err, ErrNotSent) {
		t.Errorf("peer closing a fresh connection after the write: err = %v, want a failure that is not ErrNotSent", err)
	}
}

func TestClientErrNotSent(t *testing.T) {
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	t.Run("dial refused", func(t *testing.T) {
		c := NewClient(closedPort())
		defer c.Close()
		_, err := c.Send(context.Background(), []byte("x"))
		if !errors.Is(err, ErrNotSent) {
			t.Fatalf("err = %v, want ErrNotSent", err)
		}
		// No backoff unless asked for: the next try dials at once.
		start := time.Now()
		if _, err := c.Send(context.Background(), []byte("x")); !errors.Is(err, ErrNotSent) {
			t.Fatalf("err = %v, want ErrNotSent", err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("second send waited %v: the client backs off on its own", d)
		}
	})
	t.Run("stale connection, receiver gone", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := NewServer(echoAck)
		go func() { _ = s.Serve(ln) }()
		c := NewClient(ln.Addr().String(), WithAckTimeout(2*time.Second))
		defer c.Close()
		if _, err := c.Send(context.Background(), []byte("x")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx) // closes the idle connection and the listener
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Send(context.Background(), []byte("y")); !errors.Is(err, ErrNotSent) {
			t.Fatalf("err = %v, want ErrNotSent", err)
		}
	})
	t.Run("ack timeout is not ErrNotSent", func(t *testing.T) {
		addr, _ := rawServer(t, func(_ int, c net.Conn) {
			_, _ = NewReader(c, 0).ReadFrame()
			time.Sleep(300 * time.Millisecond)
		})
		c := NewClient(addr, WithAckTimeout(100*time.Millisecond))
		defer c.Close()
		_, err := c.Send(context.Background(), []byte("x"))
		if !errors.Is(err, ErrAckTimeout) || errors.Is(err, ErrNotSent) {
			t.Fatalf("err = %v, want ErrAckTimeout only", err)
		}
	})
}

// Under TLS the peer's close comes as a close_notify record before the
// FIN: the client still sees the pooled connection is closed and redials,
// and a session ticket waiting on a live connection does not count as a
// close.
func TestClientRedialsClosedTLSConnection(t *testing.T) {
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var received atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := NewReader(c, 0)
				for {
					f, err := r.ReadFrame()
					if err != nil {
						return
					}
					received.Add(1)
					if err := WriteFrame(c, append([]byte("ACK:"), f...)); err != nil {
						return
					}
					if n == 1 {
						return // the first connection closes after its ACK
					}
				}
			}()
		}
	}()
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	c := NewClient(ln.Addr().String(), WithAckTimeout(2*time.Second),
		WithClientTLS(&tls.Config{InsecureSkipVerify: true})) //nolint:gosec // test against a self-signed cert
	defer c.Close()
	for i := 0; i < 4; i++ {
		time.Sleep(20 * time.Millisecond)
		msg := []byte{'t', byte('0' + i)}
		if r, err := c.Send(context.Background(), msg); err != nil || string(r) != "ACK:"+string(msg) {
			t.Fatalf("message %d: %q %v", i, r, err)
		}
	}
	if received.Load() != 4 || conns.Load() != 2 {
		t.Errorf("%d frames on %d connections, want 4 on 2 (one redial after the close, then reuse)", received.Load(), conns.Load())
	}
}
