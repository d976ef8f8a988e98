// Package api is the admin API's wire contract: the JSON bodies of
// /api/v1/..., shared by the server (services/admin), its OpenAPI document
// and the CLI's client, so the three cannot drift. Field names are
// snake_case; times are RFC 3339 in UTC; statuses use the design's
// spellings (received, parsed, filtered, routed, delivered, ack_error,
// rejected, dead_lettered, replayed, partially_delivered).
package api

import "time"

// Prefix is the versioned path every endpoint hangs under.
const Prefix = "/api/v1"

// Error is every 4xx/5xx body. Param names the query parameter or body
// field at fault, when one is.
type Error struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
}

// Whoami is GET /api/v1/whoami.
type Whoami struct {
	Actor string `json:"actor"`
	Role  string `json:"role"`
	Auth  string `json:"auth"`
}

// Destination is one destination's status for a message.
type DestinationStatus struct {
	Name        string    `json:"name"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	LastOutcome string    `json:"last_outcome,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Message is one row of GET /api/v1/messages.
type Message struct {
	MessageID       string              `json:"message_id"`
	ParentMessageID string              `json:"parent_message_id,omitempty"`
	ControlID       string              `json:"control_id"`
	Interface       string              `json:"interface"`
	SendingFacility string              `json:"sending_facility"`
	Type            string              `json:"type"`
	ReceivedAt      time.Time           `json:"received_at"`
	Status          string              `json:"status"`
	StageStatus     string              `json:"stage_status"`
	TraceID         string              `json:"trace_id,omitempty"`
	ConfigVersion   string              `json:"config_version,omitempty"`
	UpdatedAt       time.Time           `json:"updated_at"`
	Destinations    []DestinationStatus `json:"destinations"`
}

// MessagePage is GET /api/v1/messages: query parameters control_id,
// patient_id (+ patient_authority), interface, facility, type, status,
// since, until (RFC 3339 or a duration back from now, "24h"), limit
// (1..1000, default 100) and cursor.
type MessagePage struct {
	Messages   []Message `json:"messages"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Record is one Kafka record concerning a message. Content is set only
// for roles allowed to read content and only when asked (?content=true):
// the record decoded to JSON, the HL7 payload as text.
type Record struct {
	Kind      string    `json:"kind"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	At        time.Time `json:"at"`
	Content   any       `json:"content,omitempty"`
	// ContentError says why the content could not be read (the record
	// was deleted by retention, ...), never what it holds.
	ContentError string `json:"content_error,omitempty"`
}

// MessageDetail is GET /api/v1/messages/{id}[?content=true].
type MessageDetail struct {
	Message
	Records     []Record     `json:"records"`
	Decisions   []Decision   `json:"decisions"`
	Deliveries  []Delivery   `json:"deliveries"`
	DeadLetters []DeadLetter `json:"dead_letters"`
}

// Decision is a route or transform decision (read from the decisions
// topic; it holds rule and route names, never content).
type Decision struct {
	Stage         string          `json:"stage"`
	DecidedAt     time.Time       `json:"decided_at"`
	ConfigVersion string          `json:"config_version"`
	Outcome       string          `json:"outcome"`
	Filter        *FilterDecision `json:"filter,omitempty"`
	Routes        []RouteDecision `json:"routes,omitempty"`
	Destinations  []DestDecision  `json:"destinations,omitempty"`
}

// FilterDecision names the filter that dropped a message.
type FilterDecision struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// RouteDecision is one route's verdict.
type RouteDecision struct {
	Route        string   `json:"route"`
	Matched      bool     `json:"matched"`
	Reason       string   `json:"reason,omitempty"`
	Destinations []string `json:"destinations,omitempty"`
}

// DestDecision is what route did for one destination.
type DestDecision struct {
	Destination string `json:"destination"`
	Outcome     string `json:"outcome"`
	Rule        string `json:"rule,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// Delivery is one delivery attempt (from the delivery topic; the ACK's
// text is never shown, only its code).
type Delivery struct {
	Destination string    `json:"destination"`
	Attempt     int       `json:"attempt"`
	Outcome     string    `json:"outcome"`
	AckCode     string    `json:"ack_code,omitempty"`
	LatencyMS   float64   `json:"latency_ms"`
	At          time.Time `json:"at"`
}

// DeadLetter is one row of GET /api/v1/dead-letters[?stage=S] and the
// body of GET /api/v1/dead-letters/{id}. ID is <stage>:<partition>:<offset>.
type DeadLetter struct {
	ID          string    `json:"id"`
	MessageID   string    `json:"message_id"`
	ControlID   string    `json:"control_id"`
	Stage       string    `json:"stage"`
	Destination string    `json:"destination,omitempty"`
	ErrorClass  string    `json:"error_class"`
	Reason      string    `json:"reason"`
	FailedAt    time.Time `json:"failed_at"`
	// Discarded is set once an operator set the dead letter aside.
	Discarded *Discarded `json:"discarded,omitempty"`
	// Replayed lists the jobs that re-sent it.
	Replayed []string `json:"replayed,omitempty"`
}

// Discarded says who set a dead letter aside and why.
type Discarded struct {
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// DeadLetterPage is GET /api/v1/dead-letters (stage, include_discarded,
// limit, cursor).
type DeadLetterPage struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	NextCursor  string       `json:"next_cursor,omitempty"`
}

// DiscardRequest is POST /api/v1/dead-letters/discard.
type DiscardRequest struct {
	IDs    []string `json:"ids"`
	Reason string   `json:"reason"`
}

// DiscardResult answers it.
type DiscardResult struct {
	Discarded int `json:"discarded"`
}

// ReplaySelector chooses what a replay job re-sends. Exactly one of
// MessageIDs, DeadLetters, or a filter (the rest) is used; a filter needs
// at least Since.
type ReplaySelector struct {
	MessageIDs  []string  `json:"message_ids,omitempty"`
	DeadLetters []string  `json:"dead_letters,omitempty"`
	ControlID   string    `json:"control_id,omitempty"`
	Interface   string    `json:"interface,omitempty"`
	Type        string    `json:"type,omitempty"`
	Status      string    `json:"status,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
}

// Replay targets besides "destination:<name>".
const (
	TargetParse     = "parse"
	TargetTransform = "transform"
	TargetRoute     = "route"
	// TargetDestinationPrefix + name re-sends the out.<name> record.
	TargetDestinationPrefix = "destination:"
)

// ReplayRequest is POST /api/v1/replay-jobs. Without Confirm it is a dry
// run: the answer is a ReplayPlan and nothing is sent. With Confirm it
// starts the job (201 and the ReplayJob), unless the plan has warnings
// and ConfirmNewer is not set (409 with the plan).
type ReplayRequest struct {
	Selector ReplaySelector `json:"selector"`
	// Target is parse, transform, route or destination:<name>; empty
	// picks per record: a dead letter goes back to the topic it came
	// from, a message with Selector.Destination to that destination,
	// else to route.
	Target       string  `json:"target,omitempty"`
	Resend       bool    `json:"resend,omitempty"`
	Rate         float64 `json:"rate,omitempty"`
	Confirm      bool    `json:"confirm,omitempty"`
	ConfirmNewer bool    `json:"confirm_newer,omitempty"`
}

// ReplayPlan is a dry run's answer.
type ReplayPlan struct {
	// Count is how many records the job would send, Skipped how many
	// (message, destination) pairs it skips as already delivered.
	Count   int64        `json:"count"`
	Skipped int64        `json:"skipped"`
	Sample  []ReplayItem `json:"sample"`
	// Warnings list messages that would reach a destination after a newer
	// message of the same patient already did.
	Warnings []ReplayWarning `json:"warnings,omitempty"`
	// NotReplayable counts the records the job cannot send because the
	// index knows no record to send them from (a message ID not in the
	// index, a message never routed to the target destination, a record
	// not indexed); Problems lists the first of them, saying why.
	NotReplayable int64           `json:"not_replayable,omitempty"`
	Problems      []ReplayProblem `json:"problems,omitempty"`
}

// ReplayProblem is one record a replay cannot send, and why (the reason
// names topics and destinations, never content).
type ReplayProblem struct {
	MessageID   string `json:"message_id"`
	Destination string `json:"destination,omitempty"`
	Reason      string `json:"reason"`
}

// ReplayItem is one record a job sends (or would).
type ReplayItem struct {
	MessageID   string `json:"message_id"`
	ControlID   string `json:"control_id,omitempty"`
	Type        string `json:"type,omitempty"`
	Destination string `json:"destination,omitempty"`
	TargetTopic string `json:"target_topic"`
}

// ReplayWarning is one out-of-order delivery a replay would cause.
type ReplayWarning struct {
	MessageID      string `json:"message_id"`
	Destination    string `json:"destination"`
	NewerMessageID string `json:"newer_message_id"`
	Reason         string `json:"reason"`
}

// ReplayJob is GET /api/v1/replay-jobs[/{id}]; POST
// /api/v1/replay-jobs/{id}/cancel answers it too.
type ReplayJob struct {
	ID             string         `json:"id"`
	State          string         `json:"state"`
	Actor          string         `json:"actor"`
	Selector       ReplaySelector `json:"selector"`
	Target         string         `json:"target"`
	Resend         bool           `json:"resend"`
	ConfirmedNewer bool           `json:"confirmed_newer"`
	Rate           float64        `json:"rate"`
	Total          int64          `json:"total"`
	Sent           int64          `json:"sent"`
	Skipped        int64          `json:"skipped"`
	Failed         int64          `json:"failed"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	Error          string         `json:"error,omitempty"`
}

// ReplayJobList is GET /api/v1/replay-jobs.
type ReplayJobList struct {
	Jobs []ReplayJob `json:"jobs"`
}

// DestinationState is one row of GET /api/v1/destinations.
type DestinationState struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	// State is running or paused (the control topic's word for it).
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// ResetID and ResetTo are the reset a paused destination's state
	// orders (none once it runs: egress applies a reset only while
	// paused). ResetPending says it is not applied yet on
	// ResetPendingPartitions of out.<name>; resume refuses until it is
	// (409, param force) unless the request says force, which drops it.
	ResetID                string    `json:"reset_id,omitempty"`
	ResetTo                time.Time `json:"reset_to,omitzero"`
	ResetPending           bool      `json:"reset_pending,omitempty"`
	ResetPendingPartitions []int32   `json:"reset_pending_partitions,omitempty"`
	// Counts are messages by status over the last 24 hours, from the index.
	Counts map[string]int64 `json:"counts,omitempty"`
}

// DestinationList is GET /api/v1/destinations.
type DestinationList struct {
	Destinations []DestinationState `json:"destinations"`
}

// PauseRequest is POST /api/v1/destinations/{name}/pause and /resume.
type PauseRequest struct {
	Reason string `json:"reason,omitempty"`
	// Force (resume only) resumes although the destination's latest reset
	// is not applied on every partition: the reset is dropped, and those
	// partitions go on from where they were.
	Force bool `json:"force,omitempty"`
}

// ResetRequest is POST /api/v1/destinations/{name}/reset: the destination
// must be paused; its consumer group moves to the first record at or
// after To.
type ResetRequest struct {
	To time.Time `json:"to"`
}

// InterfaceState is one row of GET /api/v1/interfaces.
type InterfaceState struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
	// Counts are messages by status over the last 24 hours, from the index.
	Counts   map[string]int64 `json:"counts"`
	LastSeen time.Time        `json:"last_seen,omitzero"`
}

// InterfaceList is GET /api/v1/interfaces.
type InterfaceList struct {
	Interfaces []InterfaceState `json:"interfaces"`
}

// AuditEvent is one row of GET /api/v1/audit (actor, action, since,
// until, limit, cursor).
type AuditEvent struct {
	EventID  string    `json:"event_id"`
	At       time.Time `json:"at"`
	Service  string    `json:"service"`
	Actor    string    `json:"actor"`
	Role     string    `json:"role,omitempty"`
	Auth     string    `json:"auth,omitempty"`
	Action   string    `json:"action"`
	Resource string    `json:"resource,omitempty"`
	Selector string    `json:"selector,omitempty"`
	Count    int64     `json:"count"`
	Outcome  string    `json:"outcome"`
	Remote   string    `json:"remote,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// AuditPage is GET /api/v1/audit.
type AuditPage struct {
	Events     []AuditEvent `json:"events"`
	NextCursor string       `json:"next_cursor,omitempty"`
}
