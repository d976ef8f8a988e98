package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// changeLog records what OnChange reports, as "+id" and "-id".
type changeLog struct {
	mu  sync.Mutex
	got []string
}

func (c *changeLog) record(added, revoked []TokenRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range added {
		c.got = append(c.got, "+"+r.Name+"/"+r.CreatedBy)
	}
	for _, r := range revoked {
		c.got = append(c.got, "-"+r.Name+"/"+r.RevokedBy)
	}
}

func (c *changeLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

// TestAuthReportsTokenChanges: the tokens at start are no change; a
// create and a revoke after it are reported once each, on the next
// request or Refresh, with who made them; a broken or missing file in
// between does not make the tokens new again when it comes back.
func TestAuthReportsTokenChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	tokOld, _, err := CreateTokenBy(path, "old", RoleViewer, "root@h0", tokenT0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateTokenBy(path, "gone", RoleViewer, "root@h0", tokenT0); err != nil {
		t.Fatal(err)
	}
	if _, err := RevokeTokenBy(path, "gone", "root@h0", tokenT0); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAuth(t, Config{TokensFile: path})
	var c changeLog
	a.OnChange(c.record)
	if err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); len(got) != 0 {
		t.Fatalf("tokens existing at start reported as changes: %v", got)
	}

	steps := []struct {
		name string
		do   func()
		// viaRequest: read on a request instead of Refresh.
		viaRequest bool
		want       []string
	}{
		{"create", func() { mustCreate(t, path, "ci", RoleOperator, "anna@ops1") }, false, []string{"+ci/anna@ops1"}},
		{"nothing changed", func() {}, false, nil},
		{"revoke, seen by a request", func() { mustRevoke(t, path, "ci", "ben@ops2") }, true, []string{"-ci/ben@ops2"}},
		{"create and revoke between two reads", func() {
			mustCreate(t, path, "brief", RoleViewer, "anna@ops1")
			mustRevoke(t, path, "brief", "anna@ops1")
		}, false, []string{"+brief/anna@ops1", "-brief/anna@ops1"}},
		{"broken file", func() {
			if err := os.WriteFile(path+".bak", mustRead(t, path), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, nil},
		{"fixed again", func() {
			if err := os.Rename(path+".bak", path); err != nil {
				t.Fatal(err)
			}
		}, false, nil},
		{"deleted", func() {
			if err := os.Rename(path, path+".bak"); err != nil {
				t.Fatal(err)
			}
		}, false, nil},
		{"restored, plus one", func() {
			if err := os.Rename(path+".bak", path); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, path, "new", RoleAuditor, "")
		}, true, []string{"+new/"}},
	}
	for _, s := range steps {
		s.do()
		if s.viaRequest {
			_, _ = authenticate(t, a, "Bearer "+tokOld)
		} else {
			_ = a.Refresh()
		}
		if got := c.take(); !slices.Equal(got, s.want) {
			t.Errorf("%s: reported %v, want %v", s.name, got, s.want)
		}
	}
}

func TestTokenChanges(t *testing.T) {
	at := tokenT0
	live := func(id string) TokenRecord { return TokenRecord{ID: id} }
	dead := func(id string) TokenRecord { return TokenRecord{ID: id, RevokedAt: &at} }
	ids := func(recs []TokenRecord) []string {
		var out []string
		for _, r := range recs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		before, now    []TokenRecord
		added, revoked []string
	}{
		{"none", nil, nil, nil, nil},
		{"same", []TokenRecord{live("a"), dead("b")}, []TokenRecord{live("a"), dead("b")}, nil, nil},
		{"created", []TokenRecord{live("a")}, []TokenRecord{live("a"), live("b"), live("c")}, []string{"b", "c"}, nil},
		{"revoked", []TokenRecord{live("a"), live("b")}, []TokenRecord{live("a"), dead("b")}, nil, []string{"b"}},
		{"created revoked", nil, []TokenRecord{dead("a")}, []string{"a"}, []string{"a"}},
		{"removed is no change", []TokenRecord{live("a")}, nil, nil, nil},
	} {
		added, revoked := tokenChanges(indexTokens(tc.before), tc.now)
		if !slices.Equal(ids(added), tc.added) || !slices.Equal(ids(revoked), tc.revoked) {
			t.Errorf("%s: added %v revoked %v, want %v %v", tc.name, ids(added), ids(revoked), tc.added, tc.revoked)
		}
	}
}

func mustCreate(t *testing.T, path, name string, role Role, by string) {
	t.Helper()
	if _, _, err := CreateTokenBy(path, name, role, by, tokenT0); err != nil {
		t.Fatal(err)
	}
}

func mustRevoke(t *testing.T, path, name, by string) {
	t.Helper()
	if _, err := RevokeTokenBy(path, name, by, tokenT0); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
