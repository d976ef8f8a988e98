package admin

import (
	"crypto/rand"
	"net/http"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Query parameters shared by the list endpoints.
var (
	pLimit  = param{"limit", paramInt, "page size, 1 to 1000 (default 100)"}
	pCursor = param{"cursor", paramString, "the next_cursor of the previous page"}
	pSince  = param{"since", paramTime, "RFC 3339 time, or a duration back from now (24h)"}
	pUntil  = param{"until", paramTime, "RFC 3339 time, or a duration back from now (1h)"}
)

// table is every endpoint of the admin API.
func (s *Server) table() []*route {
	p := api.Prefix
	return []*route{
		{method: "GET", path: "/healthz", public: true, summary: "The process is alive.",
			raw: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = w.Write([]byte("ok\n"))
			}},
		{method: "GET", path: "/api/openapi.json", public: true, summary: "This API's OpenAPI 3.1 document.",
			raw: serveOpenAPI},
		{method: "GET", path: p + "/whoami", summary: "Who the token belongs to.",
			answers: []answer{{200, "the caller", api.Whoami{}}}, handle: s.whoami},
		{method: "GET", path: p + "/messages", perm: PermMetadata, summary: "Search messages, newest first.",
			query: []param{
				{"control_id", paramString, "the sender's MSH-10"},
				{"patient_id", paramString, "a patient identifier (PID-3); hashed, never stored or logged"},
				{"patient_authority", paramString, "the identifier's assigning authority (with patient_id)"},
				{"interface", paramString, "inbound interface name"},
				{"facility", paramString, "sending facility (MSH-4)"},
				{"type", paramString, "message type, ORU^R01"},
				{"status", paramStatus, "overall status"},
				pSince, pUntil, pLimit, pCursor,
			},
			answers: []answer{{200, "a page of messages", api.MessagePage{}}}, handle: s.searchMessages},
		{method: "GET", path: p + "/messages/{id}", perm: PermMetadata,
			summary: "One message's journey: records, decisions, deliveries, dead letters; content with content=true (content permission, audited).",
			query:   []param{{"content", paramBool, "also return each record's content (needs the content permission; audited)"}},
			answers: []answer{{200, "the message", api.MessageDetail{}}}, handle: s.showMessage},
		{method: "GET", path: p + "/dead-letters", perm: PermMetadata, summary: "List dead letters, newest first.",
			query: []param{
				{"stage", paramStage, "the stage that dead-lettered"},
				{"include_discarded", paramBool, "also list discarded dead letters"},
				pLimit, pCursor,
			},
			answers: []answer{{200, "a page of dead letters", api.DeadLetterPage{}}}, handle: s.listDeadLetters},
		{method: "GET", path: p + "/dead-letters/{id}", perm: PermMetadata, summary: "One dead letter (id <stage>:<partition>:<offset>).",
			answers: []answer{{200, "the dead letter", api.DeadLetter{}}}, handle: s.showDeadLetter},
		{method: "POST", path: p + "/dead-letters/discard", perm: PermReplay, summary: "Set dead letters aside (audited).",
			body: api.DiscardRequest{}, answers: []answer{{200, "how many were discarded", api.DiscardResult{}}}, handle: s.discard},
		{method: "POST", path: p + "/replay-jobs", perm: PermReplay,
			summary: "Dry-run (without confirm) or start a replay job (audited).",
			body:    api.ReplayRequest{},
			answers: []answer{
				{200, "the dry run's plan", api.ReplayPlan{}},
				{201, "the job started", api.ReplayJob{}},
				{409, "the plan has warnings and confirm_newer is not set", api.ReplayPlan{}},
			}, handle: s.replay},
		{method: "GET", path: p + "/replay-jobs", perm: PermMetadata, summary: "List replay jobs.",
			answers: []answer{{200, "the jobs", api.ReplayJobList{}}}, handle: s.listJobs},
		{method: "GET", path: p + "/replay-jobs/{id}", perm: PermMetadata, summary: "One replay job.",
			answers: []answer{{200, "the job", api.ReplayJob{}}}, handle: s.showJob},
		{method: "POST", path: p + "/replay-jobs/{id}/cancel", perm: PermReplay, summary: "Cancel a replay job (audited).",
			answers: []answer{{200, "the job", api.ReplayJob{}}}, handle: s.cancelJob},
		{method: "GET", path: p + "/destinations", perm: PermMetadata, summary: "Destinations, their state and counts over 24 hours.",
			answers: []answer{{200, "the destinations", api.DestinationList{}}}, handle: s.listDestinations},
		{method: "POST", path: p + "/destinations/{name}/pause", perm: PermControl, summary: "Pause a destination (audited).",
			body: api.PauseRequest{}, answers: []answer{{200, "the destination's state", api.DestinationState{}}}, handle: s.pause},
		{method: "POST", path: p + "/destinations/{name}/resume", perm: PermControl, summary: "Resume a destination (audited).",
			body: api.PauseRequest{}, answers: []answer{{200, "the destination's state", api.DestinationState{}}}, handle: s.resume},
		{method: "POST", path: p + "/destinations/{name}/reset", perm: PermControl,
			summary: "Move a paused destination's consumer group to a time (audited).",
			body:    api.ResetRequest{},
			answers: []answer{
				{200, "the destination's state", api.DestinationState{}},
				{409, "the destination is not paused", api.Error{}},
			}, handle: s.reset},
		{method: "GET", path: p + "/interfaces", perm: PermMetadata, summary: "Inbound interfaces and their counts over 24 hours.",
			answers: []answer{{200, "the interfaces", api.InterfaceList{}}}, handle: s.listInterfaces},
		{method: "GET", path: p + "/audit", perm: PermAudit, summary: "Search the audit trail, newest first.",
			query: []param{
				{"actor", paramString, "who"},
				{"action", paramString, "what (content.read, replay.start, ...)"},
				pSince, pUntil, pLimit, pCursor,
			},
			answers: []answer{{200, "a page of audit events", api.AuditPage{}}}, handle: s.searchAudit},
	}
}

// whoami answers who the caller is.
func (s *Server) whoami(c *call) (int, any, error) {
	return http.StatusOK, api.Whoami{Actor: c.p.Actor, Role: string(c.p.Role), Auth: c.p.Auth}, nil
}

// newEventID is a ULID: audit events sort by their IDs as by their times.
func newEventID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}
