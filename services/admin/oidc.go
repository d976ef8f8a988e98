package admin

import (
	"context"
	"errors"
	"fmt"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Defaults of the OIDC section.
const (
	DefaultRolesClaim = "roles"
	DefaultActorClaim = "sub"
)

// rolePrecedence orders the roles from most to least privileged: a
// caller whose claim carries several gets the first of them. Operator
// ranks above analyst and auditor because it changes what the exchange
// does; the order is total so the outcome never depends on claim order.
var rolePrecedence = []Role{RoleAdmin, RoleOperator, RoleAnalyst, RoleAuditor, RoleViewer}

// discoveryRetry is how long a failed OIDC discovery is remembered
// before a request tries again, so a down identity provider costs one
// request in this many a failed round trip, not every one.
const discoveryRetry = 10 * time.Second

// oidcAuth verifies JWTs of one issuer.
type oidcAuth struct {
	cfg OIDC
	// ctx outlives requests: the verifier's key set fetches with it.
	ctx context.Context
	log *slog.Logger

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	tried    time.Time
	err      error
}

// ValidateOIDC checks the OIDC section, each error naming its key under
// prefix (admin.oidc).
func ValidateOIDC(prefix string, c OIDC) error {
	var errs []error
	if c.Issuer == "" {
		if c.ClientID != "" || len(c.RoleMap) > 0 {
			errs = append(errs, fmt.Errorf("%s.issuer: required when %s.client_id or %s.role_map is set", prefix, prefix, prefix))
		}
		return errors.Join(errs...)
	}
	if !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		errs = append(errs, fmt.Errorf("%s.issuer: %q is not an http(s) URL", prefix, c.Issuer))
	}
	if c.ClientID == "" {
		// Without an audience any token the issuer signs for any client
		// would be accepted.
		errs = append(errs, fmt.Errorf("%s.client_id: required with %s.issuer (the audience tokens must carry)", prefix, prefix))
	}
	for k, v := range c.RoleMap {
		if !Role(v).Valid() {
			errs = append(errs, fmt.Errorf("%s.role_map.%s: %q is not one of %s", prefix, k, v, roleList()))
		}
	}
	return errors.Join(errs...)
}

// newOIDCAuth checks cfg and tries discovery once; a failure is logged
// and retried on use.
func newOIDCAuth(ctx context.Context, cfg OIDC, log *slog.Logger) (*oidcAuth, error) {
	if err := ValidateOIDC("admin.oidc", cfg); err != nil {
		return nil, err
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = DefaultRolesClaim
	}
	if cfg.ActorClaim == "" {
		cfg.ActorClaim = DefaultActorClaim
	}
	o := &oidcAuth{cfg: cfg, ctx: ctx, log: log}
	if _, err := o.getVerifier(); err != nil {
		log.Warn("OIDC discovery failed; retrying on use", logattr.Issuer(cfg.Issuer), logattr.Error(err))
	}
	return o, nil
}

// getVerifier returns the verifier, discovering the issuer first if
// that has not succeeded yet.
func (o *oidcAuth) getVerifier() (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	if !o.tried.IsZero() && time.Since(o.tried) < discoveryRetry {
		return nil, o.err
	}
	o.tried = time.Now()
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		o.err = fmt.Errorf("discovering OIDC issuer %s: %w", o.cfg.Issuer, err)
		return nil, o.err
	}
	// The key set keeps o.ctx (not the timeout above) for its later
	// fetches when the issuer rotates keys.
	o.verifier = p.VerifierContext(o.ctx, &oidc.Config{ClientID: o.cfg.ClientID})
	return o.verifier, nil
}

// authenticate verifies raw (signature, issuer, audience, expiry) and
// maps its claims to a principal. A valid token without a known role is
// a principal with an empty role, not an error: the caller is who they
// say, they may do nothing, and the API answers 403 with an audit
// record (access.denied) rather than 401.
func (o *oidcAuth) authenticate(ctx context.Context, raw string) (Principal, error) {
	v, err := o.getVerifier()
	if err != nil {
		o.log.Warn("cannot verify an OIDC token", logattr.Error(err))
		return Principal{}, fmt.Errorf("OIDC issuer unavailable: %w", ErrUnauthenticated)
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		// go-oidc's errors name claims and keys, never the token.
		return Principal{}, fmt.Errorf("OIDC token: %v: %w", err, ErrUnauthenticated)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("OIDC token claims: %v: %w", err, ErrUnauthenticated)
	}
	actor, _ := claim(claims, o.cfg.ActorClaim).(string)
	if actor == "" {
		return Principal{}, fmt.Errorf("OIDC token has no string claim %q (admin.oidc.actor_claim): %w", o.cfg.ActorClaim, ErrUnauthenticated)
	}
	return Principal{Actor: actor, Role: o.role(claim(claims, o.cfg.RolesClaim)), Auth: "oidc"}, nil
}

// role maps a roles claim value (a string or a list of strings) to the
// most privileged role it names through role_map (or by role name);
// "" when it names none.
func (o *oidcAuth) role(v any) Role {
	var values []string
	switch x := v.(type) {
	case string:
		// Some providers put several roles in one space-separated string,
		// as OAuth does with scope.
		values = strings.Fields(x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	}
	have := map[Role]bool{}
	for _, s := range values {
		if r, ok := o.cfg.RoleMap[s]; ok {
			have[Role(r)] = true
		} else if Role(s).Valid() {
			have[Role(s)] = true
		}
	}
	for _, r := range rolePrecedence {
		if have[r] {
			return r
		}
	}
	return ""
}

// claim looks name up in claims: the name as it is (claims like
// "https://example.com/roles" hold dots), else as a dotted path into
// nested objects (Keycloak's "realm_access.roles").
func claim(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}
