package config

// ServerTLS is the design's one server-side TLS block, used by every
// listener that serves TLS (the admin API today; MLLP and HTTP ingress
// with the transport issue). TLS is on when CertFile is set. Validate and
// Config (tlsconfig.go) check it and build the tls.Config: TLS 1.2+ only,
// the pair reloaded from disk when it changes.
type ServerTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert asks for and verifies a client certificate
	// against ClientCAFile.
	RequireClientCert bool `yaml:"require_client_cert"`
	// MinVersion is "1.2" (default) or "1.3"; lower versions are refused.
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether TLS is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }
