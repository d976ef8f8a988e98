package standalone

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

func appSecretsFile(dataDir string) *config.File {
	f := &config.File{}
	f.Standalone.DataDir = dataDir
	f.Index.Driver = "sqlite"
	f.ForStandalone()
	return f
}

// liveStandaloneAdmins returns the live standalone-admin tokens.
func liveStandaloneAdmins(t *testing.T, tokensFile string) []admin.TokenRecord {
	t.Helper()
	recs, err := admin.ListTokens(tokensFile)
	if err != nil {
		t.Fatal(err)
	}
	var live []admin.TokenRecord
	for _, r := range recs {
		if r.Name == StandaloneAdminName && !r.Revoked() {
			live = append(live, r)
		}
	}
	return live
}

func TestAppSecretsCreatedReusedAndRenewed(t *testing.T) {
	dataDir := t.TempDir()
	f := appSecretsFile(dataDir)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	now := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	if err := openAppSecrets(f, now, log); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dataDir, "secrets", "index-hmac")
	tokensFile := filepath.Join(dataDir, "secrets", "admin-tokens")
	tokenFile := filepath.Join(dataDir, "secrets", "admin-token")
	for _, p := range []string{keyFile, tokensFile, tokenFile} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, st.Mode().Perm())
		}
	}
	key, _ := os.ReadFile(keyFile)
	if len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		t.Errorf("index key: %d bytes %x", len(key), key)
	}
	tok, err := ReadAdminToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := admin.LookupToken(tokensFile, tok.Value())
	if err != nil || rec.Name != "standalone-admin" || rec.Role != admin.RoleAdmin {
		t.Fatalf("admin token in the tokens file: %+v %v", rec, err)
	}
	if strings.Contains(logs.String(), tok.Value()) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}

	// A later start reuses both.
	if err := openAppSecrets(f, now.Add(time.Hour), log); err != nil {
		t.Fatal(err)
	}
	key2, _ := os.ReadFile(keyFile)
	tok2, _ := ReadAdminToken(dataDir)
	if !bytes.Equal(key, key2) || tok2 != tok {
		t.Error("a second start replaced the secrets")
	}
	if n := len(liveStandaloneAdmins(t, tokensFile)); n != 1 {
		t.Errorf("%d live standalone-admin tokens after a restart", n)
	}

	// Each way of losing the token mints one new live token, the key
	// stays.
	for _, tc := range []struct {
		name string
		lose func()
	}{
		{"tokens file deleted", func() { _ = os.Remove(tokensFile) }},
		{"token revoked", func() {
			if _, err := admin.RevokeToken(tokensFile, StandaloneAdminName, now); err != nil {
				t.Fatal(err)
			}
		}},
		{"admin-token deleted", func() { _ = os.Remove(tokenFile) }},
		{"admin-token emptied", func() { _ = os.WriteFile(tokenFile, []byte("\n"), 0o600) }},
	} {
		before, _ := ReadAdminToken(dataDir)
		tc.lose()
		if err := openAppSecrets(f, now.Add(2*time.Hour), log); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after, err := ReadAdminToken(dataDir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if after == before {
			t.Errorf("%s: the token was not replaced", tc.name)
		}
		if _, err := admin.LookupToken(tokensFile, after.Value()); err != nil {
			t.Errorf("%s: the new token is not in the tokens file: %v", tc.name, err)
		}
		if _, err := admin.LookupToken(tokensFile, before.Value()); err == nil {
			t.Errorf("%s: the lost token is still valid", tc.name)
		}
		if live := liveStandaloneAdmins(t, tokensFile); len(live) != 1 {
			t.Errorf("%s: %d live standalone-admin tokens", tc.name, len(live))
		}
		if k, _ := os.ReadFile(keyFile); !bytes.Equal(k, key) {
			t.Errorf("%s: the index key changed", tc.name)
		}
	}
}

func TestAppSecretsConfiguredPaths(t *testing.T) {
	dataDir, elsewhere := t.TempDir(), t.TempDir()
	f := &config.File{}
	f.Standalone.DataDir = dataDir
	f.Index.SecretFile = filepath.Join(elsewhere, "keys", "hmac")
	f.Admin.TokensFile = filepath.Join(elsewhere, "tokens")
	f.ForStandalone()
	if err := openAppSecrets(f, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Index.SecretFile); err != nil {
		t.Errorf("configured index.secret_file: %v", err)
	}
	tok, err := ReadAdminToken(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.LookupToken(f.Admin.TokensFile, tok.Value()); err != nil {
		t.Errorf("token not registered in the configured admin.tokens_file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "secrets", "admin-tokens")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a default tokens file was written too: %v", err)
	}
}

func TestAppSecretsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		mode       os.FileMode
		body       string
		want       string
	}{
		{"readable index key", "index-hmac", 0o644, strings.Repeat("k", 32), "has mode 644"},
		{"short index key", "index-hmac", 0o600, "abc", "too short"},
		{"readable admin token", "admin-token", 0o640, "x\n", "has mode 640"},
		{"readable tokens file", "admin-tokens", 0o644, "[]\n", "has mode 644"},
	} {
		dataDir := t.TempDir()
		dir := filepath.Join(dataDir, "secrets")
		_ = os.MkdirAll(dir, 0o700)
		p := filepath.Join(dir, tc.file)
		_ = os.WriteFile(p, []byte(tc.body), tc.mode)
		_ = os.Chmod(p, tc.mode)
		err := openAppSecrets(appSecretsFile(dataDir), time.Now(), slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestReadAdminTokenMissing(t *testing.T) {
	_, err := ReadAdminToken(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "hl7bus standalone writes one on start") {
		t.Errorf("missing: %v", err)
	}
}
