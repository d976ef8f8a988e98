package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// maxDiscard bounds one discard request, like a page.
const maxDiscard = maxLimit

// listDeadLetters is GET /dead-letters.
func (s *Server) listDeadLetters(c *call) (int, any, error) {
	q := DeadLetterQuery{
		Stage:            c.q.str("stage"),
		IncludeDiscarded: c.q.boolean("include_discarded"),
		Limit:            c.q.limit("limit"),
		Cursor:           c.q.str("cursor"),
	}
	if c.q.err != nil {
		return 0, nil, c.q.err
	}
	if q.Stage != "" && !knownStage(q.Stage) {
		return 0, nil, &FieldError{Param: "stage", Msg: "must be one of " + joinStages()}
	}
	page, err := s.d.Index.DeadLetters(c.ctx(), q)
	if err != nil {
		return 0, nil, fmt.Errorf("listing dead letters: %w", err)
	}
	if page.DeadLetters == nil {
		page.DeadLetters = []api.DeadLetter{}
	}
	return http.StatusOK, page, nil
}

// showDeadLetter is GET /dead-letters/{id}.
func (s *Server) showDeadLetter(c *call) (int, any, error) {
	id := c.r.PathValue("id")
	if err := checkDeadLetterID("id", id); err != nil {
		return 0, nil, err
	}
	dl, err := s.d.Index.DeadLetter(c.ctx(), id)
	if err != nil {
		return 0, nil, fmt.Errorf("reading a dead letter: %w", err)
	}
	return http.StatusOK, dl, nil
}

// discard is POST /dead-letters/discard (audited before it is done).
func (s *Server) discard(c *call) (int, any, error) {
	if err := unavailable(s.d.Replayer != nil); err != nil {
		return 0, nil, err
	}
	var req api.DiscardRequest
	if err := decodeBody(c.w, c.r, &req); err != nil {
		return 0, nil, err
	}
	switch {
	case len(req.IDs) == 0:
		return 0, nil, &FieldError{Param: "ids", Msg: "at least one dead letter ID is required"}
	case len(req.IDs) > maxDiscard:
		return 0, nil, &FieldError{Param: "ids", Msg: fmt.Sprintf("at most %d per request", maxDiscard)}
	case strings.TrimSpace(req.Reason) == "":
		return 0, nil, &FieldError{Param: "reason", Msg: "required: say why they are set aside"}
	}
	for i, id := range req.IDs {
		if err := checkDeadLetterID(fmt.Sprintf("ids[%d]", i), id); err != nil {
			return 0, nil, err
		}
	}
	e := s.event(c, ActionDiscard, "dead-letters", strings.Join(req.IDs, ","), int64(len(req.IDs)), canonical.AuditOK)
	e.Detail = req.Reason
	var n int
	err := c.act(e, func() (err error) {
		n, err = s.d.Replayer.Discard(c.ctx(), c.p, req.IDs, req.Reason)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("discarding dead letters: %w", err)
	}
	return http.StatusOK, api.DiscardResult{Discarded: n}, nil
}

// checkDeadLetterID checks the <stage>:<partition>:<offset> form.
func checkDeadLetterID(param, id string) error {
	bad := &FieldError{Param: param, Msg: "must be <stage>:<partition>:<offset>"}
	parts := strings.Split(id, ":")
	if len(parts) != 3 || !knownStage(parts[0]) {
		return bad
	}
	if p, err := strconv.ParseInt(parts[1], 10, 32); err != nil || p < 0 {
		return bad
	}
	if o, err := strconv.ParseInt(parts[2], 10, 64); err != nil || o < 0 {
		return bad
	}
	return nil
}
