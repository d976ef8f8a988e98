package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clientHello is the start of a TLS 1.2 ClientHello record whose random
// happens to hold a start block and, later, an end block: a framer that
// skips to the start block would read a "message" out of it.
var clientHello = append([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
	0x11, 0x0b, 0x4d, 0x53, 0x48, 0x7c, 0x1c, 0x0d}, bytes.Repeat([]byte{0x2a}, 150)...)

// assertClosedSoon fails unless the server closes nc within a second,
// without sending anything.
func assertClosedSoon(t *testing.T, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	n, err := nc.Read(buf)
	if err == nil {
		t.Fatalf("server answered %q instead of closing", buf[:n])
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("connection still open after 1s")
	}
}

func TestServerClosesNonMLLPAtOnce(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"TLS ClientHello with start and end blocks", clientHello},
		{"HTTP GET", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"HTTP POST", []byte("POST /fhir HTTP/1.1\r\nContent-Length: 0\r\n\r\n")},
		{"HTTP PUT", []byte("PUT /x HTTP/1.1\r\n")},
		{"HTTP HEAD", []byte("HEAD / HTTP/1.0\r\n\r\n")},
		{"HTTP OPTIONS", []byte("OPTIONS * HTTP/1.1\r\n")},
		{"HTTP DELETE", []byte("DELETE /x HTTP/1.1\r\n")},
		{"HTTP PATCH", []byte("PATCH /x HTTP/1.1\r\n")},
		{"HTTP CONNECT", []byte("CONNECT a:443 HTTP/1.1\r\n")},
		{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
		{"junk without a start block", bytes.Repeat([]byte("junk\x00\xff"), 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var handled atomic.Int32
			_, addr := startServer(t, HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
				handled.Add(1)
				return []byte("AR"), nil
			}))
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tt.in); err != nil {
				t.Fatal(err)
			}
			assertClosedSoon(t, nc)
			if n := handled.Load(); n != 0 {
				t.Errorf("handler called %d times for bytes that are not MLLP", n)
			}
		})
	}
}

// TestServerClosesTLSHandshake runs a real TLS client against a plain MLLP
// port: the handshake must fail at once, not hang.
func TestServerClosesTLSHandshake(t *testing.T) {
	var handled atomic.Int32
	_, addr := startServer(t, HandlerFunc(func(context.Context, ConnInfo, []byte) ([]byte, error) {
		handled.Add(1)
		return []byte("AR"), nil
	}))
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := tls.Client(nc, &tls.Config{ServerName: "mllp.test", MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(time.Second))
	start := time.Now()
	err = tc.Handshake()
	if err == nil {
		t.Fatal("TLS handshake succeeded against a plain MLLP port")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("handshake held open for %v", time.Since(start))
	}
	// Go's ClientHello holds 0x0B (the ec_point_formats extension) and
	// 0x1C: it must still never reach the handler as a message.
	if n := handled.Load(); n != 0 {
		t.Errorf("the ClientHello was handled as %d message(s)", n)
	}
}

// TestServerToleratesShortJunk keeps what senders get today: a few stray
// bytes (NUL, 0xFF, a newline) before a start block are skipped.
func TestServerToleratesShortJunk(t *testing.T) {
	for _, junk := range []string{"\x00\xff\r\n", strings.Repeat("x", 4000), "GE\r\n", "\x16\x16"} {
		_, addr := startServer(t, echoAck)
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(append([]byte(junk), AppendFrame(nil, []byte("MSH|1"))...)); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		reply, err := NewReader(nc, 0).ReadFrame()
		if err != nil || string(reply) != "ACK:MSH|1" {
			t.Errorf("junk %q: reply %q, %v", junk[:min(len(junk), 8)], reply, err)
		}
		nc.Close()
	}
}
