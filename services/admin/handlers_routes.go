package admin

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// route is one endpoint: what it needs, what it reads and answers, and
// its handler. The table (table) is the one list of endpoints: the mux,
// the strict query parsing and the OpenAPI document all read it.
type route struct {
	method string
	// path is the full path pattern ("/api/v1/messages/{id}").
	path string
	// public routes need no token (the OpenAPI document, /healthz).
	public bool
	// perm is the permission the route needs; "" is any valid token.
	perm    Permission
	summary string
	query   []param
	// body is the request body's type (a zero value), nil for none.
	body any
	// answers are the documented responses besides the errors every
	// authenticated route has.
	answers []answer
	handle  func(c *call) (int, any, error)
	// raw routes write their own response (the OpenAPI document).
	raw http.HandlerFunc
}

// answer is one documented response.
type answer struct {
	code int
	desc string
	body any
}

func (rt *route) pattern() string { return rt.method + " " + rt.path }

// call is one request as a handler sees it: authenticated, authorized
// for the route's permission, its query parameters checked.
type call struct {
	s *Server
	w http.ResponseWriter
	r *http.Request
	p Principal
	q *query
	// pattern is the route's, for audit events.
	pattern string
}

func (c *call) ctx() context.Context { return c.r.Context() }

// wrap turns a route into its handler: authenticate (401), authorize
// (403, audited), check the query (400), run the handler and write its
// answer or its error.
func (s *Server) wrap(rt *route) http.Handler {
	if rt.raw != nil {
		return rt.raw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{s: s, w: w, r: r, pattern: rt.pattern()}
		if !rt.public {
			p, err := s.d.Auth.Authenticate(r)
			if err != nil {
				s.fail(c, err)
				return
			}
			c.p = p
			s.auditTokenUse(c)
			if rt.perm != "" && !p.Role.Allows(rt.perm) {
				s.fail(c, s.deny(c, rt.perm))
				return
			}
		}
		c.q = parseQuery(r.URL.RawQuery, rt.query, s.now())
		if c.q.err != nil {
			s.fail(c, c.q.err)
			return
		}
		code, body, err := rt.handle(c)
		if err != nil {
			s.fail(c, err)
			return
		}
		writeJSON(w, code, body)
	})
}

// fail writes err as an api.Error. Server errors are logged (their text
// comes from the index or the broker clients, never from a request's
// values); the query string never is.
func (s *Server) fail(c *call, err error) {
	code, body := statusOf(err)
	if code == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="hl7bus"`)
	}
	if code >= 500 {
		s.log.Warn("admin request failed", logattr.Route(c.pattern), logattr.Error(err))
	}
	writeJSON(c.w, code, body)
}

// need checks a permission inside a handler (content=true needs content
// on top of the route's metadata): the refusal is audited like the
// route's own.
func (c *call) need(perm Permission) error {
	if c.p.Role.Allows(perm) {
		return nil
	}
	return c.s.deny(c, perm)
}

// deny audits a refused request and returns ErrForbidden. A failed audit
// write does not change the answer (it is a refusal either way) but is
// logged.
func (s *Server) deny(c *call, perm Permission) error {
	e := s.event(c, "access.denied", c.pattern, "", 0, canonical.AuditDenied)
	e.Detail = "needs permission " + string(perm)
	if err := s.d.Audit.Audit(c.ctx(), e); err != nil {
		s.log.Error("writing an access.denied audit event", logattr.Route(c.pattern), logattr.Error(err))
	}
	return ErrForbidden
}

// auditTokenUse audits a principal's first request in this process. A
// failed write is retried on the next request.
func (s *Server) auditTokenUse(c *call) {
	key := c.p.Auth + "/" + c.p.TokenID
	if c.p.TokenID == "" {
		key = c.p.Auth + "/" + c.p.Actor
	}
	if _, seen := s.tokensSeen.LoadOrStore(key, true); seen {
		return
	}
	e := s.event(c, "token.use", "", "", 0, canonical.AuditOK)
	if c.p.TokenID != "" {
		e.Resource = "token/" + c.p.TokenID
	}
	if err := s.d.Audit.Audit(c.ctx(), e); err != nil {
		s.tokensSeen.Delete(key)
		s.log.Error("writing a token.use audit event", logattr.Route(c.pattern), logattr.Error(err))
	}
}

// event is an audit event of this request.
func (s *Server) event(c *call, action, resource, selector string, count int64, outcome string) canonical.AuditEvent {
	return canonical.AuditEvent{
		EventID:  newEventID(s.now()),
		At:       s.now().UTC(),
		Service:  "admin",
		Actor:    c.p.Actor,
		Role:     string(c.p.Role),
		Auth:     c.p.Auth,
		Action:   action,
		Resource: resource,
		Selector: selector,
		Count:    count,
		Outcome:  outcome,
		Remote:   remoteHost(c.r.RemoteAddr),
	}
}

// audit writes e; an action that must be audited is not done (and its
// answer not given) when this fails.
func (c *call) audit(e canonical.AuditEvent) error {
	if err := c.s.d.Audit.Audit(c.ctx(), e); err != nil {
		c.s.log.Error("writing an audit event", logattr.Route(c.pattern), logattr.Error(err))
		return ErrAuditUnavailable
	}
	return nil
}

// act audits a change before doing it (the event is the request: a
// change whose event cannot be written is not made), then does it; when
// it fails, a second event with outcome error says so.
func (c *call) act(e canonical.AuditEvent, do func() error) error {
	if err := c.audit(e); err != nil {
		return err
	}
	err := do()
	if err != nil {
		f := e
		f.EventID, f.At, f.Outcome = newEventID(c.s.now()), c.s.now().UTC(), canonical.AuditError
		code, body := statusOf(err)
		f.Detail = strings.TrimSpace(f.Detail + " failed: " + http.StatusText(code) + " " + body.Param)
		if aerr := c.s.d.Audit.Audit(c.ctx(), f); aerr != nil {
			c.s.log.Error("writing an audit event", logattr.Route(c.pattern), logattr.Error(aerr))
		}
	}
	return err
}

// remoteHost is the peer's address without its port.
func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// unavailable is ErrUnavailable unless the part is there.
func unavailable(ok bool) error {
	if ok {
		return nil
	}
	return ErrUnavailable
}
