package admin

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// countsWindow is how far back the destination and interface counts go.
const countsWindow = 24 * time.Hour

// knownDestination reports whether name is configured.
func (s *Server) knownDestination(name string) bool {
	for _, d := range s.d.Destinations {
		if d.Name == name {
			return true
		}
	}
	return false
}

// listDestinations is GET /destinations: the configured destinations,
// their control state and counts.
func (s *Server) listDestinations(c *call) (int, any, error) {
	states, err := s.states(c)
	if err != nil {
		return 0, nil, err
	}
	_, counts, err := s.d.Index.Counts(c.ctx(), s.now().Add(-countsWindow))
	if err != nil {
		return 0, nil, fmt.Errorf("counting messages: %w", err)
	}
	out := api.DestinationList{Destinations: []api.DestinationState{}}
	for _, d := range s.d.Destinations {
		st, err := s.withReset(c, destinationState(d, states[d.Name]))
		if err != nil {
			return 0, nil, err
		}
		st.Counts = counts[d.Name]
		out.Destinations = append(out.Destinations, st)
	}
	return http.StatusOK, out, nil
}

// withReset adds where the reset st's state orders stands (only a paused
// destination's state orders one: asking costs a look at its group's
// committed offsets).
func (s *Server) withReset(c *call, st api.DestinationState) (api.DestinationState, error) {
	if s.d.Controller == nil || st.State != canonical.ControlPaused {
		return st, nil
	}
	rs, err := s.d.Controller.ResetStatus(c.ctx(), st.Name)
	if err != nil {
		return st, fmt.Errorf("reading the reset status of a destination: %w", err)
	}
	if rs.ID != "" {
		st.ResetID, st.ResetTo = rs.ID, rs.To.UTC()
		st.ResetPending, st.ResetPendingPartitions = len(rs.Pending) > 0, rs.Pending
	}
	return st, nil
}

// states are the control states, empty without a Controller.
func (s *Server) states(c *call) (map[string]canonical.ControlState, error) {
	if s.d.Controller == nil {
		return nil, nil
	}
	st, err := s.d.Controller.States(c.ctx())
	if err != nil {
		return nil, fmt.Errorf("reading destination states: %w", err)
	}
	return st, nil
}

// destinationState is one destination's api form; a destination the
// control topic does not mention runs.
func destinationState(d DestinationInfo, cs canonical.ControlState) api.DestinationState {
	st := api.DestinationState{Name: d.Name, Protocol: d.Protocol, State: canonical.ControlRunning}
	if cs.State != "" {
		st.State, st.Reason, st.Actor, st.Since = cs.State, cs.Reason, cs.Actor, cs.At.UTC()
	}
	return st
}

// pause is POST /destinations/{name}/pause.
func (s *Server) pause(c *call) (int, any, error) {
	return s.control(c, ActionPause, func(name string, req api.PauseRequest) error {
		return s.d.Controller.Pause(c.ctx(), c.p, name, req.Reason)
	})
}

// resume is POST /destinations/{name}/resume: 409 (param force) while the
// latest reset is not applied, unless the request says force.
func (s *Server) resume(c *call) (int, any, error) {
	return s.control(c, ActionResume, func(name string, req api.PauseRequest) error {
		return s.d.Controller.Resume(c.ctx(), c.p, name, req.Reason, req.Force)
	})
}

// control pauses or resumes a destination, audited before it is done,
// and answers its state.
func (s *Server) control(c *call, action string, do func(name string, req api.PauseRequest) error) (int, any, error) {
	name, err := s.destination(c)
	if err != nil {
		return 0, nil, err
	}
	var req api.PauseRequest
	// The body is optional: no reason is a reason too.
	if c.r.ContentLength != 0 {
		if err := decodeBody(c.w, c.r, &req); err != nil {
			return 0, nil, err
		}
	}
	if req.Force && action != ActionResume {
		return 0, nil, &FieldError{Param: "force", Msg: "only resume takes force"}
	}
	e := s.event(c, action, "destination/"+name, "", 0, canonical.AuditOK)
	e.Detail = req.Reason
	if req.Force {
		// The trail says the operator overrode a pending reset's check.
		e.Detail = strings.TrimSpace("force " + req.Reason)
	}
	if err := c.act(e, func() error { return do(name, req) }); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", action, err)
	}
	return s.stateOf(c, name)
}

// reset is POST /destinations/{name}/reset (409 unless paused).
func (s *Server) reset(c *call) (int, any, error) {
	name, err := s.destination(c)
	if err != nil {
		return 0, nil, err
	}
	var req api.ResetRequest
	if err := decodeBody(c.w, c.r, &req); err != nil {
		return 0, nil, err
	}
	if req.To.IsZero() {
		return 0, nil, &FieldError{Param: "to", Msg: "required: the time to move the consumer group to"}
	}
	e := s.event(c, ActionReset, "destination/"+name, "", 0, canonical.AuditOK)
	e.Detail = "to=" + req.To.UTC().Format(time.RFC3339Nano)
	if err := c.act(e, func() error { return s.d.Controller.Reset(c.ctx(), c.p, name, req.To.UTC()) }); err != nil {
		return 0, nil, fmt.Errorf("resetting a destination: %w", err)
	}
	return s.stateOf(c, name)
}

// destination is the request's configured destination (404 otherwise).
func (s *Server) destination(c *call) (string, error) {
	if err := unavailable(s.d.Controller != nil); err != nil {
		return "", err
	}
	name := c.r.PathValue("name")
	if !s.knownDestination(name) {
		return "", fmt.Errorf("destination: %w", ErrNotFound)
	}
	return name, nil
}

// stateOf answers one destination's state after a change.
func (s *Server) stateOf(c *call, name string) (int, any, error) {
	states, err := s.states(c)
	if err != nil {
		return 0, nil, err
	}
	for _, d := range s.d.Destinations {
		if d.Name == name {
			st, err := s.withReset(c, destinationState(d, states[name]))
			if err != nil {
				return 0, nil, err
			}
			return http.StatusOK, st, nil
		}
	}
	return 0, nil, fmt.Errorf("destination: %w", ErrNotFound)
}

// listInterfaces is GET /interfaces: the configured interfaces and their
// counts.
func (s *Server) listInterfaces(c *call) (int, any, error) {
	counts, _, err := s.d.Index.Counts(c.ctx(), s.now().Add(-countsWindow))
	if err != nil {
		return 0, nil, fmt.Errorf("counting messages: %w", err)
	}
	out := api.InterfaceList{Interfaces: []api.InterfaceState{}}
	for _, in := range s.d.Interfaces {
		cs := counts[in.Name]
		if cs == nil {
			cs = map[string]int64{}
		}
		out.Interfaces = append(out.Interfaces, api.InterfaceState{Name: in.Name, Protocol: in.Protocol, Address: in.Address, Counts: cs})
	}
	return http.StatusOK, out, nil
}
