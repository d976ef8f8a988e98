package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// The bearer token format: hl7b_<id>_<secret>. The prefix lets a secret
// scanner (and the authenticator) tell an hl7bus token from an OIDC JWT;
// the ID (8 characters of base32, 40 random bits) finds the record
// without comparing against every hash; the secret is 32 random bytes,
// base64url (43 characters, which may themselves hold '_').
const (
	// TokenPrefix starts every hl7bus bearer token.
	TokenPrefix = "hl7b_"
	tokenIDLen  = 8
	// tokenSecretLen is the encoded length of 32 bytes, base64url without
	// padding.
	tokenSecretLen = 43
	// maxTokenName bounds a name: it is the actor of audit records.
	maxTokenName = 64
)

// tokenIDEncoding spells IDs in lower case: they are typed in
// `hl7bus admin tokens revoke ID`.
var tokenIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Errors of the token store.
var (
	// ErrTokenNameTaken is returned by CreateToken when a live token
	// already has the name.
	ErrTokenNameTaken = errors.New("a live token already has this name")
	// ErrTokenRevoked is returned by RevokeToken when the token matched
	// is already revoked.
	ErrTokenRevoked = errors.New("token is already revoked")
)

// TokenRecord is one token of the tokens file. The file holds the
// token's SHA-256, never the token.
type TokenRecord struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name" json:"name"`
	Role Role   `yaml:"role" json:"role"`
	// SHA256 is the hex SHA-256 of the whole token text.
	SHA256    string    `yaml:"sha256" json:"-"`
	CreatedAt time.Time `yaml:"created_at" json:"created_at"`
	// CreatedBy and RevokedBy say who ran `hl7bus admin tokens
	// create|revoke` (LocalOperator: user@host): the tokens file is
	// edited on the host, not through the API, so this is the only
	// record of who it was, and the audit events of the change name it
	// as the actor. Empty in files written before they existed.
	CreatedBy string     `yaml:"created_by,omitempty" json:"created_by,omitempty"`
	RevokedAt *time.Time `yaml:"revoked_at,omitempty" json:"revoked_at,omitempty"`
	RevokedBy string     `yaml:"revoked_by,omitempty" json:"revoked_by,omitempty"`
}

// Revoked reports whether the token was revoked.
func (r TokenRecord) Revoked() bool { return r.RevokedAt != nil }

// TokenID returns the ID part of an hl7bus token, and false when tok is
// not one (wrong prefix or lengths). It never looks at the file.
func TokenID(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok || len(rest) != tokenIDLen+1+tokenSecretLen || rest[tokenIDLen] != '_' {
		return "", false
	}
	id := rest[:tokenIDLen]
	if _, err := tokenIDEncoding.DecodeString(id); err != nil {
		return "", false
	}
	return id, true
}

// tokenHash is the hex SHA-256 the file stores for tok.
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// newToken returns a fresh token text and its ID.
func newToken() (tok, id string, err error) {
	idBytes, secret := make([]byte, 5), make([]byte, 32)
	if _, err := rand.Read(idBytes); err != nil {
		return "", "", fmt.Errorf("generating a token: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return "", "", fmt.Errorf("generating a token: %w", err)
	}
	id = tokenIDEncoding.EncodeToString(idBytes)
	return TokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret), id, nil
}

// checkTokenName refuses names that would be confusing as an audit actor
// or on a command line.
func checkTokenName(name string) error {
	if name == "" {
		return errors.New("a token needs a name (--name)")
	}
	if len(name) > maxTokenName {
		return fmt.Errorf("name is %d bytes long, at most %d", len(name), maxTokenName)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("name %q has a space or an unprintable character", name)
		}
	}
	return nil
}

// roleList is the roles for error texts: "viewer, analyst, ...".
func roleList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// LocalOperator names whoever runs this process, for CreatedBy and
// RevokedBy: the OS user name and the host name, "user@host". When the
// user cannot be looked up (no passwd entry in a container) it is the
// numeric uid; an unknown host name is left out.
func LocalOperator() string {
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if who == "" {
		who = "uid:" + strconv.Itoa(os.Getuid())
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		who += "@" + host
	}
	return who
}

// CreateToken is CreateTokenBy with no CreatedBy (the standalone's own
// admin token, which the process mints for itself).
func CreateToken(path, name string, role Role, now time.Time) (string, TokenRecord, error) {
	return CreateTokenBy(path, name, role, "", now)
}

// CreateTokenBy mints a token named name with role, registers its hash
// in the tokens file at path (created, mode 0600, with its directory,
// when missing) with by as its CreatedBy, and returns the token text,
// which is never stored: the caller shows it once. Names are unique
// among live tokens.
func CreateTokenBy(path, name string, role Role, by string, now time.Time) (string, TokenRecord, error) {
	if err := checkTokenName(name); err != nil {
		return "", TokenRecord{}, err
	}
	if !role.Valid() {
		return "", TokenRecord{}, fmt.Errorf("role %q is not one of %s", role, roleList())
	}
	var tok string
	var rec TokenRecord
	err := updateTokens(path, func(recs []TokenRecord) ([]TokenRecord, error) {
		for _, r := range recs {
			if r.Name == name && !r.Revoked() {
				return nil, fmt.Errorf("token name %q (id %s): %w; revoke it first or choose another name", name, r.ID, ErrTokenNameTaken)
			}
		}
		for {
			var id string
			var err error
			if tok, id, err = newToken(); err != nil {
				return nil, err
			}
			// 40 random bits make a clash unlikely, not impossible.
			if !slices.ContainsFunc(recs, func(r TokenRecord) bool { return r.ID == id }) {
				rec = TokenRecord{ID: id, Name: name, Role: role, SHA256: tokenHash(tok), CreatedAt: now.UTC().Truncate(time.Second), CreatedBy: by}
				return append(recs, rec), nil
			}
		}
	})
	if err != nil {
		return "", TokenRecord{}, err
	}
	return tok, rec, nil
}

// RevokeToken is RevokeTokenBy with no RevokedBy.
func RevokeToken(path, idOrName string, now time.Time) (TokenRecord, error) {
	return RevokeTokenBy(path, idOrName, "", now)
}

// RevokeTokenBy marks the token with ID idOrName, or else the live
// token named idOrName, revoked at now by by (RevokedBy). The
// authenticator refuses it from its next look at the file. An unknown
// token answers ErrNotFound, one revoked before ErrTokenRevoked.
func RevokeTokenBy(path, idOrName, by string, now time.Time) (TokenRecord, error) {
	var rec TokenRecord
	err := updateTokens(path, func(recs []TokenRecord) ([]TokenRecord, error) {
		i := slices.IndexFunc(recs, func(r TokenRecord) bool { return r.ID == idOrName })
		if i < 0 {
			i = slices.IndexFunc(recs, func(r TokenRecord) bool { return r.Name == idOrName && !r.Revoked() })
		}
		if i < 0 {
			i = slices.IndexFunc(recs, func(r TokenRecord) bool { return r.Name == idOrName })
		}
		if i < 0 {
			return nil, fmt.Errorf("no token with id or name %q in %s: %w", idOrName, path, ErrNotFound)
		}
		if recs[i].Revoked() {
			rec = recs[i]
			return nil, fmt.Errorf("token %s (%s) at %s: %w", recs[i].ID, recs[i].Name, recs[i].RevokedAt.Format(time.RFC3339), ErrTokenRevoked)
		}
		at := now.UTC().Truncate(time.Second)
		recs[i].RevokedAt, recs[i].RevokedBy = &at, by
		rec = recs[i]
		return recs, nil
	})
	return rec, err
}

// ListTokens returns the tokens of the file at path, revoked ones too,
// in the order they were created; none when the file does not exist.
func ListTokens(path string) ([]TokenRecord, error) {
	recs, _, err := readTokens(path)
	return recs, err
}

// LookupToken returns the live record of tok in the tokens file at
// path, or an error wrapping ErrUnauthenticated when the file does not
// hold it (unknown, wrong secret, revoked).
func LookupToken(path, tok string) (TokenRecord, error) {
	recs, _, err := readTokens(path)
	if err != nil {
		return TokenRecord{}, err
	}
	return matchToken(indexTokens(recs), tok)
}

// readTokens reads and checks the tokens file; a missing file is an
// empty list. The FileInfo is nil then.
func readTokens(path string) ([]TokenRecord, fs.FileInfo, error) {
	if path == "" {
		return nil, nil, errors.New("admin.tokens_file: not set")
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("admin.tokens_file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("admin.tokens_file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		// As ssh does with a private key: the hashes are not the tokens,
		// but a file others may read is a file others may write.
		return nil, nil, fmt.Errorf("admin.tokens_file: %s has mode %o: other users could read it; chmod 600 %s", path, perm, path)
	}
	var recs []TokenRecord
	if err := yaml.NewDecoder(f).Decode(&recs); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("admin.tokens_file: %s: %w", path, err)
	}
	for i, r := range recs {
		if r.ID == "" || len(r.SHA256) != sha256.Size*2 || !r.Role.Valid() {
			return nil, nil, fmt.Errorf("admin.tokens_file: %s: entry %d (id %q) needs an id, a role of %s and a 64-digit sha256", path, i, r.ID, roleList())
		}
	}
	return recs, st, nil
}

// updateTokens applies change to the tokens file under an exclusive lock
// and replaces the file atomically, so two `hl7bus admin tokens`
// invocations cannot lose each other's change and a reader sees the old
// file or the new one, never half of one.
func updateTokens(path string, change func([]TokenRecord) ([]TokenRecord, error)) error {
	if path == "" {
		return errors.New("admin.tokens_file: not set")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("admin.tokens_file: creating %s: %w", dir, err)
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return fmt.Errorf("admin.tokens_file: locking %s: %w", path, err)
	}
	defer unlock()
	recs, _, err := readTokens(path)
	if err != nil {
		return err
	}
	recs, err = change(recs)
	if err != nil {
		return err
	}
	body, err := yaml.Marshal(recs)
	if err != nil {
		return fmt.Errorf("admin.tokens_file: encoding: %w", err)
	}
	body = append([]byte(tokensFileHeader), body...)
	return writeFileAtomic(path, body)
}

// tokensFileHeader says what the file is to whoever opens it.
const tokensFileHeader = "# hl7bus admin API bearer tokens: the SHA-256 of each, never the token.\n" +
	"# Managed by `hl7bus admin tokens create|revoke|list`; the API re-reads it when it changes.\n"

// writeFileAtomic writes body to a temporary file in path's directory
// (mode 0600), syncs it and renames it over path.
func writeFileAtomic(path string, body []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(body)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// The rename is durable once the directory is synced; a failure to
	// sync it is not worth failing a written file for.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
