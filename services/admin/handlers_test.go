package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

const v1 = api.Prefix

func TestEndpointsHappyPath(t *testing.T) {
	tests := []struct {
		name, method, path, token, body string
		code                            int
		check                           func(t *testing.T, f *fixture, body string)
	}{
		{"whoami", "GET", v1 + "/whoami", "viewer", "", 200, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `"actor":"vera"`) || !strings.Contains(b, `"role":"viewer"`) {
				t.Errorf("whoami = %s", b)
			}
		}},
		{"search", "GET", v1 + "/messages?control_id=C1&interface=adt-in&facility=HOSP&type=ADT%5EA01&status=delivered&since=24h&until=2026-03-04T00:00:00Z&limit=5&cursor=abc", "viewer", "", 200,
			func(t *testing.T, f *fixture, b string) {
				q := f.index.search
				if q.ControlID != "C1" || q.Interface != "adt-in" || q.Facility != "HOSP" || q.Type != "ADT^A01" || q.Status != "delivered" ||
					q.Limit != 5 || q.Cursor != "abc" || !q.Since.Equal(t0.Add(-24*60*60*1e9)) || q.Until.Format("2006-01-02") != "2026-03-04" {
					t.Errorf("query reached the index as %+v", q)
				}
				if !strings.Contains(b, `"next_cursor":"next"`) {
					t.Errorf("page = %s", b)
				}
			}},
		{"search default limit", "GET", v1 + "/messages", "viewer", "", 200, func(t *testing.T, f *fixture, _ string) {
			if f.index.search.Limit != defaultLimit {
				t.Errorf("limit = %d", f.index.search.Limit)
			}
		}},
		{"message", "GET", v1 + "/messages/01M", "viewer", "", 200, nil},
		{"message unknown", "GET", v1 + "/messages/nope", "viewer", "", 404, nil},
		{"dead letters", "GET", v1 + "/dead-letters?stage=egress&include_discarded=true&limit=10", "viewer", "", 200, func(t *testing.T, f *fixture, b string) {
			if q := f.index.dlq; q.Stage != "egress" || !q.IncludeDiscarded || q.Limit != 10 {
				t.Errorf("query = %+v", q)
			}
			if !strings.Contains(b, `"id":"egress:0:5"`) {
				t.Errorf("page = %s", b)
			}
		}},
		{"dead letter", "GET", v1 + "/dead-letters/egress:0:5", "viewer", "", 200, nil},
		{"dead letter unknown", "GET", v1 + "/dead-letters/egress:0:6", "viewer", "", 404, nil},
		{"dead letter bad id", "GET", v1 + "/dead-letters/nonsense", "viewer", "", 400, nil},
		{"discard", "POST", v1 + "/dead-letters/discard", "operator", `{"ids":["egress:0:5"],"reason":"receiver fixed by hand"}`, 200, func(t *testing.T, f *fixture, b string) {
			if b != `{"discarded":1}`+"\n" {
				t.Errorf("answer = %s", b)
			}
			ev := f.audit.actions()
			if len(ev) != 1 || ev[0].Action != ActionDiscard || ev[0].Selector != "egress:0:5" || ev[0].Count != 1 || ev[0].Actor != "otto" {
				t.Errorf("audit = %+v", ev)
			}
		}},
		{"replay dry run", "POST", v1 + "/replay-jobs", "operator", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]}}`, 200, func(t *testing.T, f *fixture, b string) {
			if !strings.Contains(b, `"count":3`) || f.repl.started != 0 {
				t.Errorf("plan = %s, started %d", b, f.repl.started)
			}
			ev := f.audit.actions()
			if len(ev) != 1 || ev[0].Action != ActionReplayPlan || ev[0].Count != 3 || !strings.Contains(ev[0].Selector, `"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]`) {
				t.Errorf("audit = %+v", ev)
			}
		}},
		// "Re-send this message to the lab": message IDs narrowed to one
		// destination is a selector of its own, not a filter mixed in.
		{"replay message to one destination", "POST", v1 + "/replay-jobs", "operator", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"],"destination":"lab"}}`, 200, nil},
		{"replay start", "POST", v1 + "/replay-jobs", "operator", `{"selector":{"interface":"adt-in","since":"2026-03-01T00:00:00Z"},"target":"destination:lab","rate":10,"confirm":true}`, 201,
			func(t *testing.T, f *fixture, b string) {
				if !strings.Contains(b, `"id":"J1"`) || f.repl.started != 1 {
					t.Errorf("job = %s, started %d", b, f.repl.started)
				}
				ev := f.audit.actions()
				if len(ev) != 1 || ev[0].Action != ActionReplayStart || ev[0].Outcome != canonical.AuditOK || !strings.Contains(ev[0].Detail, "target=destination:lab") {
					t.Errorf("audit = %+v", ev)
				}
			}},
		{"replay jobs", "GET", v1 + "/replay-jobs", "viewer", "", 200, nil},
		{"replay job", "GET", v1 + "/replay-jobs/J1", "viewer", "", 200, nil},
		{"replay job unknown", "GET", v1 + "/replay-jobs/J9", "viewer", "", 404, nil},
		{"replay cancel", "POST", v1 + "/replay-jobs/J1/cancel", "operator", "", 200, func(t *testing.T, f *fixture, b string) {
			ev := f.audit.actions()
			if !strings.Contains(b, `"state":"cancelled"`) || len(ev) != 1 || ev[0].Resource != "replay-job/J1" {
				t.Errorf("answer %s, audit %+v", b, ev)
			}
		}},
		{"replay cancel unknown", "POST", v1 + "/replay-jobs/J9/cancel", "operator", "", 404, func(t *testing.T, f *fixture, _ string) {
			ev := f.audit.actions()
			if len(ev) != 2 || ev[1].Outcome != canonical.AuditError {
				t.Errorf("a failed cancel is audited as requested then failed: %+v", ev)
			}
		}},
		{"destinations", "GET", v1 + "/destinations", "viewer", "", 200, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `{"name":"lab","protocol":"mllp","state":"running","counts":{"dead_lettered":1,"delivered":5}}`) {
				t.Errorf("destinations = %s", b)
			}
		}},
		{"pause", "POST", v1 + "/destinations/lab/pause", "operator", `{"reason":"lab down"}`, 200, func(t *testing.T, f *fixture, b string) {
			if !strings.Contains(b, `"state":"paused"`) || !strings.Contains(b, `"actor":"otto"`) {
				t.Errorf("state = %s", b)
			}
			ev := f.audit.actions()
			if len(ev) != 1 || ev[0].Action != ActionPause || ev[0].Resource != "destination/lab" || ev[0].Detail != "lab down" {
				t.Errorf("audit = %+v", ev)
			}
		}},
		{"pause without body", "POST", v1 + "/destinations/lab/pause", "operator", "", 200, nil},
		{"pause unknown destination", "POST", v1 + "/destinations/nope/pause", "operator", "", 404, nil},
		{"resume", "POST", v1 + "/destinations/lab/resume", "operator", `{}`, 200, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `"state":"running"`) {
				t.Errorf("state = %s", b)
			}
		}},
		{"reset not paused", "POST", v1 + "/destinations/lab/reset", "operator", `{"to":"2026-03-04T00:00:00Z"}`, 409, nil},
		{"interfaces", "GET", v1 + "/interfaces", "viewer", "", 200, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `{"name":"adt-in","protocol":"mllp","address":":2575","counts":{"delivered":7}}`) {
				t.Errorf("interfaces = %s", b)
			}
		}},
		{"audit", "GET", v1 + "/audit?actor=ana&action=content.read&since=2026-03-01T00:00:00Z&limit=50", "auditor", "", 200, func(t *testing.T, f *fixture, _ string) {
			if q := f.index.audit; q.Actor != "ana" || q.Action != ActionContentRead || q.Limit != 50 || q.Since.IsZero() {
				t.Errorf("query = %+v", q)
			}
		}},
		{"healthz", "GET", "/healthz", "", "", 200, nil},
		{"openapi", "GET", "/api/openapi.json", "", "", 200, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `"openapi": "3.1.0"`) {
				t.Errorf("document starts %.80s", b)
			}
		}},
		{"no such path", "GET", v1 + "/nope", "admin", "", 404, func(t *testing.T, _ *fixture, b string) {
			if !strings.Contains(b, `"error":"Not Found"`) {
				t.Errorf("answer = %s", b)
			}
		}},
		{"wrong method", "DELETE", v1 + "/messages", "admin", "", 405, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do(tt.method, tt.path, tt.token, tt.body)
			if rec.Code != tt.code {
				t.Fatalf("%s %s = %d, want %d: %s", tt.method, tt.path, rec.Code, tt.code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); tt.path != "/healthz" && ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if tt.check != nil {
				tt.check(t, f, rec.Body.String())
			}
		})
	}
}

func TestResetWhenPaused(t *testing.T) {
	f := newFixture(t)
	if rec := f.do("POST", v1+"/destinations/lab/pause", "operator", ""); rec.Code != 200 {
		t.Fatalf("pause = %d %s", rec.Code, rec.Body)
	}
	rec := f.do("POST", v1+"/destinations/lab/reset", "operator", `{"to":"2026-03-04T00:00:00+01:00"}`)
	if rec.Code != 200 {
		t.Fatalf("reset = %d %s", rec.Code, rec.Body)
	}
	ev := f.audit.actions()
	if last := ev[len(ev)-1]; last.Action != ActionReset || last.Detail != "to=2026-03-03T23:00:00Z" {
		t.Errorf("audit = %+v", last)
	}
}

// TestResumeWhileResetPending: while a reset is not applied on every
// partition, the destination's state says so, resume answers 409 naming
// the reset (param force) and changes nothing; force resumes, audited as
// forced; pause takes no force.
func TestResumeWhileResetPending(t *testing.T) {
	f := newFixture(t)
	f.ctl.pending = []int32{1, 2}
	if rec := f.do("POST", v1+"/destinations/lab/pause", "operator", ""); rec.Code != 200 {
		t.Fatalf("pause = %d %s", rec.Code, rec.Body)
	}
	rec := f.do("POST", v1+"/destinations/lab/reset", "operator", `{"to":"2026-03-04T00:00:00Z"}`)
	var st api.DestinationState
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != 200 {
		t.Fatalf("reset = %d %s (%v)", rec.Code, rec.Body, err)
	}
	if st.State != "paused" || st.ResetID != "r1" || !st.ResetTo.Equal(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)) ||
		!st.ResetPending || !slices.Equal(st.ResetPendingPartitions, []int32{1, 2}) {
		t.Errorf("reset answer %+v, want paused with reset r1 pending on 1,2", st)
	}
	rec = f.do("GET", v1+"/destinations", "viewer", "")
	if b := rec.Body.String(); !strings.Contains(b, `"reset_id":"r1"`) || !strings.Contains(b, `"reset_pending":true`) ||
		!strings.Contains(b, `"reset_pending_partitions":[1,2]`) {
		t.Errorf("destinations = %s", b)
	}

	rec = f.do("POST", v1+"/destinations/lab/resume", "operator", `{"reason":"lab back"}`)
	var e api.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != http.StatusConflict {
		t.Fatalf("resume while pending = %d %s", rec.Code, rec.Body)
	}
	if e.Param != "force" || !strings.Contains(e.Error, "reset r1") || !strings.Contains(e.Error, "partition(s) 1,2") || !strings.Contains(e.Error, "force") {
		t.Errorf("resume refusal %+v: want the reset, its partitions and force named", e)
	}
	if st, _ := f.ctl.States(context.Background()); st["lab"].State != "paused" {
		t.Errorf("lab %+v after a refused resume", st["lab"])
	}
	if rec := f.do("POST", v1+"/destinations/lab/pause", "operator", `{"force":true}`); rec.Code != 400 || !strings.Contains(rec.Body.String(), `"param":"force"`) {
		t.Errorf("pause with force = %d %s, want 400 naming force", rec.Code, rec.Body)
	}

	rec = f.do("POST", v1+"/destinations/lab/resume", "operator", `{"reason":"lab back","force":true}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"running"`) || strings.Contains(rec.Body.String(), "reset_id") {
		t.Fatalf("forced resume = %d %s", rec.Code, rec.Body)
	}
	ev := f.audit.actions()
	if last := ev[len(ev)-1]; last.Action != ActionResume || last.Detail != "force lab back" || last.Outcome != canonical.AuditOK {
		t.Errorf("forced resume audited as %+v", last)
	}
	var refused bool
	for _, e := range ev {
		refused = refused || (e.Action == ActionResume && e.Outcome == canonical.AuditError && strings.Contains(e.Detail, "Conflict force"))
	}
	if !refused {
		t.Errorf("the refused resume is not in the audit trail as an error: %+v", ev)
	}
}

// Every authenticated route answers 401 without a token (or with a bad
// one), with a Bearer challenge.
func TestUnauthenticated(t *testing.T) {
	f := newFixture(t)
	for _, rt := range f.srv.routes {
		if rt.public {
			continue
		}
		for _, tok := range []string{"", "forged"} {
			rec := f.do(rt.method, concrete(rt.path), tok, "")
			if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with token %q = %d (%q)", rt.pattern(), tok, rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		}
	}
	if n := len(f.audit.events); n != 0 {
		t.Errorf("unauthenticated requests wrote %d audit events", n)
	}
}

// A token without the route's permission gets 403 and an access.denied
// audit event, for every route and every role that lacks it.
func TestForbiddenIsAudited(t *testing.T) {
	for _, rt := range newFixture(t).srv.routes {
		if rt.perm == "" {
			continue
		}
		for _, role := range Roles {
			if role.Allows(rt.perm) {
				continue
			}
			t.Run(rt.pattern()+"/"+string(role), func(t *testing.T) {
				f := newFixture(t)
				rec := f.do(rt.method, concrete(rt.path), string(role), "")
				if rec.Code != http.StatusForbidden {
					t.Fatalf("= %d %s", rec.Code, rec.Body)
				}
				ev := f.audit.actions()
				if len(ev) != 1 || ev[0].Action != ActionAccessDenied || ev[0].Outcome != canonical.AuditDenied ||
					ev[0].Role != string(role) || ev[0].Resource != rt.pattern() || ev[0].Detail != "needs permission "+string(rt.perm) {
					t.Errorf("audit = %+v", ev)
				}
			})
		}
	}
}

func TestUnknownQueryParameter(t *testing.T) {
	f := newFixture(t)
	for _, rt := range f.srv.routes {
		if rt.public {
			continue
		}
		rec := f.do(rt.method, concrete(rt.path)+"?bogus=1", "admin", "")
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s?bogus=1 = %d", rt.pattern(), rec.Code)
			continue
		}
		if e := decode[api.Error](t, rec); e.Param != "bogus" {
			t.Errorf("%s?bogus=1 names %q", rt.pattern(), e.Param)
		}
	}
}

func TestBadParameterValues(t *testing.T) {
	tests := []struct{ path, param string }{
		{"/messages?limit=0", "limit"},
		{"/messages?limit=1001", "limit"},
		{"/messages?limit=ten", "limit"},
		{"/messages?status=done", "status"},
		{"/messages?status=Delivered", "status"},
		{"/messages?since=yesterday", "since"},
		{"/messages?since=-24h", "since"},
		{"/messages?until=2026-13-01T00:00:00Z", "until"},
		{"/messages?since=1h&until=2h", "until"},
		{"/messages?control_id=a&control_id=b", "control_id"},
		{"/messages?patient_authority=HOSP", "patient_authority"},
		{"/messages?control_id=" + strings.Repeat("x", 300), "control_id"},
		{"/messages/01M?content=maybe", "content"},
		{"/dead-letters?stage=nowhere", "stage"},
		{"/dead-letters?include_discarded=2", "include_discarded"},
		{"/audit?limit=-1", "limit"},
		{"/audit?until=soon", "until"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do("GET", v1+tt.path, "admin", "")
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("= %d %s", rec.Code, rec.Body)
			}
			if e := decode[api.Error](t, rec); e.Param != tt.param || e.Error == "" {
				t.Errorf("error = %+v, want param %s", e, tt.param)
			}
		})
	}
}

func TestBadBodies(t *testing.T) {
	tests := []struct{ name, path, body, param string }{
		{"unknown field", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"dry":true}`, "dry"},
		{"unknown nested field", "/replay-jobs", `{"selector":{"patient_id":"12345"}}`, "patient_id"},
		{"wrong type", "/replay-jobs", `{"selector":{"message_ids":"01M8VSMQ5SQN7NKEWD0WSQPD42"}}`, "selector.message_ids"},
		{"not json", "/replay-jobs", `selector=1`, "body"},
		{"two values", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]}} {}`, "body"},
		{"too large", "/dead-letters/discard", `{"ids":["` + strings.Repeat("a", maxBody) + `"]}`, "body"},
		{"empty selector", "/replay-jobs", `{"selector":{}}`, "selector"},
		{"two selectors", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"],"dead_letters":["egress:0:5"]}}`, "selector"},
		{"filter without since", "/replay-jobs", `{"selector":{"interface":"adt-in"}}`, "selector.since"},
		{"bad dead letter", "/replay-jobs", `{"selector":{"dead_letters":["egress:x:5"]}}`, "selector.dead_letters[0]"},
		{"bad status", "/replay-jobs", `{"selector":{"since":"2026-03-01T00:00:00Z","status":"sent"}}`, "selector.status"},
		{"bad target", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"target":"egress"}`, "target"},
		{"unknown destination", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"target":"destination:nope"}`, "target"},
		{"rate above cap", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"rate":5000}`, "rate"},
		{"discard without ids", "/dead-letters/discard", `{"reason":"x"}`, "ids"},
		{"discard without reason", "/dead-letters/discard", `{"ids":["egress:0:5"]}`, "reason"},
		{"discard bad id", "/dead-letters/discard", `{"ids":["egress:0:5","x"],"reason":"r"}`, "ids[1]"},
		{"reset without to", "/destinations/lab/reset", `{}`, "to"},
		{"reset bad time", "/destinations/lab/reset", `{"to":"yesterday"}`, "to"},
		{"reset time not a string", "/destinations/lab/reset", `{"to":5}`, "to"},
		{"bad since", "/replay-jobs", `{"selector":{"interface":"adt-in","since":"2026-03-01 00:00"}}`, "selector.since"},
		{"bad until", "/replay-jobs", `{"selector":{"since":"2026-03-01T00:00:00Z","until":"soon"}}`, "selector.until"},
		// An MRN typed where a message ID belongs is refused before it
		// reaches the audit trail.
		{"patient ID as message ID", "/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42","MRNX1001"]}}`, "selector.message_ids[1]"},
		{"short message ID", "/replay-jobs", `{"selector":{"message_ids":["01M"]}}`, "selector.message_ids[0]"},
		{"pause unknown field", "/destinations/lab/pause", `{"why":"x"}`, "why"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rec := f.do("POST", v1+tt.path, "admin", tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("= %d %s", rec.Code, rec.Body)
			}
			if e := decode[api.Error](t, rec); e.Param != tt.param {
				t.Errorf("error = %+v, want param %s", e, tt.param)
			}
			for _, v := range []string{"MRNX1001", "yesterday", "soon"} {
				if strings.Contains(rec.Body.String(), v) {
					t.Errorf("the error quotes the value %q: %s", v, rec.Body)
				}
			}
			if f.repl.started != 0 || len(f.audit.actions()) != 0 {
				t.Errorf("a refused request was acted on (%d started) or audited (%+v)", f.repl.started, f.audit.actions())
			}
		})
	}
}

func TestMessageDetailMetadata(t *testing.T) {
	f := newFixture(t)
	rec := f.do("GET", v1+"/messages/01M", "viewer", "")
	if rec.Code != 200 {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	d := decode[api.MessageDetail](t, rec)
	if len(d.Decisions) != 1 || d.Decisions[0].Routes[0].Route != "labs" || d.Decisions[0].Destinations[0].Destination != "lab" {
		t.Errorf("decisions = %+v", d.Decisions)
	}
	if len(d.Deliveries) != 1 || d.Deliveries[0].AckCode != "AR" || d.Deliveries[0].Outcome != canonical.OutcomeDeadLettered {
		t.Errorf("deliveries = %+v", d.Deliveries)
	}
	for _, r := range d.Records {
		if r.Content != nil {
			t.Errorf("record %s has content without content=true", r.Kind)
		}
	}
	if strings.Contains(rec.Body.String(), patientName) {
		t.Errorf("metadata holds content: %s", rec.Body)
	}
	if len(d.DeadLetters) != 1 || len(d.Records) != 4 {
		t.Errorf("detail = %+v", d)
	}
	if ev := f.audit.actions(); len(ev) != 0 {
		t.Errorf("a metadata read was audited: %+v", ev)
	}
}

func TestViewerCannotReadContent(t *testing.T) {
	f := newFixture(t)
	rec := f.do("GET", v1+"/messages/01M?content=true", "viewer", "")
	if rec.Code != http.StatusForbidden {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), patientName) {
		t.Errorf("refusal holds content: %s", rec.Body)
	}
	ev := f.audit.actions()
	if len(ev) != 1 || ev[0].Action != ActionAccessDenied || ev[0].Detail != "needs permission content" {
		t.Errorf("audit = %+v", ev)
	}
}

func TestContentReadIsAudited(t *testing.T) {
	f := newFixture(t)
	rec := f.do("GET", v1+"/messages/01M?content=true", "analyst", "")
	if rec.Code != 200 {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	d := decode[api.MessageDetail](t, rec)
	byKind := map[string]api.Record{}
	for _, r := range d.Records {
		byKind[r.Kind] = r
	}
	raw, _ := byKind["raw"].Content.(map[string]any)
	if p, _ := raw["payload"].(string); !strings.Contains(p, patientName) || raw["message_id"] != "01M" {
		t.Errorf("raw content = %v", byKind["raw"].Content)
	}
	if byKind["parsed"].Content != nil || !strings.Contains(byKind["parsed"].ContentError, "retention") {
		t.Errorf("a record gone says so: %+v", byKind["parsed"])
	}
	del, _ := byKind[kindDelivery].Content.(map[string]any)
	if del["ack_code"] != "AR" {
		t.Errorf("delivery content = %v", del)
	}
	// The delivery's metadata row still leaves the error text out.
	for _, dl := range d.Deliveries {
		if dl != (api.Delivery{Destination: "lab", Attempt: 1, Outcome: canonical.OutcomeDeadLettered, AckCode: "AR", LatencyMS: 12, At: t0}) {
			t.Errorf("delivery = %+v", dl)
		}
	}
	ev := f.audit.actions()
	if len(ev) != 1 {
		t.Fatalf("audit = %+v", ev)
	}
	e := ev[0]
	if e.Action != ActionContentRead || e.Resource != "message/01M" || e.Count != 3 || e.Actor != "ana" || e.Role != "analyst" ||
		e.Service != "admin" || e.Outcome != canonical.AuditOK || e.EventID == "" || !e.At.Equal(t0) || e.Remote != "192.0.2.1" {
		t.Errorf("audit event = %+v", e)
	}
	if strings.Contains(e.Selector+e.Detail+e.Resource, patientName) {
		t.Errorf("audit event holds content: %+v", e)
	}
}

func TestContentRefusedWhenAuditFails(t *testing.T) {
	f := newFixture(t)
	f.audit.fail = true
	rec := f.do("GET", v1+"/messages/01M?content=true", "analyst", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), patientName) || strings.Contains(rec.Body.String(), "payload") {
		t.Errorf("content returned without its audit record: %s", rec.Body)
	}
	// Metadata does not need the audit trail.
	if rec := f.do("GET", v1+"/messages/01M", "analyst", ""); rec.Code != 200 {
		t.Errorf("metadata with the audit trail down = %d", rec.Code)
	}
}

func TestActionsRefusedWhenAuditFails(t *testing.T) {
	for _, tt := range []struct{ path, body string }{
		{"/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"confirm":true}`},
		{"/replay-jobs", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]}}`},
		{"/replay-jobs/J1/cancel", ""},
		{"/dead-letters/discard", `{"ids":["egress:0:5"],"reason":"r"}`},
		{"/destinations/lab/pause", ""},
	} {
		f := newFixture(t)
		f.audit.fail = true
		rec := f.do("POST", v1+tt.path, "admin", tt.body)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s = %d %s", tt.path, rec.Code, rec.Body)
		}
		if f.repl.started != 0 || len(f.repl.discards) != 0 || len(f.ctl.states) != 0 {
			t.Errorf("%s was done without its audit record", tt.path)
		}
	}
}

func TestReplayConfirmNewer(t *testing.T) {
	f := newFixture(t)
	f.repl.warn = true
	rec := f.do("POST", v1+"/replay-jobs", "operator", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"confirm":true}`)
	if rec.Code != http.StatusConflict {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	if p := decode[api.ReplayPlan](t, rec); len(p.Warnings) != 1 || p.Warnings[0].NewerMessageID != "01N" {
		t.Errorf("plan = %+v", p)
	}
	rec = f.do("POST", v1+"/replay-jobs", "operator", `{"selector":{"message_ids":["01M8VSMQ5SQN7NKEWD0WSQPD42"]},"confirm":true,"confirm_newer":true}`)
	if rec.Code != http.StatusCreated || f.repl.started != 1 {
		t.Errorf("confirmed = %d, started %d", rec.Code, f.repl.started)
	}
}

func TestPatientSearchAuditsTheKeyOnly(t *testing.T) {
	f := newFixture(t)
	const pid = "MRN-0042-SECRET"
	rec := f.do("GET", v1+"/messages?patient_id="+pid+"&patient_authority=HOSP", "viewer", "")
	if rec.Code != 200 {
		t.Fatalf("= %d %s", rec.Code, rec.Body)
	}
	if q := f.index.search; q.PatientID != pid || q.PatientAuthority != "HOSP" {
		t.Errorf("the index got %+v", q)
	}
	ev := f.audit.actions()
	want := "patient_key:" + f.index.PatientKey("HOSP", pid)
	if len(ev) != 1 || ev[0].Action != ActionMessageSearch || ev[0].Selector != want || ev[0].Count != 1 {
		t.Errorf("audit = %+v, want selector %s", ev, want)
	}
	for _, e := range f.audit.events {
		if strings.Contains(e.Selector+e.Detail+e.Resource, pid) {
			t.Errorf("audit event holds the patient ID: %+v", e)
		}
	}
	// A refused search writes no patient ID either, and nothing logs the
	// query string.
	f.audit.fail = true
	if rec := f.do("GET", v1+"/messages?patient_id="+pid, "viewer", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("search with the audit trail down = %d", rec.Code)
	}
	if strings.Contains(f.logs.String(), pid) {
		t.Errorf("logs hold the patient ID:\n%s", f.logs)
	}
	// Searches without a patient ID are not audited.
	f.audit.fail = false
	n := len(f.audit.actions())
	f.do("GET", v1+"/messages?control_id=C1", "viewer", "")
	if len(f.audit.actions()) != n {
		t.Errorf("a search without patient ID was audited")
	}
}

func TestTokenUseAuditedOnce(t *testing.T) {
	f := newFixture(t)
	for range 3 {
		f.do("GET", v1+"/whoami", "viewer", "")
	}
	f.do("GET", v1+"/whoami", "analyst", "")
	var uses []string
	for _, e := range f.audit.events {
		if e.Action == ActionTokenUse {
			uses = append(uses, e.Resource)
		}
	}
	if strings.Join(uses, ",") != "token/VIEWER01,token/ANALYST1" {
		t.Errorf("token.use events = %v", uses)
	}
}

func TestMetricsUseRoutePatterns(t *testing.T) {
	f := newFixture(t)
	f.do("GET", v1+"/messages/01M", "viewer", "")
	f.do("GET", v1+"/messages/02M", "viewer", "")
	f.do("GET", v1+"/messages?bogus=1", "viewer", "")
	f.do("GET", "/secret/path/01M", "viewer", "")
	got := testutil.ToFloat64(f.srv.requests.WithLabelValues("GET "+v1+"/messages/{id}", "404")) +
		testutil.ToFloat64(f.srv.requests.WithLabelValues("GET "+v1+"/messages/{id}", "200"))
	if got != 2 {
		t.Errorf("requests of the detail route = %v", got)
	}
	if got := testutil.ToFloat64(f.srv.requests.WithLabelValues("GET "+v1+"/messages", "400")); got != 1 {
		t.Errorf("400s of search = %v", got)
	}
	if got := testutil.ToFloat64(f.srv.requests.WithLabelValues("unmatched", "404")); got != 1 {
		t.Errorf("unmatched = %v", got)
	}
	mfs, err := f.tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "01M") || strings.Contains(l.GetValue(), "secret") {
					t.Errorf("%s has a raw path label %q", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	if n := testutil.CollectAndCount(f.srv.latency); n == 0 {
		t.Errorf("no latency series")
	}
}

func TestWithoutReplayerOrController(t *testing.T) {
	f := newFixture(t)
	f.srv.d.Replayer, f.srv.d.Controller = nil, nil
	for _, path := range []string{"/replay-jobs", "/destinations/lab/pause"} {
		if rec := f.do("POST", v1+path, "admin", `{}`); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s = %d", path, rec.Code)
		}
	}
	if rec := f.do("GET", v1+"/destinations", "admin", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"running"`) {
		t.Errorf("destinations without a controller = %d %s", rec.Code, rec.Body)
	}
}

// concrete fills a path pattern's wildcards with values the fakes know.
func concrete(path string) string {
	r := strings.NewReplacer("{id}", "01M", "{name}", "lab")
	p := r.Replace(path)
	switch {
	case strings.HasPrefix(p, v1+"/dead-letters/01M"):
		return v1 + "/dead-letters/egress:0:5"
	case strings.HasPrefix(p, v1+"/replay-jobs/01M"):
		return strings.Replace(p, "01M", "J1", 1)
	}
	return p
}
