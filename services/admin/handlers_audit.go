package admin

import (
	"fmt"
	"net/http"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Audit actions the admin API writes (canonical.AuditEvent.Action).
const (
	// ActionAccessDenied: a valid token without the permission.
	ActionAccessDenied = "access.denied"
	// ActionTokenUse: a token's (or OIDC subject's) first request in
	// this process.
	ActionTokenUse = "token.use"
	// ActionMessageSearch: a message search by patient ID (selector
	// patient_key:<key>).
	ActionMessageSearch = "message.search"
	// ActionContentRead: a message's content read (resource
	// message/<id>, count = records read).
	ActionContentRead = "content.read"
	// ActionReplayPlan, ActionReplayStart, ActionReplayCancel: a replay
	// dry run, start, cancel.
	ActionReplayPlan   = "replay.plan"
	ActionReplayStart  = "replay.start"
	ActionReplayCancel = "replay.cancel"
	// ActionDiscard: dead letters set aside.
	ActionDiscard = "dead_letter.discard"
	// ActionPause, ActionResume, ActionReset: destination control.
	ActionPause  = "destination.pause"
	ActionResume = "destination.resume"
	ActionReset  = "destination.reset"
)

// searchAudit is GET /audit.
func (s *Server) searchAudit(c *call) (int, any, error) {
	q := AuditQuery{
		Actor:  c.q.str("actor"),
		Action: c.q.str("action"),
		Since:  c.q.time("since"),
		Until:  c.q.time("until"),
		Limit:  c.q.limit("limit"),
		Cursor: c.q.str("cursor"),
	}
	if c.q.err != nil {
		return 0, nil, c.q.err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return 0, nil, &FieldError{Param: "until", Msg: "is before since"}
	}
	page, err := s.d.Index.Audit(c.ctx(), q)
	if err != nil {
		return 0, nil, fmt.Errorf("searching the audit trail: %w", err)
	}
	if page.Events == nil {
		page.Events = []api.AuditEvent{}
	}
	return http.StatusOK, page, nil
}
