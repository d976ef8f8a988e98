package admin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var tokenT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCreateTokenFormatAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets", "admin-tokens")
	tok, rec, err := CreateToken(path, "ci-bot", RoleOperator, tokenT0)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^hl7b_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$`).MatchString(tok) {
		t.Fatalf("token %q does not have the hl7b_<id>_<secret> form", tok)
	}
	if id, ok := TokenID(tok); !ok || id != rec.ID {
		t.Errorf("TokenID(%q) = %q, %v; record id %q", tok, id, ok, rec.ID)
	}
	if rec.Name != "ci-bot" || rec.Role != RoleOperator || !rec.CreatedAt.Equal(tokenT0) || rec.Revoked() {
		t.Errorf("record %+v", rec)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %o, want 600", st.Mode().Perm())
	}
	body, _ := os.ReadFile(path)
	if strings.Contains(string(body), tok) || strings.Contains(string(body), tok[len(tok)-43:]) {
		t.Errorf("tokens file holds the token:\n%s", body)
	}
	for _, want := range []string{"id: " + rec.ID, "name: ci-bot", "role: operator", "sha256: " + tokenHash(tok), "created_at: 2025-03-01T12:00:00Z"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("tokens file lacks %q:\n%s", want, body)
		}
	}
	got, err := LookupToken(path, tok)
	if err != nil || got.ID != rec.ID {
		t.Errorf("LookupToken: %+v %v", got, err)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("lock file: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".admin-tokens.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestCreateTokenRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if _, _, err := CreateToken(path, "alice", RoleAnalyst, tokenT0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		role Role
		want string
		is   error
	}{
		{"alice", RoleViewer, `token name "alice"`, ErrTokenNameTaken},
		{"bob", "superuser", `role "superuser" is not one of viewer, analyst, operator, auditor, admin`, nil},
		{"", RoleViewer, "needs a name", nil},
		{"two words", RoleViewer, "space", nil},
		{strings.Repeat("x", 65), RoleViewer, "at most 64", nil},
	} {
		_, _, err := CreateToken(path, tc.name, tc.role, tokenT0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateToken(%q, %q): %v, want %q", tc.name, tc.role, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("CreateToken(%q): %v is not %v", tc.name, err, tc.is)
		}
	}
	recs, _ := ListTokens(path)
	if len(recs) != 1 {
		t.Errorf("refused creates wrote records: %+v", recs)
	}
}

func TestRevokeToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	tokA, a, _ := CreateToken(path, "alice", RoleAnalyst, tokenT0)
	_, b, _ := CreateToken(path, "bob", RoleViewer, tokenT0)
	later := tokenT0.Add(time.Hour)

	got, err := RevokeToken(path, "alice", later)
	if err != nil || got.ID != a.ID || got.RevokedAt == nil || !got.RevokedAt.Equal(later) {
		t.Fatalf("revoke by name: %+v %v", got, err)
	}
	if _, err := LookupToken(path, tokA); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked token still valid: %v", err)
	}
	if _, err := RevokeToken(path, b.ID, later); err != nil {
		t.Errorf("revoke by id: %v", err)
	}
	if _, err := RevokeToken(path, "alice", later); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("second revoke: %v, want ErrTokenRevoked", err)
	}
	if _, err := RevokeToken(path, "carol", later); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}
	// A revoked name is free again; revoking by the name then ends the
	// live one, not the old one.
	_, a2, err := CreateToken(path, "alice", RoleAdmin, later)
	if err != nil {
		t.Fatalf("reusing a revoked name: %v", err)
	}
	if got, err := RevokeToken(path, "alice", later); err != nil || got.ID != a2.ID {
		t.Errorf("revoke picks %+v %v, want the live %s", got, err, a2.ID)
	}
	recs, _ := ListTokens(path)
	if len(recs) != 3 {
		t.Fatalf("list: %+v", recs)
	}
	for _, r := range recs {
		if !r.Revoked() {
			t.Errorf("%s not revoked", r.ID)
		}
	}
}

// TestConcurrentCreates: writers in parallel (as two CLI invocations
// would be) lose nothing, thanks to the lock.
func TestConcurrentCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, _, err := CreateToken(path, fmt.Sprintf("bot-%d", i), RoleViewer, tokenT0)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := ListTokens(path)
	if err != nil || len(recs) != n {
		t.Fatalf("%d records after %d concurrent creates: %v", len(recs), n, err)
	}
}

func TestReadTokensRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"readable", "[]\n", 0o644, "has mode 644"},
		{"garbage", "{not: [a list", 0o600, "admin.tokens_file"},
		{"bad role", "- id: abcdefgh\n  name: x\n  role: root\n  sha256: " + strings.Repeat("0", 64) + "\n", 0o600, "entry 0"},
		{"no hash", "- id: abcdefgh\n  name: x\n  role: viewer\n", 0o600, "64-digit sha256"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.body), tc.mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(p, tc.mode)
		if _, err := ListTokens(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		// Writers refuse it too rather than overwrite what they cannot read.
		if _, _, err := CreateToken(p, "new", RoleViewer, tokenT0); err == nil {
			t.Errorf("%s: CreateToken wrote over a bad file", tc.name)
		}
	}
	if recs, err := ListTokens(filepath.Join(dir, "missing")); err != nil || len(recs) != 0 {
		t.Errorf("missing file: %v %v", recs, err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	if recs, err := ListTokens(empty); err != nil || len(recs) != 0 {
		t.Errorf("empty file: %v %v", recs, err)
	}
}

func TestTokenID(t *testing.T) {
	secret := strings.Repeat("A", 43)
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{"hl7b_abcdefgh_" + secret, true},
		{"hl7b_abcdefgh_" + secret[:42] + "_", true}, // '_' is base64url
		{"hl7b_ABCDEFGH_" + secret, false},           // IDs are lower case
		{"hl7b_abcdefg1_" + secret, false},           // 1 is not base32
		{"hl7b_abcdefgh_" + secret + "A", false},
		{"hl7b_abcdefgh-" + secret, false},
		{"hl7x_abcdefgh_" + secret, false},
		{"eyJhbGciOi.e30.sig", false},
	} {
		if _, ok := TokenID(tc.tok); ok != tc.ok {
			t.Errorf("TokenID(%q) ok = %v, want %v", tc.tok, ok, tc.ok)
		}
	}
}

// TestLocalOperator: who ran the command is a user and, when the host
// has a name, the host.
func TestLocalOperator(t *testing.T) {
	got := LocalOperator()
	who, host, _ := strings.Cut(got, "@")
	if who == "" {
		t.Errorf("LocalOperator() = %q: no user", got)
	}
	if h, err := os.Hostname(); err == nil && h != "" && host != h {
		t.Errorf("LocalOperator() = %q: host %q, want %q", got, host, h)
	}
}
