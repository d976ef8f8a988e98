package standalone

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	libconfig "github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
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
	// adminTokenSecret holds the admin-role bearer token the standalone
	// mints for the CLI on this host (one line, the token text).
	adminTokenSecret = "admin-token"
	// StandaloneAdminName is the name of that token in the tokens file
	// (and so the actor of what the CLI does with it in the audit trail).
	StandaloneAdminName = "standalone-admin"
	// indexKeyBytes is the size of the index's patient-key HMAC key: 256
	// bits, HMAC-SHA-256's block-size-independent full strength.
	indexKeyBytes = 32
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

// AdminTokenFile returns the file holding the standalone's admin token.
func AdminTokenFile(dataDir string) string {
	return filepath.Join(SecretsDir(dataDir), adminTokenSecret)
}

// ReadAdminToken returns the admin token a standalone wrote in dataDir,
// for the CLI's default credentials. Its errors name the file, never the
// token.
func ReadAdminToken(dataDir string) (libconfig.Secret, error) {
	p := AdminTokenFile(dataDir)
	tok, err := readAdminToken(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no admin token in %s (hl7bus standalone writes one on start; pass --token-file otherwise): %w", p, err)
	}
	if err != nil {
		return "", err
	}
	if tok == "" {
		return "", fmt.Errorf("%s does not hold an hl7bus token; delete it and restart hl7bus standalone to mint a new one", p)
	}
	return libconfig.Secret(tok), nil
}

// readAdminToken reads the token file at p: "" without error when it
// holds no token, fs.ErrNotExist when it is missing.
func readAdminToken(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	if err := ownerOnly(p); err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if _, ok := admin.TokenID(tok); !ok {
		return "", nil
	}
	return tok, nil
}

// openAppSecrets creates, when missing, the secrets of the index and the
// admin API in the standalone's data directory: the index's HMAC key
// (index.secret_file, default <data_dir>/secrets/index-hmac: 32 random
// bytes, the file's whole content) and an admin-role token named
// standalone-admin, registered in admin.tokens_file and written to
// <data_dir>/secrets/admin-token. Later starts reuse both; an admin-token
// whose token the tokens file no longer holds as live (the file was
// deleted, or the token revoked) is replaced by a new one. Files are
// 0600, and ones that others can read are refused.
func openAppSecrets(f *config.File, now time.Time, log *slog.Logger) error {
	dir := SecretsDir(f.Standalone.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("standalone.data_dir: creating %s: %w", dir, err)
	}
	if err := ownerOnly(dir); err != nil {
		return err
	}
	keyFile := f.Index.SecretFile
	if keyFile == "" {
		keyFile = filepath.Join(dir, config.StandaloneIndexSecret)
	}
	if err := openIndexKey(keyFile); err != nil {
		return err
	}
	tokens := f.Admin.TokensFile
	if tokens == "" {
		tokens = filepath.Join(dir, config.StandaloneAdminTokens)
	}
	return openAdminToken(f.Standalone.DataDir, tokens, now, log)
}

// openIndexKey creates the index's HMAC key at path unless it exists.
func openIndexKey(path string) error {
	st, err := os.Stat(path)
	if err == nil {
		if st.Size() < indexKeyBytes/2 {
			return fmt.Errorf("index.secret_file: %s holds %d bytes, too short for a key; delete it (and rebuild the index: its patient keys change) to generate one", path, st.Size())
		}
		return ownerOnly(path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("index.secret_file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("index.secret_file: %w", err)
	}
	key := make([]byte, indexKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("index.secret_file: generating a key: %w", err)
	}
	if err := writeSecret(path, key); err != nil {
		return fmt.Errorf("index.secret_file: %w", err)
	}
	return nil
}

// openAdminToken keeps <data_dir>/secrets/admin-token valid: reused when
// tokensFile holds its token live, else minted anew.
func openAdminToken(dataDir, tokensFile string, now time.Time, log *slog.Logger) error {
	p := AdminTokenFile(dataDir)
	tok, err := readAdminToken(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case tok == "":
		log.Warn("the standalone admin token file holds no token; minting a new one", logattr.Path(p))
	default:
		_, lerr := admin.LookupToken(tokensFile, tok)
		if lerr == nil {
			return nil
		}
		if !errors.Is(lerr, admin.ErrUnauthenticated) {
			return lerr
		}
		log.Info("the standalone admin token is no longer in the tokens file; minting a new one", logattr.Path(p))
	}
	// A live standalone-admin whose text is lost is of no use to anyone;
	// revoke it so the name is free (names are unique among live tokens).
	if _, err := admin.RevokeToken(tokensFile, StandaloneAdminName, now); err != nil &&
		!errors.Is(err, admin.ErrNotFound) && !errors.Is(err, admin.ErrTokenRevoked) {
		return err
	}
	text, _, err := admin.CreateToken(tokensFile, StandaloneAdminName, admin.RoleAdmin, now)
	if err != nil {
		return fmt.Errorf("admin.tokens_file: minting the standalone admin token: %w", err)
	}
	if err := writeSecret(p, []byte(text+"\n")); err != nil {
		return err
	}
	log.Info("wrote a new admin token for the CLI", logattr.Path(p))
	return nil
}

// writeSecret writes body to path (mode 0600) through a synced temporary
// file renamed over it, so a crash leaves the old file or the new one.
func writeSecret(path string, body []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	_, err = f.Write(body)
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
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
