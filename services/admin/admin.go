// Package admin is the admin API (`hl7bus admin`): HTTP/JSON under
// /api/v1 with its OpenAPI document at /api/openapi.json, bearer-token and
// OIDC authentication, roles, the audit trail, replay jobs and destination
// control. It reads the message index through the Index interface (the
// composition root adapts services/index to it: stages never import each
// other) and Kafka records by offset through RecordReader.
package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	libconfig "github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/services/admin/api"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is the admin section of the configuration file.
type Config struct {
	// Address to listen on. Default 127.0.0.1:9465.
	Address string `yaml:"address"`
	// TLS serves the API over TLS when cert_file is set (the design's
	// one server TLS block).
	TLS libconfig.ServerTLS `yaml:"tls"`
	// TokensFile holds the bearer tokens, hashed (tokens.go). Standalone
	// default <data_dir>/secrets/admin-tokens.
	TokensFile string `yaml:"tokens_file"`
	// OIDC, when issuer is set, also accepts ID/access tokens of that
	// issuer, the role from a claim.
	OIDC OIDC `yaml:"oidc"`
	// Replay bounds replay jobs.
	Replay ReplayConfig `yaml:"replay"`
}

// OIDC configures OpenID Connect bearer tokens.
type OIDC struct {
	Issuer string `yaml:"issuer"`
	// ClientID is the audience the tokens must carry.
	ClientID string `yaml:"client_id"`
	// RolesClaim names the claim holding the role (a string or a list of
	// strings; the most privileged known role wins). Default "roles".
	RolesClaim string `yaml:"roles_claim"`
	// RoleMap maps claim values to roles (e.g. "hie-analysts": analyst);
	// a value that is already a role name maps to itself.
	RoleMap map[string]string `yaml:"role_map"`
	// ActorClaim names the claim used as the actor in audit records.
	// Default "sub".
	ActorClaim string `yaml:"actor_claim"`
}

// ReplayConfig bounds replay jobs.
type ReplayConfig struct {
	// MaxMessages refuses a selector matching more (narrow it). Default
	// 10000.
	MaxMessages int `yaml:"max_messages"`
	// Rate is a job's default records per second. Default 50.
	Rate float64 `yaml:"rate"`
	// MaxRate caps what a job may ask for. Default 1000.
	MaxRate float64 `yaml:"max_rate"`
}

// Defaults.
const (
	DefaultAddress     = "127.0.0.1:9465"
	DefaultMaxMessages = 10000
	DefaultRate        = 50
	DefaultMaxRate     = 1000
)

// Principal is an authenticated caller.
type Principal struct {
	// Actor is the token's name or the OIDC actor claim; it is what audit
	// records say.
	Actor string
	Role  Role
	// Auth is "token" or "oidc".
	Auth string
	// TokenID is the bearer token's ID ("" for OIDC).
	TokenID string
}

// Authenticator establishes who a request comes from. It answers
// ErrUnauthenticated (401) when the request has no valid credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Auditor writes audit events durably: an action that must be audited
// (a content read, a replay) fails when its event cannot be written.
type Auditor interface {
	Audit(ctx context.Context, e canonical.AuditEvent) error
}

// SearchQuery is GET /api/v1/messages after validation.
type SearchQuery struct {
	ControlID string
	// PatientID and PatientAuthority are hashed by the Index
	// (PatientKey), never stored or logged as typed.
	PatientID, PatientAuthority string
	Interface, Facility, Type   string
	Status                      string
	Since, Until                time.Time
	Limit                       int
	Cursor                      string
}

// DeadLetterQuery is GET /api/v1/dead-letters after validation.
type DeadLetterQuery struct {
	Stage            string
	IncludeDiscarded bool
	Limit            int
	Cursor           string
}

// AuditQuery is GET /api/v1/audit after validation.
type AuditQuery struct {
	Actor, Action string
	Since, Until  time.Time
	Limit         int
	Cursor        string
}

// IndexEntry is what the index holds about one message: its row, where
// its records are, and its dead letters.
type IndexEntry struct {
	api.Message
	PatientKey  string
	Records     []api.Record
	DeadLetters []api.DeadLetter
}

// Index is the read side of the message index, as the admin API needs it.
// ErrNotFound answers an unknown ID.
type Index interface {
	// PatientKey is the index's keyed hash of a patient identifier (what
	// searches and audit selectors use instead of the identifier).
	PatientKey(authority, id string) string
	Search(ctx context.Context, q SearchQuery) (api.MessagePage, error)
	Message(ctx context.Context, id string) (*IndexEntry, error)
	DeadLetters(ctx context.Context, q DeadLetterQuery) (api.DeadLetterPage, error)
	DeadLetter(ctx context.Context, id string) (*api.DeadLetter, error)
	Audit(ctx context.Context, q AuditQuery) (api.AuditPage, error)
	// Counts are messages received since, by status, per interface and
	// per destination.
	Counts(ctx context.Context, since time.Time) (interfaces, destinations map[string]map[string]int64, err error)
	// Select lists the messages a replay selector matches (at most
	// limit+1, so the caller sees there are more), oldest first, with
	// their records and destinations. Dead-letter selectors resolve
	// through the dead letters' message IDs.
	Select(ctx context.Context, s api.ReplaySelector, limit int) ([]IndexEntry, error)
	// NewerDelivered returns a message of the same patient (patient key),
	// received after at, that is delivered to destination; "" if none.
	NewerDelivered(ctx context.Context, patientKey, destination string, at time.Time, messageID string) (string, error)
}

// RecordReader reads one Kafka record by its place. It answers
// ErrRecordGone when the offset is no longer on the topic (retention).
type RecordReader interface {
	Read(ctx context.Context, topic string, partition int32, offset int64) (*kgo.Record, error)
}

// Replayer runs replay jobs (replay.go): plans (dry runs), starts,
// lists and cancels them, discards dead letters; Run follows the replay
// topic and, on the one replica that holds the runner's lease, runs them.
type Replayer interface {
	Plan(ctx context.Context, p Principal, req api.ReplayRequest) (*api.ReplayPlan, error)
	// Start answers ErrConfirmNewer with the plan when the plan has
	// warnings and req.ConfirmNewer is false.
	Start(ctx context.Context, p Principal, req api.ReplayRequest) (*api.ReplayJob, *api.ReplayPlan, error)
	Jobs(ctx context.Context) ([]api.ReplayJob, error)
	Job(ctx context.Context, id string) (*api.ReplayJob, error)
	Cancel(ctx context.Context, p Principal, id string) (*api.ReplayJob, error)
	Discard(ctx context.Context, p Principal, ids []string, reason string) (int, error)
	Run(ctx context.Context) error
}

// Controller sets destinations' state through the compacted control
// topic (control.go). Reset answers ErrNotPaused unless the destination
// is paused; Resume answers ErrResetPending (a *ResetPendingError) while
// the latest reset is not applied on every partition, unless force;
// ResetStatus says where the latest reset stands.
type Controller interface {
	States(ctx context.Context) (map[string]canonical.ControlState, error)
	Pause(ctx context.Context, p Principal, destination, reason string) error
	Resume(ctx context.Context, p Principal, destination, reason string, force bool) error
	Reset(ctx context.Context, p Principal, destination string, to time.Time) error
	ResetStatus(ctx context.Context, destination string) (ResetStatus, error)
	Run(ctx context.Context) error
}

// Errors the handlers map to HTTP statuses.
var (
	ErrUnauthenticated = errors.New("not authenticated")          // 401
	ErrForbidden       = errors.New("role does not allow this")   // 403
	ErrNotFound        = errors.New("not found")                  // 404
	ErrConfirmNewer    = errors.New("replay needs confirm_newer") // 409
	ErrNotPaused       = errors.New("destination is not paused")  // 409
	ErrRecordGone      = errors.New("record no longer on the topic")
	// ErrResetPending (409) answers a Resume while the destination's
	// latest reset is not applied on every partition of its topic:
	// resuming then would let egress deliver from where it was and drop
	// the reset. Control.Resume returns it as a *ResetPendingError.
	ErrResetPending = errors.New("a reset of the destination is not applied yet")
)

// FieldError is a bad request naming the query parameter or body field
// at fault (400). Msg never quotes a patient identifier.
type FieldError struct {
	Param string
	Msg   string
}

func (e *FieldError) Error() string { return e.Param + ": " + e.Msg }
