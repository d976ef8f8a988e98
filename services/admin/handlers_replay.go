package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// replay is POST /replay-jobs: without confirm a dry run (200 and the
// plan, audited once planned), with confirm a start (audited before it is
// done; 201 and the job, or 409 and the plan when it has warnings and
// confirm_newer is not set).
func (s *Server) replay(c *call) (int, any, error) {
	if err := unavailable(s.d.Replayer != nil); err != nil {
		return 0, nil, err
	}
	var req api.ReplayRequest
	if err := decodeBody(c.w, c.r, &req); err != nil {
		return 0, nil, err
	}
	if err := s.checkReplay(req); err != nil {
		return 0, nil, err
	}
	sel := selectorText(req.Selector)
	if !req.Confirm {
		plan, err := s.d.Replayer.Plan(c.ctx(), c.p, req)
		if err != nil {
			return 0, nil, fmt.Errorf("planning a replay: %w", err)
		}
		e := s.event(c, ActionReplayPlan, "replay-jobs", sel, plan.Count, canonical.AuditOK)
		e.Detail = replayDetail(req)
		if err := c.audit(e); err != nil {
			return 0, nil, err
		}
		if plan.Sample == nil {
			plan.Sample = []api.ReplayItem{}
		}
		return http.StatusOK, plan, nil
	}
	e := s.event(c, ActionReplayStart, "replay-jobs", sel, 0, canonical.AuditOK)
	e.Detail = replayDetail(req)
	var (
		job  *api.ReplayJob
		plan *api.ReplayPlan
	)
	err := c.act(e, func() (err error) {
		job, plan, err = s.d.Replayer.Start(c.ctx(), c.p, req)
		return err
	})
	switch {
	case errors.Is(err, ErrConfirmNewer) && plan != nil:
		if plan.Sample == nil {
			plan.Sample = []api.ReplayItem{}
		}
		return http.StatusConflict, plan, nil
	case err != nil:
		return 0, nil, fmt.Errorf("starting a replay: %w", err)
	}
	return http.StatusCreated, job, nil
}

// checkReplay checks a replay request's shape; the Replayer checks what
// needs the index (max_messages).
func (s *Server) checkReplay(req api.ReplayRequest) error {
	sel := req.Selector
	// destination narrows any selector (message IDs to one destination:
	// "re-send this message to the lab"), so it alone makes no filter.
	filter := sel.ControlID != "" || sel.Interface != "" || sel.Type != "" || sel.Status != "" ||
		!sel.Since.IsZero() || !sel.Until.IsZero()
	n := 0
	for _, used := range []bool{len(sel.MessageIDs) > 0, len(sel.DeadLetters) > 0, filter} {
		if used {
			n++
		}
	}
	switch {
	case n == 0:
		return &FieldError{Param: "selector", Msg: "needs message_ids, dead_letters or a filter with since"}
	case n > 1:
		return &FieldError{Param: "selector", Msg: "use one of message_ids, dead_letters or a filter"}
	case filter && sel.Since.IsZero():
		return &FieldError{Param: "selector.since", Msg: "a filter needs since"}
	case !sel.Until.IsZero() && sel.Until.Before(sel.Since):
		return &FieldError{Param: "selector.until", Msg: "is before since"}
	case sel.Status != "" && !slices.Contains(statuses, sel.Status):
		return &FieldError{Param: "selector.status", Msg: "must be one of " + strings.Join(statuses, ", ")}
	case sel.Destination != "" && !s.knownDestination(sel.Destination):
		return &FieldError{Param: "selector.destination", Msg: "not a configured destination"}
	}
	for i, id := range sel.DeadLetters {
		if err := checkDeadLetterID(fmt.Sprintf("selector.dead_letters[%d]", i), id); err != nil {
			return err
		}
	}
	for i, id := range sel.MessageIDs {
		// Checked here, before anything is audited: the selector is
		// audited verbatim.
		if err := checkMessageID(fmt.Sprintf("selector.message_ids[%d]", i), id); err != nil {
			return err
		}
	}
	switch t := req.Target; {
	case t == "", t == api.TargetParse, t == api.TargetTransform, t == api.TargetRoute:
	case strings.HasPrefix(t, api.TargetDestinationPrefix):
		if !s.knownDestination(strings.TrimPrefix(t, api.TargetDestinationPrefix)) {
			return &FieldError{Param: "target", Msg: "not a configured destination"}
		}
	default:
		return &FieldError{Param: "target", Msg: "must be parse, transform, route or destination:<name>"}
	}
	if req.Rate < 0 || req.Rate > s.cfg.Replay.MaxRate {
		return &FieldError{Param: "rate", Msg: fmt.Sprintf("must be from 0 (the default) to %g records per second", s.cfg.Replay.MaxRate)}
	}
	return nil
}

// selectorText is a selector as audit records keep it: its JSON (a
// replay selector holds IDs, names and times, never a patient
// identifier).
func selectorText(sel api.ReplaySelector) string {
	b, err := json.Marshal(sel)
	if err != nil {
		return ""
	}
	return string(b)
}

// replayDetail is the rest of a replay request, for its audit event.
func replayDetail(req api.ReplayRequest) string {
	target := req.Target
	if target == "" {
		target = "auto"
	}
	return fmt.Sprintf("target=%s resend=%t confirm_newer=%t rate=%g", target, req.Resend, req.ConfirmNewer, req.Rate)
}

// listJobs is GET /replay-jobs.
func (s *Server) listJobs(c *call) (int, any, error) {
	if err := unavailable(s.d.Replayer != nil); err != nil {
		return 0, nil, err
	}
	jobs, err := s.d.Replayer.Jobs(c.ctx())
	if err != nil {
		return 0, nil, fmt.Errorf("listing replay jobs: %w", err)
	}
	if jobs == nil {
		jobs = []api.ReplayJob{}
	}
	return http.StatusOK, api.ReplayJobList{Jobs: jobs}, nil
}

// showJob is GET /replay-jobs/{id}.
func (s *Server) showJob(c *call) (int, any, error) {
	if err := unavailable(s.d.Replayer != nil); err != nil {
		return 0, nil, err
	}
	job, err := s.d.Replayer.Job(c.ctx(), c.r.PathValue("id"))
	if err != nil {
		return 0, nil, fmt.Errorf("reading a replay job: %w", err)
	}
	return http.StatusOK, job, nil
}

// cancelJob is POST /replay-jobs/{id}/cancel (audited before it is done).
func (s *Server) cancelJob(c *call) (int, any, error) {
	if err := unavailable(s.d.Replayer != nil); err != nil {
		return 0, nil, err
	}
	id := c.r.PathValue("id")
	var job *api.ReplayJob
	err := c.act(s.event(c, ActionReplayCancel, "replay-job/"+id, "", 0, canonical.AuditOK), func() (err error) {
		job, err = s.d.Replayer.Cancel(c.ctx(), c.p, id)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("cancelling a replay job: %w", err)
	}
	return http.StatusOK, job, nil
}
