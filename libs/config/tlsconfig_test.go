package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that issues certificates into a directory.
type testCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key, pool: pool}
	ca.write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

func (ca *testCA) write(name string, b []byte) string {
	ca.t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		ca.t.Fatal(err)
	}
	return p
}

// issue writes a certificate for cn (serial) and its key as
// <name>.pem and <name>-key.pem and returns the pair.
func (ca *testCA) issue(name, cn string, serial int64, client bool) (certFile, keyFile string, pair tls.Certificate) {
	ca.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{cn}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		ca.t.Fatal(err)
	}
	return ca.write(name+".pem", certPEM), ca.write(name+"-key.pem", keyPEM), pair
}

func TestServerTLSValidate(t *testing.T) {
	ca := newTestCA(t)
	cert, key, _ := ca.issue("server", "localhost", 2, false)
	_, otherKey, _ := ca.issue("other", "localhost", 3, false)
	notPEM := ca.write("junk.pem", []byte("not a certificate\n"))
	// Validate reads no file: a missing certificate passes it.
	if err := (ServerTLS{CertFile: cert + ".gone", KeyFile: key}).Validate("admin.tls"); err != nil {
		t.Errorf("Validate read the files: %v", err)
	}
	for _, tc := range []struct {
		name string
		tls  ServerTLS
		want []string // empty: valid
	}{
		{"off", ServerTLS{}, nil},
		{"on", ServerTLS{CertFile: cert, KeyFile: key}, nil},
		{"mtls 1.3", ServerTLS{CertFile: cert, KeyFile: key, ClientCAFile: filepath.Join(ca.dir, "ca.pem"), RequireClientCert: true, MinVersion: "1.3"}, nil},
		{"key without cert", ServerTLS{KeyFile: key}, []string{"admin.tls.cert_file: required when admin.tls.key_file is set"}},
		{"client ca without cert", ServerTLS{ClientCAFile: notPEM, RequireClientCert: true}, []string{"admin.tls.client_ca_file is set", "admin.tls.require_client_cert is set"}},
		{"old version", ServerTLS{CertFile: cert, KeyFile: key, MinVersion: "1.1"}, []string{`admin.tls.min_version: "1.1" is not 1.2 or 1.3`}},
		{"no key", ServerTLS{CertFile: cert}, []string{"admin.tls.key_file: required"}},
		{"missing file", ServerTLS{CertFile: cert + ".gone", KeyFile: key}, []string{"admin.tls.cert_file:", "no such file"}},
		{"mismatched pair", ServerTLS{CertFile: cert, KeyFile: otherKey}, []string{"admin.tls.cert_file:", "does not match"}},
		{"require without ca", ServerTLS{CertFile: cert, KeyFile: key, RequireClientCert: true}, []string{"admin.tls.client_ca_file: required with admin.tls.require_client_cert"}},
		{"bad ca", ServerTLS{CertFile: cert, KeyFile: key, ClientCAFile: notPEM}, []string{"admin.tls.client_ca_file:", "holds no PEM certificate"}},
	} {
		err := tc.tls.ValidateFiles("admin.tls")
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tc.name, err, w)
			}
		}
	}
}

// serve accepts TLS connections on a loopback listener with c until the
// test ends, completing each handshake.
func serve(t *testing.T, c *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = conn.(*tls.Conn).Handshake()
				_ = conn.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with addr and returns the server certificate's serial.
func dial(addr string, c *tls.Config) (int64, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// With TLS 1.3 a refused client certificate shows on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !strings.Contains(err.Error(), "EOF") && !isTimeout(err) {
		return 0, err
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestServerTLSConfigReloads(t *testing.T) {
	ca := newTestCA(t)
	cert, key, _ := ca.issue("server", "localhost", 10, false)
	c, err := ServerTLS{CertFile: cert, KeyFile: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS12 || c.ClientAuth != tls.NoClientCert {
		t.Errorf("defaults: min %x, client auth %v", c.MinVersion, c.ClientAuth)
	}
	addr := serve(t, c)
	client := &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}
	if serial, err := dial(addr, client); err != nil || serial != 10 {
		t.Fatalf("first handshake: serial %d, %v", serial, err)
	}
	// Renew: a new pair written over the files is served from the next
	// handshake on. The mtime is moved so coarse clocks see a change.
	newCert, newKey, _ := ca.issue("renewed", "localhost", 11, false)
	for _, mv := range [][2]string{{newCert, cert}, {newKey, key}} {
		b, _ := os.ReadFile(mv[0])
		if err := os.WriteFile(mv[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		_ = os.Chtimes(mv[1], later, later)
	}
	if serial, err := dial(addr, client); err != nil || serial != 11 {
		t.Fatalf("after renewal: serial %d, %v", serial, err)
	}
	// Half a renewal (a key that does not match) keeps the last good pair.
	_, strayKey, _ := ca.issue("stray", "localhost", 12, false)
	b, _ := os.ReadFile(strayKey)
	_ = os.WriteFile(key, b, 0o600)
	if serial, err := dial(addr, client); err != nil || serial != 11 {
		t.Fatalf("mismatched renewal: serial %d, %v", serial, err)
	}
	// TLS 1.1 clients are refused.
	if _, err := dial(addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.1 handshake: %v, want a protocol version alert", err)
	}
}

func TestServerTLSConfigClientCerts(t *testing.T) {
	ca := newTestCA(t)
	cert, key, _ := ca.issue("server", "localhost", 20, false)
	_, _, clientPair := ca.issue("client", "analyst", 21, true)
	stranger := newTestCA(t)
	_, _, strangerPair := stranger.issue("client", "mallory", 22, true)
	caFile := filepath.Join(ca.dir, "ca.pem")

	c, err := ServerTLS{CertFile: cert, KeyFile: key, ClientCAFile: caFile, RequireClientCert: true, MinVersion: "1.3"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientAuth != tls.RequireAndVerifyClientCert || c.MinVersion != tls.VersionTLS13 {
		t.Fatalf("client auth %v, min %x", c.ClientAuth, c.MinVersion)
	}
	addr := serve(t, c)
	base := tls.Config{RootCAs: ca.pool, ServerName: "localhost"}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"ca's client", []tls.Certificate{clientPair}, true},
		{"no certificate", nil, false},
		{"another ca's client", []tls.Certificate{strangerPair}, false},
	} {
		cc := base.Clone()
		cc.Certificates = tc.certs
		_, err := dial(addr, cc)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}

	opt, err := ServerTLS{CertFile: cert, KeyFile: key, ClientCAFile: caFile}.Config()
	if err != nil || opt.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("client CA without require: %v %v", opt.ClientAuth, err)
	}
	for _, bad := range []ServerTLS{{}, {CertFile: cert, KeyFile: key, MinVersion: "1.0"}, {CertFile: cert},
		{CertFile: cert, KeyFile: key, RequireClientCert: true}} {
		if _, err := bad.Config(); err == nil {
			t.Errorf("Config(%+v): no error", bad)
		}
	}
}
