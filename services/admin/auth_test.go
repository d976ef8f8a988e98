package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func authenticate(t *testing.T, a *Auth, header string) (Principal, error) {
	t.Helper()
	r := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return a.Authenticate(r)
}

func newTestAuth(t *testing.T, cfg Config) (*Auth, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	a, err := NewAuthenticator(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return a, &logs
}

func TestAuthenticateTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	tok, rec, err := CreateToken(path, "alice", RoleAnalyst, tokenT0)
	if err != nil {
		t.Fatal(err)
	}
	a, logs := newTestAuth(t, Config{TokensFile: path})
	wrongSecret := tok[:len(tok)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(tok, "A")]
	unknownID := TokenPrefix + "zzzzzzzz" + tok[len(TokenPrefix)+8:]

	for _, tc := range []struct {
		name, header string
		want         Principal
		err          string
	}{
		{"valid", "Bearer " + tok, Principal{Actor: "alice", Role: RoleAnalyst, Auth: "token", TokenID: rec.ID}, ""},
		{"scheme case", "bearer " + tok, Principal{Actor: "alice", Role: RoleAnalyst, Auth: "token", TokenID: rec.ID}, ""},
		{"no header", "", Principal{}, "no Authorization header"},
		{"basic", "Basic dXNlcjpwYXNz", Principal{}, "not a bearer token"},
		{"empty bearer", "Bearer ", Principal{}, "not a bearer token"},
		{"wrong secret", "Bearer " + wrongSecret, Principal{}, "unknown token " + rec.ID},
		{"unknown id", "Bearer " + unknownID, Principal{}, "unknown token zzzzzzzz"},
		{"malformed", "Bearer hl7b_short", Principal{}, "malformed"},
		{"jwt without oidc", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", Principal{}, "no OIDC issuer"},
	} {
		p, err := authenticate(t, a, tc.header)
		if tc.err == "" {
			if err != nil || p != tc.want {
				t.Errorf("%s: %+v %v, want %+v", tc.name, p, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want ErrUnauthenticated with %q", tc.name, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), tok[len(tok)-43:]) {
			t.Errorf("%s: error quotes the secret: %v", tc.name, err)
		}
	}
	if strings.Contains(logs.String(), tok[len(tok)-43:]) {
		t.Errorf("logs hold the token:\n%s", logs)
	}
}

// TestTokensFileFollowed: create, revoke and chmod take effect on the
// next request, without a new authenticator.
func TestTokensFileFollowed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets", "tokens")
	a, logs := newTestAuth(t, Config{TokensFile: path}) // no file yet
	if !strings.Contains(logs.String(), "does not exist yet") {
		t.Errorf("missing file not logged: %s", logs)
	}
	tok, _, err := CreateToken(path, "bot", RoleViewer, tokenT0)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := authenticate(t, a, "Bearer "+tok); err != nil || p.Actor != "bot" {
		t.Fatalf("token created after start: %+v %v", p, err)
	}
	if _, err := RevokeToken(path, "bot", tokenT0); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, a, "Bearer "+tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token: %v", err)
	}
	tok2, _, _ := CreateToken(path, "bot", RoleOperator, tokenT0)
	if p, err := authenticate(t, a, "Bearer "+tok2); err != nil || p.Role != RoleOperator {
		t.Fatalf("second token: %+v %v", p, err)
	}
	// A file others can read fails closed, and reopens when fixed.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, a, "Bearer "+tok2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token accepted from a world-readable file: %v", err)
	}
	if !strings.Contains(logs.String(), "has mode 644") {
		t.Errorf("bad mode not logged: %s", logs)
	}
	_ = os.Chmod(path, 0o600)
	if _, err := authenticate(t, a, "Bearer "+tok2); err != nil {
		t.Errorf("after chmod 600: %v", err)
	}
	// A file that stops parsing refuses every token too (a revoked one
	// must not live on in memory).
	if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, a, "Bearer "+tok2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token accepted from a broken file: %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(t, a, "Bearer "+tok2); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("token accepted after the file was deleted: %v", err)
	}
	if strings.Contains(logs.String(), tok2[len(tok2)-43:]) {
		t.Errorf("logs hold the token:\n%s", logs)
	}
}

func TestNewAuthenticatorRefuses(t *testing.T) {
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable")
	_ = os.WriteFile(readable, []byte("[]\n"), 0o600)
	_ = os.Chmod(readable, 0o640)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "admin.tokens_file: required"},
		{"readable file", Config{TokensFile: readable}, "has mode 640"},
		{"oidc without client", Config{OIDC: OIDC{Issuer: "https://idp.example"}}, "admin.oidc.client_id: required"},
		{"oidc bad role", Config{OIDC: OIDC{Issuer: "https://idp.example", ClientID: "c", RoleMap: map[string]string{"ops": "root"}}}, `admin.oidc.role_map.ops: "root"`},
	} {
		_, err := NewAuthenticator(context.Background(), tc.cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// BenchmarkAuthenticateToken is the per-request cost: a stat and a hash.
func BenchmarkAuthenticateToken(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tokens")
	tok, _, _ := CreateToken(path, "bench", RoleViewer, time.Now())
	a, _ := NewAuthenticator(context.Background(), Config{TokensFile: path}, slog.New(slog.DiscardHandler))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
