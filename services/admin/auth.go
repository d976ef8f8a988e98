package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
)

// Auth is the admin API's Authenticator: hl7bus bearer tokens from the
// tokens file and, when admin.oidc.issuer is set, JWTs of that issuer.
type Auth struct {
	log        *slog.Logger
	tokensFile string
	oidc       *oidcAuth

	mu sync.Mutex
	// st is the tokens file as last read (nil: missing or never read);
	// byID its live and revoked records by ID; loadErr why the last read
	// failed (then no token is accepted until the file is fixed: a
	// broken file must not keep a revoked token valid).
	st      fs.FileInfo
	byID    map[string]TokenRecord
	loadErr error
	// known is the last file that read well, the base of the change
	// reports: a broken or missing file in between does not make every
	// token new again when it comes back. nil before the first read,
	// which reports nothing (the tokens that exist at start are no
	// change).
	known map[string]TokenRecord
	// onChange are the OnChange callbacks.
	onChange []func(added, revoked []TokenRecord)

	// notifyMu orders the callbacks as the reads that found the changes:
	// it is taken before mu is released.
	notifyMu sync.Mutex
}

var _ Authenticator = (*Auth)(nil)

// NewAuthenticator returns the authenticator of cfg. It needs
// admin.tokens_file or admin.oidc.issuer. A missing tokens file is
// empty (`hl7bus admin tokens create` makes it, and it is read when it
// appears); a file others can read, or one that does not parse, is an
// error. An OIDC issuer that cannot be reached now is tried again on
// use, so the tokens work while the identity provider is down. ctx
// bounds the OIDC key fetches.
func NewAuthenticator(ctx context.Context, cfg Config, log *slog.Logger) (*Auth, error) {
	if cfg.TokensFile == "" && cfg.OIDC.Issuer == "" {
		return nil, errors.New("admin.tokens_file: required (or admin.oidc.issuer)")
	}
	a := &Auth{log: log, tokensFile: cfg.TokensFile}
	if cfg.TokensFile != "" {
		a.mu.Lock()
		_, _, err := a.reloadLocked()
		a.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if a.st == nil {
			log.Warn("admin tokens file does not exist yet; no bearer token is valid until 'hl7bus admin tokens create' makes one",
				logattr.Path(cfg.TokensFile))
		}
	}
	if cfg.OIDC.Issuer != "" {
		o, err := newOIDCAuth(ctx, cfg.OIDC, log)
		if err != nil {
			return nil, err
		}
		a.oidc = o
	}
	return a, nil
}

// Authenticate implements Authenticator: `Authorization: Bearer TOKEN`.
// Errors wrap ErrUnauthenticated and never quote the token.
func (a *Auth) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if h == "" {
		return Principal{}, fmt.Errorf("no Authorization header: %w", ErrUnauthenticated)
	}
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Principal{}, fmt.Errorf("authorization is not a bearer token: %w", ErrUnauthenticated)
	}
	if strings.HasPrefix(tok, TokenPrefix) {
		return a.token(tok)
	}
	if a.oidc != nil {
		return a.oidc.authenticate(r.Context(), tok)
	}
	return Principal{}, fmt.Errorf("bearer token is not an hl7bus token (%s...) and no OIDC issuer is configured: %w", TokenPrefix, ErrUnauthenticated)
}

// token authenticates an hl7bus token against the tokens file, re-read
// first if it changed.
func (a *Auth) token(tok string) (Principal, error) {
	if a.tokensFile == "" {
		return Principal{}, fmt.Errorf("hl7bus tokens are not configured (admin.tokens_file): %w", ErrUnauthenticated)
	}
	byID, loadErr := a.refresh()
	if loadErr != nil {
		return Principal{}, fmt.Errorf("tokens file unreadable: %w", ErrUnauthenticated)
	}
	rec, err := matchToken(byID, tok)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Actor: rec.Name, Role: rec.Role, Auth: "token", TokenID: rec.ID}, nil
}

// OnChange registers fn to be told of the tokens a later read of the
// tokens file finds created (IDs not in the file before) and newly
// revoked (a created-and-revoked token is in both), each in file order.
// The tokens at start are no change. The file is read on each
// hl7bus-token request and on Refresh; fn runs after the read, outside
// the authenticator's lock, one call at a time in the order of the
// reads, and may block (the admin module writes audit events from it).
// The records hold the tokens' hashes: never pass those on.
func (a *Auth) OnChange(fn func(added, revoked []TokenRecord)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onChange = append(a.onChange, fn)
}

// Refresh re-reads the tokens file if it changed, as a request would,
// and reports the changes to the OnChange callbacks: calling it on a
// timer makes a create or revoke reach them without waiting for a
// request. It returns why the file cannot be read, if it cannot.
func (a *Auth) Refresh() error {
	if a.tokensFile == "" {
		return nil
	}
	_, err := a.refresh()
	return err
}

// refresh re-reads the file when it changed, logs a read error of a
// change, tells the callbacks of the tokens it finds changed and returns
// the records in force and the read error in force.
func (a *Auth) refresh() (map[string]TokenRecord, error) {
	a.mu.Lock()
	added, revoked, err := a.reloadLocked()
	if err != nil {
		a.log.Error("cannot read the admin tokens file; refusing every token until it is fixed", logattr.Path(a.tokensFile), logattr.Error(err))
	}
	byID, loadErr := a.byID, a.loadErr
	if len(added)+len(revoked) == 0 || len(a.onChange) == 0 {
		a.mu.Unlock()
		return byID, loadErr
	}
	fns := slices.Clone(a.onChange)
	a.notifyMu.Lock()
	a.mu.Unlock()
	defer a.notifyMu.Unlock()
	for _, fn := range fns {
		fn(added, revoked)
	}
	return byID, loadErr
}

// reloadLocked re-reads the tokens file when a stat says it changed
// (another file renamed over it, or its mtime or size differ). The stat
// per request is cheap next to the request; it makes a create or
// revoke take effect on the next request. It returns the tokens the
// read found created and revoked since the last good read (none on the
// first), and the read error of a change only (logged once, not per
// request).
func (a *Auth) reloadLocked() (added, revoked []TokenRecord, err error) {
	st, err := os.Stat(a.tokensFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if a.known == nil {
			// Missing at start: every token that appears is new.
			a.known = map[string]TokenRecord{}
		}
		if a.st == nil && a.loadErr == nil && a.byID != nil {
			return nil, nil, nil
		}
		a.st, a.byID, a.loadErr = nil, map[string]TokenRecord{}, nil
		return nil, nil, nil
	case err != nil:
		a.loadErr = err
		return nil, nil, err
	}
	if a.st != nil && os.SameFile(a.st, st) && a.st.ModTime().Equal(st.ModTime()) && a.st.Size() == st.Size() && a.st.Mode() == st.Mode() {
		return nil, nil, nil
	}
	recs, read, err := readTokens(a.tokensFile)
	// Remember the stat even on error, so a broken file is reported once
	// per change rather than on every request.
	a.st = st
	if err != nil {
		a.byID, a.loadErr = nil, err
		return nil, nil, err
	}
	if read != nil {
		a.st = read
	}
	a.byID, a.loadErr = indexTokens(recs), nil
	if a.known != nil {
		added, revoked = tokenChanges(a.known, recs)
	}
	a.known = a.byID
	return added, revoked, nil
}

// tokenChanges returns the records of recs whose ID before lacks
// (created) and those revoked in recs but not in before (revoked), in
// the order of recs.
func tokenChanges(before map[string]TokenRecord, recs []TokenRecord) (added, revoked []TokenRecord) {
	for _, r := range recs {
		old, had := before[r.ID]
		if !had {
			added = append(added, r)
		}
		if r.Revoked() && (!had || !old.Revoked()) {
			revoked = append(revoked, r)
		}
	}
	return added, revoked
}

// indexTokens maps records by ID.
func indexTokens(recs []TokenRecord) map[string]TokenRecord {
	m := make(map[string]TokenRecord, len(recs))
	for _, r := range recs {
		m[r.ID] = r
	}
	return m
}

// matchToken finds tok's record by its ID and compares the hashes in
// constant time. Unknown, mismatched and revoked tokens answer
// ErrUnauthenticated; the text names the token ID at most.
func matchToken(byID map[string]TokenRecord, tok string) (TokenRecord, error) {
	id, ok := TokenID(tok)
	if !ok {
		return TokenRecord{}, fmt.Errorf("malformed hl7bus token: %w", ErrUnauthenticated)
	}
	rec, found := byID[id]
	want, err := hex.DecodeString(rec.SHA256)
	if !found || err != nil {
		// Compare anyway, so an unknown ID takes as long as a wrong secret.
		want = make([]byte, sha256.Size)
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], want) != 1 || !found {
		return TokenRecord{}, fmt.Errorf("unknown token %s: %w", id, ErrUnauthenticated)
	}
	if rec.Revoked() {
		return TokenRecord{}, fmt.Errorf("token %s was revoked: %w", id, ErrUnauthenticated)
	}
	return rec, nil
}
