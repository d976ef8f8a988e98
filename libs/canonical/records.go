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
	Payload     []byte
}

// Segment is one segment of the lossless tree: its fields in wire form.
type Segment struct {
	Name   string
	Fields []string
}

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
	Issues    []Issue
}

// Parsed is a parsed and validated message (topic parsed).
type Parsed struct {
	MessageID   string
	Interface   string
	ReceivedAt  time.Time
	OrderingKey string
	Header      Header
	Delimiters  string
	Segments    []Segment
	Validation  Validation
	Payload     []byte
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
	BirthDate   string
	Sex         string
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
}

// Error classes of a dead letter.
const (
	ErrorPermanent = "permanent"
	ErrorTransient = "transient" // retries exhausted
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
}

// Delivery outcomes.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetry        = "retry"
	OutcomeDeadLettered = "dead_lettered"
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
}
