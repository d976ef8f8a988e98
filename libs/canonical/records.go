package canonical

import "time"

// Header is the MSH summary every record after ingress carries.
type Header struct {
	SendingApplication   string
	SendingFacility      string
	ReceivingApplication string
	ReceivingFacility    string
	MessageCode          string
	TriggerEvent         string
	MessageStructure     string
	ControlID            string // the sender's MSH-10
	ProcessingID         string
	Version              string
	Charset              string
}

// Raw is what ingress received (topic raw).
type Raw struct {
	MessageID   string
	Interface   string
	ReceivedAt  time.Time
	Protocol    string
	Peer        string
	TLSIdentity string // "" when none
	OrderingKey string
	Header      Header
	// Payload is the frame as received: one message or one batch.
	Payload []byte
	// Ordering is the interface's ordering mode OrderingKey was computed
	// by ("" in records written before it, read as OrderPatient).
	Ordering string
	// Rejected is the ingress verdict, nil when the message was accepted.
	Rejected *Rejection
}

// Rejection is why ingress refused a frame it stored: the record is never
// routed, parse dead-letters it with ErrorRejectedAtIngress.
type Rejection struct {
	// Code is one of the Reject* classes.
	Code string
	// Reason names positions and limits, never message content.
	Reason string
}

// Codes of a Rejection.
const (
	RejectUnparseable        = "unparseable"          // no usable MSH, or a segment that cannot be read
	RejectMissingHeaderField = "missing_header_field" // MSH-9, MSH-10 or MSH-12 empty
	RejectUnexpectedMSA      = "unexpected_msa"       // an MSA in a message whose MSH-9 is not ACK
	RejectAcknowledgement    = "acknowledgement"      // an ACK sent to an inbound interface (not answered)
	RejectSeveralMessages    = "several_messages"     // several MSH in one frame without FHS/BHS
	RejectBatchCount         = "batch_count"          // BTS-1 or FTS-1 disagrees with the content
	RejectBatchStructure     = "batch_structure"      // batch headers and trailers that do not nest
	RejectProfileError       = "profile_error"        // fails the interface's profile (ack.on_profile_error: error)
	RejectTooLarge           = "too_large"            // larger than a record can be
)

// Issue is one validation finding.
type Issue struct {
	Severity string
	Code     int
	Location string
	Rule     string
	Text     string
}

// Validation is a message's validation report.
type Validation struct {
	Version   string
	Structure string
	Valid     bool
	// Issues holds at most MaxIssues findings; IssuesTruncated counts the
	// rest.
	Issues          []Issue
	IssuesTruncated int
}

// MaxIssues bounds a validation report: a message with 10,000 bad OBX must
// not make a record ten times its own size.
const MaxIssues = 100

// Parsed is a parsed and validated message (topic parsed).
type Parsed struct {
	MessageID   string
	Interface   string
	ReceivedAt  time.Time
	OrderingKey string
	Header      Header
	Delimiters  string
	Validation  Validation
	Payload     []byte
	// ParentMessageID is the raw record's message ID for a message split
	// from a batch, "" otherwise.
	ParentMessageID string
}

// Identifier is one patient identifier (PID-3 repetition).
type Identifier struct {
	Value, Authority, Type string
}

// Patient is the typed projection of PID.
type Patient struct {
	Identifiers []Identifier
	FamilyName  string
	GivenName   string
	// BirthDate is PID-7's date as written, at its precision: YYYY,
	// YYYY-MM or YYYY-MM-DD (see PatientOf).
	BirthDate string
	Sex       string
}

// Transformed is the normalized canonical message (topic transformed).
type Transformed struct {
	MessageID   string
	Interface   string
	ReceivedAt  time.Time
	OrderingKey string
	Header      Header
	Message     []byte
	// MessageTime is MSH-7 in UTC (RFC 3339), "" when absent or unreadable;
	// MessageTimeOffset keeps the sender's offset ("+01:00").
	MessageTime       string
	MessageTimeOffset string
	Patient           *Patient
	// ConfigVersion is the configuration version whose inbound rules made
	// the record ("" in records written before rules).
	ConfigVersion string
	// Issues are the inbound rules' findings (a code a map rule with
	// unmapped: flag could not map); validation issues stay on Parsed.
	Issues []Issue
	// ParentMessageID is the message ID of the message this one was split
	// from (by a split rule, or parse from a batch), "" otherwise.
	ParentMessageID string
}

// Content types of Out.Payload.
const (
	ContentTypeV2   = "x-application/hl7-v2+er7"
	ContentTypeFHIR = "application/fhir+json"
)

// Out is what one destination should receive (topic out.<destination>).
type Out struct {
	MessageID   string
	Interface   string
	ReceivedAt  time.Time
	OrderingKey string
	ControlID   string
	Destination string
	Route       string
	ContentType string
	Payload     []byte
	// ConfigVersion is the configuration version whose routes and
	// destination rules made the record ("" in records written before
	// rules).
	ConfigVersion string
}

// Error classes of a dead letter.
const (
	ErrorPermanent = "permanent"
	ErrorTransient = "transient" // retries exhausted
	// ErrorRejectedAtIngress is a raw record ingress stored with a verdict
	// (Raw.Rejected): parse dead-letters it without trying to parse it.
	ErrorRejectedAtIngress = "rejected_at_ingress"
)

// DeadLetter is a record a stage could not handle (topic dlq.<stage>).
type DeadLetter struct {
	MessageID       string
	ControlID       string
	Stage           string
	ErrorClass      string
	Reason          string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	Attempts        int
	FirstFailedAt   time.Time
	LastFailedAt    time.Time
	Key             []byte // nil when the input had none
	Value           []byte
	Headers         map[string][]byte
	// Destination is set when only that destination's copy failed (a
	// destination rule in route, or egress): a replay re-runs that
	// destination only. "" when the whole record failed.
	Destination string
	// Program is set when only that surveillance program's copy failed,
	// "" otherwise.
	Program string
}

// Delivery outcomes; OutcomeDeadLettered is also a Decision outcome.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetry        = "retry"
	OutcomeDeadLettered = "dead_lettered"
)

// Decision outcomes (Decision.Outcome and DestinationDecision.Outcome),
// besides OutcomeDeadLettered.
const (
	// OutcomeRouted: written to at least one out.<destination> (for a
	// DestinationDecision: to its own).
	OutcomeRouted = "routed"
	// OutcomeFiltered: a filter rule dropped the message (for a
	// DestinationDecision: that destination's copy).
	OutcomeFiltered = "filtered"
)

// Stages that write decisions (Decision.Stage).
const (
	StageTransform = "transform"
	StageRoute     = "route"
)

// Delivery is the outcome of one delivery attempt (topic delivery).
type Delivery struct {
	MessageID   string
	ControlID   string
	Destination string
	Attempt     int
	Outcome     string
	AckCode     string
	Error       string
	LatencyMS   float64
	At          time.Time
	// Source is the out.<destination> record this attempt delivered; nil
	// in records written before December 2026.
	Source *RecordRef
}

// RecordRef is one Kafka record's place.
type RecordRef struct {
	Topic     string
	Partition int32
	Offset    int64
}

// AuditEvent is one security or operations event (topic audit, keyed by
// actor). It never holds message content: a patient ID in a selector is
// replaced by its index key before it gets here.
type AuditEvent struct {
	EventID  string
	At       time.Time
	Service  string
	Actor    string
	Role     string
	Auth     string
	Action   string
	Resource string
	Selector string
	Count    int64
	Outcome  string
	Remote   string
	Detail   string
}

// Audit outcomes.
const (
	AuditOK     = "ok"
	AuditDenied = "denied"
	AuditError  = "error"
)

// ControlState is the operator-set state of one destination (compacted
// topic control, keyed by destination).
type ControlState struct {
	Destination string
	// State is ControlPaused or ControlRunning.
	State  string
	Reason string
	Actor  string
	At     time.Time
	// ResetID and ResetTo, when set, order the destination's consumer
	// group back (or forward) to the first record at or after ResetTo,
	// applied once per ResetID.
	ResetID string
	ResetTo *time.Time
}

// Destination states of ControlState.
const (
	ControlPaused  = "paused"
	ControlRunning = "running"
)

// ReplayRecord is one record of the compacted replay topic: a job's
// latest state, one record a job re-sent, or a dead letter discarded
// (Kind says which; exactly that one of Job, Item, Discard is set).
type ReplayRecord struct {
	Kind    string
	JobID   string
	At      time.Time
	Job     *ReplayJob
	Item    *ReplayItem
	Discard *Discard
}

// ReplayRecord kinds.
const (
	ReplayKindJob     = "job"
	ReplayKindItem    = "item"
	ReplayKindDiscard = "discard"
)

// ReplayJob is a replay job's state.
type ReplayJob struct {
	// State is one of the ReplayJob* states.
	State string
	Actor string
	Role  string
	// Selector is the selector as canonical JSON, patient IDs as keys.
	Selector string
	// Target is parse, transform, route or destination:<name>.
	Target         string
	Resend         bool
	ConfirmedNewer bool
	Rate           float64
	Total          int64
	Sent           int64
	Skipped        int64
	Failed         int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Error          string
}

// Replay job states.
const (
	ReplayJobRunning   = "running"
	ReplayJobDone      = "done"
	ReplayJobCancelled = "cancelled"
	ReplayJobFailed    = "failed"
)

// ReplayItem is one record a job re-sent.
type ReplayItem struct {
	MessageID string
	// Destination is the destination re-sent to, "" for a whole-message
	// replay into a stage.
	Destination  string
	TargetTopic  string
	Source       RecordRef
	DeadLetterID string
}

// Discard sets one dead letter aside: it stays on its topic but is no
// longer listed as waiting.
type Discard struct {
	DeadLetterID string
	MessageID    string
	Reason       string
	Actor        string
}

// Decision is what the rules decided for one message and why (topic
// decisions, keyed by message ID): transform writes one when an inbound
// filter drops a message, route one for every message it routes. Reasons
// name rules, routes and codes, never message content.
type Decision struct {
	MessageID string
	// ParentMessageID is the message this one was split from, "" if none.
	ParentMessageID string
	Interface       string
	ControlID       string
	// MessageType is MSH-9.1^MSH-9.2 ("ORU^R01"), see MessageTypeOf.
	MessageType string
	// Stage is StageTransform or StageRoute.
	Stage     string
	DecidedAt time.Time
	// ConfigVersion is the configuration version that decided.
	ConfigVersion string
	// Outcome is OutcomeRouted, OutcomeFiltered or OutcomeDeadLettered.
	Outcome string
	// Filter is the inbound filter that dropped the message, nil if none.
	Filter *FilterDecision
	// Routes holds every route evaluated, in configuration order.
	Routes []RouteDecision
	// Destinations holds each selected destination once, in the order
	// first selected.
	Destinations []DestinationDecision
	// Programs are the surveillance programs chosen (none until
	// surveillance exists).
	Programs []string
}

// FilterDecision names the filter rule that dropped a message.
type FilterDecision struct {
	Rule   string
	Reason string
}

// RouteDecision is one route's verdict on a message.
type RouteDecision struct {
	Route   string
	Matched bool
	// Reason says why the route did not match, "" when it did.
	Reason string
	// Destinations are the route's destinations.
	Destinations []string
}

// DestinationDecision is what one selected destination got.
type DestinationDecision struct {
	Destination string
	// Outcome is OutcomeRouted, OutcomeFiltered or OutcomeDeadLettered.
	Outcome string
	// Rule is the destination rule that filtered or failed, "" when
	// routed.
	Rule string
	// Reason is why it was filtered or dead-lettered, "" when routed.
	Reason string
}

// MessageTypeOf returns h's message type as decisions record it:
// MSH-9.1^MSH-9.2 ("ORU^R01"), or just the code without a trigger event.
func MessageTypeOf(h Header) string {
	if h.TriggerEvent == "" {
		return h.MessageCode
	}
	return h.MessageCode + "^" + h.TriggerEvent
}
