package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
)

// issuer is a local OpenID provider: discovery and JWKS from go-oidc's
// test server, with a key generated per test.
type issuer struct {
	srv  *httptest.Server
	key  *rsa.PrivateKey
	down atomic.Bool
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	s := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: oidc.RS256}}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(is.srv.Close)
	s.SetIssuer(is.srv.URL)
	return is
}

// sign returns a JWT of the issuer with claims over the defaults (iss,
// aud "hl7bus", sub, exp in an hour); a nil value deletes a claim.
func (is *issuer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": is.srv.URL, "aud": "hl7bus", "sub": "u-123", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, _ := json.Marshal(c)
	return oidctest.SignIDToken(is.key, "k1", oidc.RS256, string(b))
}

func TestOIDC(t *testing.T) {
	is := newIssuer(t)
	a, logs := newTestAuth(t, Config{OIDC: OIDC{
		Issuer: is.srv.URL, ClientID: "hl7bus",
		RoleMap: map[string]string{"hie-analysts": "analyst", "hie-ops": "operator"},
	}})
	other := newIssuer(t) // same claims, another key and issuer
	for _, tc := range []struct {
		name   string
		token  string
		want   Principal
		errSub string
	}{
		{"role by name", is.sign(t, map[string]any{"roles": []string{"viewer"}}), Principal{Actor: "u-123", Role: RoleViewer, Auth: "oidc"}, ""},
		{"role map", is.sign(t, map[string]any{"roles": []string{"hie-analysts"}}), Principal{Actor: "u-123", Role: RoleAnalyst, Auth: "oidc"}, ""},
		{"most privileged wins", is.sign(t, map[string]any{"roles": []string{"viewer", "hie-analysts", "hie-ops", "auditor"}}), Principal{Actor: "u-123", Role: RoleOperator, Auth: "oidc"}, ""},
		{"string claim", is.sign(t, map[string]any{"roles": "auditor"}), Principal{Actor: "u-123", Role: RoleAuditor, Auth: "oidc"}, ""},
		{"admin over all", is.sign(t, map[string]any{"roles": []string{"hie-ops", "admin"}}), Principal{Actor: "u-123", Role: RoleAdmin, Auth: "oidc"}, ""},
		// Authenticated without a role: the API answers 403 and audits.
		{"no known role", is.sign(t, map[string]any{"roles": []string{"staff"}}), Principal{Actor: "u-123", Auth: "oidc"}, ""},
		{"no roles claim", is.sign(t, nil), Principal{Actor: "u-123", Auth: "oidc"}, ""},
		{"wrong audience", is.sign(t, map[string]any{"aud": "another-app", "roles": "admin"}), Principal{}, "audience"},
		{"expired", is.sign(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "roles": "admin"}), Principal{}, "expired"},
		{"another key", other.sign(t, map[string]any{"roles": "admin"}), Principal{}, "signature"},
		{"another issuer", is.sign(t, map[string]any{"iss": other.srv.URL, "roles": "admin"}), Principal{}, "different provider"},
		{"no actor", is.sign(t, map[string]any{"sub": nil, "roles": "admin"}), Principal{}, `no string claim "sub"`},
		{"garbage", "not.a.jwt", Principal{}, "OIDC token"},
	} {
		p, err := authenticate(t, a, "Bearer "+tc.token)
		if tc.errSub == "" {
			if err != nil || p != tc.want {
				t.Errorf("%s: %+v %v, want %+v", tc.name, p, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.errSub) {
			t.Errorf("%s: %v, want ErrUnauthenticated with %q", tc.name, err, tc.errSub)
		}
		if err != nil && strings.Contains(err.Error(), tc.token) {
			t.Errorf("%s: the error quotes the token", tc.name)
		}
	}
	// A forged signature: the payload of one token with the signature of
	// another.
	good, admin := is.sign(t, map[string]any{"roles": "viewer"}), is.sign(t, map[string]any{"roles": "admin"})
	forged := strings.Join([]string{strings.Split(good, ".")[0], strings.Split(admin, ".")[1], strings.Split(good, ".")[2]}, ".")
	if _, err := authenticate(t, a, "Bearer "+forged); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("forged token accepted: %v", err)
	}
	if strings.Contains(logs.String(), "eyJ") {
		t.Errorf("a JWT reached the logs:\n%s", logs)
	}
}

func TestOIDCClaims(t *testing.T) {
	is := newIssuer(t)
	a, _ := newTestAuth(t, Config{OIDC: OIDC{
		Issuer: is.srv.URL, ClientID: "hl7bus",
		RolesClaim: "realm_access.roles", ActorClaim: "email",
	}})
	tok := is.sign(t, map[string]any{"email": "ana@example.org", "realm_access": map[string]any{"roles": []string{"analyst"}}})
	if p, err := authenticate(t, a, "Bearer "+tok); err != nil || p.Actor != "ana@example.org" || p.Role != RoleAnalyst {
		t.Errorf("nested roles claim and actor claim: %+v %v", p, err)
	}
	// A claim whose name holds dots is found as it is.
	b, _ := newTestAuth(t, Config{OIDC: OIDC{Issuer: is.srv.URL, ClientID: "hl7bus", RolesClaim: "https://hl7bus.example/roles"}})
	tok = is.sign(t, map[string]any{"https://hl7bus.example/roles": []string{"operator"}})
	if p, err := authenticate(t, b, "Bearer "+tok); err != nil || p.Role != RoleOperator {
		t.Errorf("namespaced claim: %+v %v", p, err)
	}
}

// TestOIDCIssuerDownAtStart: the authenticator starts (tokens work) and
// discovers the issuer once it answers.
func TestOIDCIssuerDownAtStart(t *testing.T) {
	is := newIssuer(t)
	is.down.Store(true)
	a, logs := newTestAuth(t, Config{OIDC: OIDC{Issuer: is.srv.URL, ClientID: "hl7bus"}})
	if !strings.Contains(logs.String(), "OIDC discovery failed") {
		t.Errorf("failed discovery not logged: %s", logs)
	}
	tok := is.sign(t, map[string]any{"roles": "viewer"})
	if _, err := authenticate(t, a, "Bearer "+tok); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("issuer down: %v", err)
	}
	is.down.Store(false)
	// Retries wait discoveryRetry; the test moves the last try back.
	a.oidc.mu.Lock()
	a.oidc.tried = time.Now().Add(-discoveryRetry)
	a.oidc.mu.Unlock()
	if p, err := authenticate(t, a, "Bearer "+tok); err != nil || p.Role != RoleViewer {
		t.Fatalf("issuer back: %+v %v", p, err)
	}
}

func TestValidateOIDC(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    OIDC
		want []string // empty: valid
	}{
		{"off", OIDC{}, nil},
		{"full", OIDC{Issuer: "https://idp", ClientID: "c", RoleMap: map[string]string{"g": "viewer"}}, nil},
		{"client without issuer", OIDC{ClientID: "c"}, []string{"admin.oidc.issuer: required"}},
		{"bad url", OIDC{Issuer: "idp.example", ClientID: "c"}, []string{`admin.oidc.issuer: "idp.example" is not an http(s) URL`}},
		{"no client", OIDC{Issuer: "https://idp"}, []string{"admin.oidc.client_id: required"}},
		{"bad role", OIDC{Issuer: "https://idp", ClientID: "c", RoleMap: map[string]string{"g": "boss"}}, []string{`admin.oidc.role_map.g: "boss" is not one of viewer`}},
	} {
		err := ValidateOIDC("admin.oidc", tc.c)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tc.name, err, w)
			}
		}
	}
}
