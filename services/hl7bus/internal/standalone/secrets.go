package standalone

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	libconfig "github.com/hl7bus/hl7bus/libs/config"
)

// The secrets layout of the embedded default (design.md, "Contracts"):
// <data_dir>/secrets/, mode 0700, one file per secret, mode 0600. Deleting
// the data directory deletes them, and the next start makes new ones.
const (
	secretsDir = "secrets"
	// kafkaSecret holds the embedded broker's SASL/SCRAM user.
	kafkaSecret = "kafka-scram"
	// registrySecret holds the embedded registry's basic-auth user.
	registrySecret = "registry-basic"
	// embeddedUser is the user name in both files. Only the password is
	// secret; a fixed name keeps the files readable by hand.
	embeddedUser = "hl7bus"
	// embeddedMechanism is the SASL mechanism of the embedded broker: the
	// strongest kfake offers, and what a Kafka cluster is usually run with.
	embeddedMechanism = "SCRAM-SHA-512"
)

// Credentials are one user of the embedded broker or registry. A file
// holds them as one line USER:PASSWORD, the form curl -u takes.
type Credentials struct {
	Username string
	Password libconfig.Secret
}

// Secrets are the credentials of the embedded broker and registry.
type Secrets struct {
	Kafka    Credentials
	Registry Credentials
}

// SecretsDir returns the secrets directory of a data directory.
func SecretsDir(dataDir string) string { return filepath.Join(dataDir, secretsDir) }

// openSecrets returns the credentials in dataDir, generating each missing
// one: the standalone calls it at start, so the first start creates them
// and every later start reuses them. A secrets directory or file that
// other users could read is refused rather than used.
func openSecrets(dataDir string) (*Secrets, error) {
	dir := SecretsDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("standalone.data_dir: creating %s: %w", dir, err)
	}
	if err := ownerOnly(dir); err != nil {
		return nil, err
	}
	var s Secrets
	for _, c := range []struct {
		name string
		to   *Credentials
	}{{kafkaSecret, &s.Kafka}, {registrySecret, &s.Registry}} {
		p := filepath.Join(dir, c.name)
		creds, err := readCredentials(p)
		if errors.Is(err, fs.ErrNotExist) {
			creds, err = createCredentials(p)
		}
		if err != nil {
			return nil, err
		}
		if err := ownerOnly(p); err != nil {
			return nil, err
		}
		*c.to = creds
	}
	return &s, nil
}

// ReadSecrets returns the credentials a running (or once started)
// standalone generated in dataDir. Clients use it and never create them:
// credentials no broker knows would only fail later and less clearly.
func ReadSecrets(dataDir string) (*Secrets, error) {
	dir := SecretsDir(dataDir)
	var s Secrets
	for _, c := range []struct {
		name string
		to   *Credentials
	}{{kafkaSecret, &s.Kafka}, {registrySecret, &s.Registry}} {
		creds, err := readCredentials(filepath.Join(dir, c.name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no credentials of the embedded broker and registry in %s (hl7bus standalone creates them on its first start with this data directory; set standalone.data_dir or --data-dir to the one it uses): %w", dir, err)
		}
		if err != nil {
			return nil, err
		}
		*c.to = creds
	}
	return &s, nil
}

// readCredentials reads a USER:PASSWORD file. Its errors name the file,
// never its content.
func readCredentials(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("reading %s: %w", path, err)
	}
	user, pass, ok := strings.Cut(strings.TrimRight(string(b), "\r\n"), ":")
	if !ok || user == "" || pass == "" {
		return Credentials{}, fmt.Errorf("%s is not one line USER:PASSWORD; delete it and restart hl7bus standalone to generate a new one", path)
	}
	return Credentials{Username: user, Password: libconfig.Secret(pass)}, nil
}

// createCredentials generates a password (256 bits from crypto/rand,
// base64url, so it has no ':' and survives a shell) and writes it to path
// with mode 0600: to a temporary file first, synced, then renamed, so a
// crash leaves either no file or a whole one.
func createCredentials(path string) (Credentials, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return Credentials{}, fmt.Errorf("generating %s: %w", path, err)
	}
	c := Credentials{Username: embeddedUser, Password: libconfig.Secret(base64.RawURLEncoding.EncodeToString(key))}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return Credentials{}, fmt.Errorf("creating %s: %w", path, err)
	}
	_, err = f.WriteString(c.Username + ":" + c.Password.Value() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return Credentials{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return c, nil
}

// ownerOnly refuses a secrets file or directory that its group or other
// users may read, as ssh does with a private key: the credentials guard
// every message on the broker.
func ownerOnly(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		want := "600"
		if st.IsDir() {
			want = "700"
		}
		return fmt.Errorf("%s has mode %o: other users could read the embedded broker's credentials; chmod %s %s", path, perm, want, path)
	}
	return nil
}
