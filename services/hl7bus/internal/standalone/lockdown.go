package standalone

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// The embedded default is for one host: a laptop, a test bench, a small
// clinic's one server. Its broker and registry listen on loopback only and
// require the credentials generated into the data directory, so another
// user of the same machine can neither read the messages nor write to the
// topics or the schemas. Serving other hosts is the job of a Kafka cluster
// with TLS and ACLs and a real registry.

// Validate checks what the embedded broker and registry need beyond the
// file's own validation: that both listen on loopback. A non-loopback
// address is refused, not quietly replaced by loopback: the operator asked
// for something the embedded mode will not do, and should learn it at
// start rather than find the port unreachable from the other host.
func Validate(f *config.File) error {
	return errors.Join(
		loopbackOnly("standalone.kafka_address", f.Standalone.KafkaAddress),
		loopbackOnly("standalone.registry_address", f.Standalone.RegistryAddress))
}

// loopbackOnly accepts a host:port whose host is a loopback IP or
// "localhost". Any other name is refused without resolving it: what it
// resolves to may change, and an empty host means every interface.
func loopbackOnly(key, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: %q is not a loopback address: the embedded broker and registry listen on loopback only "+
		"(127.0.0.1, ::1 or localhost); to serve other hosts, run a Kafka cluster and a schema registry with TLS "+
		"and authentication and set kafka.brokers and registry.url", key, addr)
}

// privateDataDir creates the data directory with mode 0700: it holds every
// message the exchange stored, and the credentials. An existing directory
// keeps the mode its owner gave it, with a warning if others may enter it.
func privateDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("standalone.data_dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("standalone.data_dir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is open to other users of this host, who can read every stored message in it; chmod 700 it",
			logattr.DataDir(dir))
	}
	return nil
}

// brokerAuth returns the kfake options that make the embedded broker
// require SASL/SCRAM with c, the one (super)user.
//
// kfake saves its users to sasl.json in its data directory and, on start,
// replaces the configured ones with the saved ones. A data directory from
// before the lockdown saved none, which would leave a broker nobody can
// log in to; and the secrets file, not kfake's copy, is the source of the
// credentials. So the saved copy is removed first and kfake writes it anew.
func brokerAuth(kafkaDir string, c Credentials) ([]kfake.Opt, error) {
	if err := os.Remove(filepath.Join(kafkaDir, "sasl.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("standalone.data_dir: resetting the broker's saved users: %w", err)
	}
	return []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(embeddedMechanism, c.Username, c.Password.Value())}, nil
}

// unauthorized is the registry's answer without the right credentials, in
// the Confluent error format (40101 is its "unauthorized" code).
const unauthorized = `{"error_code":40101,"message":"unauthorized: the embedded registry requires the credentials in <data_dir>/secrets/registry-basic"}`

// requireBasicAuth serves next only to requests carrying c in HTTP basic
// auth, on every endpoint (reads too: schemas describe what the records
// hold, and the registry is no one else's business).
func requireBasicAuth(c Credentials, next http.Handler) http.Handler {
	// Comparing fixed-size digests in constant time tells an attacker
	// nothing through timing, not even the lengths.
	wantUser, wantPass := sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(c.Password.Value()))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		// Both compared whatever the first gives.
		match := subtle.ConstantTimeCompare(u[:], wantUser[:]) & subtle.ConstantTimeCompare(p[:], wantPass[:])
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="hl7bus embedded registry", charset="UTF-8"`)
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, unauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// useCredentials gives f's Kafka and registry clients the embedded users.
func useCredentials(f *config.File, s *Secrets, kafka, registry bool) {
	if kafka {
		f.Kafka.SASL.Mechanism = embeddedMechanism
		f.Kafka.SASL.Username, f.Kafka.SASL.Password = s.Kafka.Username, s.Kafka.Password
	}
	if registry {
		f.Registry.Username, f.Registry.Password = s.Registry.Username, s.Registry.Password
	}
}

// UseEmbedded points the clients of f at the embedded broker and registry
// of f.Standalone, for a tool (hl7bus tail) or a stage process (hl7bus
// parse next to hl7bus standalone --targets broker,registry) run next to a
// standalone with its configuration file, which names no brokers. Both
// addresses must have fixed ports. The credentials come
// from the standalone's data directory (standalone.data_dir), except where
// the file sets its own (kafka.sasl.mechanism, registry.username): those
// win.
func UseEmbedded(f *config.File) error {
	f.ForStandalone()
	for _, a := range []struct{ key, addr string }{{"standalone.kafka_address", f.Standalone.KafkaAddress},
		{"standalone.registry_address", f.Standalone.RegistryAddress}} {
		if _, port, err := net.SplitHostPort(a.addr); err == nil && port == "0" {
			// The standalone took some free port; another process cannot
			// know which.
			return fmt.Errorf("%s: %q: port 0 cannot be found from another process; give the standalone a fixed port", a.key, a.addr)
		}
	}
	kafka, registry := f.Kafka.SASL.Mechanism == "", f.Registry.Username == ""
	if !kafka && !registry {
		return nil
	}
	s, err := ReadSecrets(f.Standalone.DataDir)
	if err != nil {
		return err
	}
	useCredentials(f, s, kafka, registry)
	return nil
}
