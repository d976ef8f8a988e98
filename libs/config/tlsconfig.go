package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// tlsVersions are the min_version values accepted. TLS 1.0 and 1.1 are
// deprecated (RFC 8996) and refused, not merely discouraged.
var tlsVersions = map[string]uint16{"": tls.VersionTLS12, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// Validate checks the block's settings, each error naming its key under
// key (for example admin.tls). A block without cert_file must set none
// of its other keys: a key file or client CA without a certificate would
// be ignored, which is how TLS gets silently left off. It reads no file:
// a configuration shared by every process is validated by each, and the
// certificates may be mounted only where the listener runs; ValidateFiles
// checks them there.
func (t ServerTLS) Validate(key string) error {
	var errs []error
	if _, ok := tlsVersions[t.MinVersion]; !ok {
		errs = append(errs, fmt.Errorf("%s.min_version: %q is not 1.2 or 1.3", key, t.MinVersion))
	}
	if !t.Enabled() {
		for _, k := range []struct {
			name string
			set  bool
		}{{"key_file", t.KeyFile != ""}, {"client_ca_file", t.ClientCAFile != ""},
			{"require_client_cert", t.RequireClientCert}, {"min_version", t.MinVersion != ""}} {
			if k.set {
				errs = append(errs, fmt.Errorf("%s.cert_file: required when %s.%s is set (TLS is on only with a certificate)", key, key, k.name))
			}
		}
		return errors.Join(errs...)
	}
	if t.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%s.key_file: required with %s.cert_file", key, key))
	}
	if t.RequireClientCert && t.ClientCAFile == "" {
		errs = append(errs, fmt.Errorf("%s.client_ca_file: required with %s.require_client_cert (the CA client certificates are verified against)", key, key))
	}
	return errors.Join(errs...)
}

// ValidateFiles checks what Validate does and the files: they must be
// readable and hold a matching certificate and key and, with
// client_ca_file, at least one CA certificate. Errors name the key under
// key. A block without cert_file has no files to check.
func (t ServerTLS) ValidateFiles(key string) error {
	if err := t.Validate(key); err != nil || !t.Enabled() {
		return err
	}
	var errs []error
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("%s.cert_file: %s with %s: %w", key, t.CertFile, t.KeyFile, err))
	}
	if t.ClientCAFile != "" {
		if _, err := loadCAs(t.ClientCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.client_ca_file: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// Config returns the server tls.Config of the block: TLS 1.2 or newer
// (min_version), the certificate and key from their files, re-read when
// either file changes so a renewed certificate (cert-manager, certbot)
// is served without a restart, and with client_ca_file client
// certificates verified against it (required with require_client_cert,
// else verified when given). It is an error to call it on a block
// without cert_file. Its errors name the key within the block
// ("cert_file: ..."): the caller prefixes the block's key.
func (t ServerTLS) Config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, errors.New("cert_file: not set (TLS is off)")
	}
	v, ok := tlsVersions[t.MinVersion]
	if !ok {
		return nil, fmt.Errorf("min_version: %q is not 1.2 or 1.3", t.MinVersion)
	}
	if t.KeyFile == "" {
		return nil, errors.New("key_file: required with cert_file")
	}
	r := &certReloader{certFile: t.CertFile, keyFile: t.KeyFile}
	if _, err := r.certificate(); err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: v, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.certificate() }}
	if t.ClientCAFile != "" {
		pool, err := loadCAs(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if t.RequireClientCert {
		return nil, errors.New("client_ca_file: required with require_client_cert")
	}
	return c, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// certReloader serves a certificate pair from files, loading it again
// when either file's modification time or size changes. It stats both
// files per handshake (cheap next to the handshake). A pair that fails to
// load, as it may halfway through a renewal that writes the certificate
// before the key, leaves the previous pair in service and is tried again
// on the next handshake.
type certReloader struct {
	certFile, keyFile string

	mu     sync.Mutex
	cert   *tls.Certificate
	certSt fs.FileInfo
	keySt  fs.FileInfo
}

// certificate returns the current pair, reloaded first if it changed.
func (r *certReloader) certificate() (*tls.Certificate, error) {
	cs, cerr := os.Stat(r.certFile)
	ks, kerr := os.Stat(r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := errors.Join(cerr, kerr); err != nil {
		if r.cert != nil {
			// Replaced by a rename not finished yet, or removed: keep
			// serving what was loaded.
			return r.cert, nil
		}
		return nil, fmt.Errorf("cert_file: %w", err)
	}
	if r.cert != nil && sameStat(r.certSt, cs) && sameStat(r.keySt, ks) {
		return r.cert, nil
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("cert_file: %s with key_file %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certSt, r.keySt = &pair, cs, ks
	return r.cert, nil
}

// sameStat reports whether two stats are of the same file content as far
// as a stat can tell: the same file (not another renamed over it), the
// same modification time and size.
func sameStat(a, b fs.FileInfo) bool {
	return a != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
