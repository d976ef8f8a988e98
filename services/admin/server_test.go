package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libconfig "github.com/hl7bus/hl7bus/libs/config"
)

// client is an HTTP client whose connections the test closes, so goleak
// sees none left.
func client(t *testing.T, tc *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, cl *http.Client, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Stop drains: a request in flight finishes, new connections are refused,
// and Run returns nil once its context ends.
func TestLifecycleDrainsRequests(t *testing.T) {
	f := newFixture(t)
	f.index.block, f.index.entered = make(chan struct{}), make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- f.srv.Run(ctx) }()
	base := "http://" + f.srv.Addr()
	cl := client(t, nil)
	if code, body := get(t, cl, base+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", code, body)
	}

	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+v1+"/messages", nil)
		req.Header.Set("Authorization", "Bearer viewer")
		resp, err := cl.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- result{code: resp.StatusCode}
	}()
	<-f.index.entered

	stopped := make(chan error, 1)
	go func() { stopped <- f.srv.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(f.index.block)
	if r := <-inflight; r.err != nil || r.code != 200 {
		t.Errorf("in-flight request = %d, %v", r.code, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Stop = %v", err)
	}
	if _, err := net.DialTimeout("tcp", f.srv.Addr(), time.Second); err == nil {
		t.Errorf("still accepting connections after Stop")
	}
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	select {
	case err := <-runErr:
		t.Fatalf("Run returned %v before its context ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestStopWithoutStart(t *testing.T) {
	f := newFixture(t)
	if err := f.srv.Stop(context.Background()); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if err := f.srv.Start(context.Background()); err == nil {
		t.Errorf("Start after Stop succeeded")
	}
}

func TestRunFailsWhenAPartFails(t *testing.T) {
	f := newFixture(t)
	f.repl.runErr = errors.New("replay topic gone")
	err := f.srv.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "replayer") || !strings.Contains(err.Error(), "replay topic gone") {
		t.Errorf("Run = %v", err)
	}
	if _, derr := net.DialTimeout("tcp", f.srv.Addr(), time.Second); derr == nil {
		t.Errorf("listener open after Run failed")
	}
}

func TestStartNamesTheAddressKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := newFixture(t)
	f.srv.cfg.Address = ln.Addr().String()
	if err := f.srv.Start(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "admin.address:") {
		t.Errorf("Start on a taken port = %v", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	f := newFixture(t)
	f.srv.cfg.TLS = libconfig.ServerTLS{CertFile: certFile, KeyFile: keyFile, MinVersion: "1.3"}
	if err := f.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.srv.Stop(context.Background()) }()
	cl := client(t, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if code, body := get(t, cl, "https://"+f.srv.Addr()+v1+"/whoami", "viewer"); code != 200 || !strings.Contains(body, "vera") {
		t.Errorf("whoami over TLS = %d %s", code, body)
	}
	old := client(t, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if _, err := old.Get("https://" + f.srv.Addr() + "/healthz"); err == nil {
		t.Errorf("TLS 1.2 accepted with min_version 1.3")
	}
}

func TestTLSConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	for _, tt := range []struct {
		tls  libconfig.ServerTLS
		want string
	}{
		{libconfig.ServerTLS{CertFile: certFile}, "admin.tls.key_file"},
		{libconfig.ServerTLS{CertFile: filepath.Join(dir, "none"), KeyFile: keyFile}, "admin.tls.cert_file"},
		{libconfig.ServerTLS{CertFile: certFile, KeyFile: keyFile, MinVersion: "1.0"}, "admin.tls.min_version"},
		{libconfig.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: keyFile}, "admin.tls.client_ca_file"},
		{libconfig.ServerTLS{CertFile: certFile, KeyFile: keyFile, RequireClientCert: true}, "admin.tls.client_ca_file"},
	} {
		if _, err := serverTLSConfig(tt.tls); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %s", tt.tls, err, tt.want)
		}
	}
	tc, err := serverTLSConfig(libconfig.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: certFile, RequireClientCert: true})
	if err != nil || tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("mutual TLS config = %v, %v", tc, err)
	}
}

// selfSigned writes a certificate for localhost and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
