package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// newReplayFake answers POST /replay-jobs as the API does: a dry run gets
// the plan; a confirmed request gets 409 and the plan when the plan warns
// and confirm_newer is not set, else 201 and the job.
func newReplayFake(t *testing.T, plan api.ReplayPlan, job api.ReplayJob) *fakeAPI {
	f := newFakeAPI(t)
	req := func(b []byte) api.ReplayRequest {
		var r api.ReplayRequest
		if err := json.Unmarshal(b, &r); err != nil {
			t.Errorf("replay request %q: %v", b, err)
		}
		return r
	}
	f.onBody("POST", "/replay-jobs", func(b []byte) bool { return !req(b).Confirm }, 200, plan)
	f.onBody("POST", "/replay-jobs", func(b []byte) bool { r := req(b); return len(plan.Warnings) > 0 && !r.ConfirmNewer }, 409, plan)
	f.on("POST", "/replay-jobs", 201, job)
	return f
}

func TestReplaySelectorFlags(t *testing.T) {
	plan := api.ReplayPlan{Count: 3, Skipped: 1, Sample: []api.ReplayItem{{MessageID: "M1", ControlID: "C1", Type: "ADT^A08", Destination: "lis", TargetTopic: "out.lis"}}}
	f := newReplayFake(t, plan, api.ReplayJob{})
	before := time.Now().Add(-2 * time.Hour)
	code, out, errb := run(t, "", f.args("replay", "--control-id", "C1", "--interface", "adt-in", "--type", "ADT^A08", "--status", "delivered",
		"--since", "2h", "--until", "2026-03-01T10:00:00Z", "--destination", "lis", "--target", "destination:lis", "--resend", "--rate", "5", "--dry-run")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	got := f.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests; a dry run sends one", len(got))
	}
	var req api.ReplayRequest
	decodeBody(t, got[0], &req)
	s := req.Selector
	if s.ControlID != "C1" || s.Interface != "adt-in" || s.Type != "ADT^A08" || s.Status != "delivered" || s.Destination != "lis" ||
		!s.Until.Equal(mustTime(t, "2026-03-01T10:00:00Z")) || s.Since.Before(before.Add(-time.Minute)) || s.Since.After(time.Now().Add(-2*time.Hour)) ||
		req.Target != "destination:lis" || !req.Resend || req.Rate != 5 || req.Confirm {
		t.Errorf("request %+v", req)
	}
	want := "plan: 3 records to send, 1 (message, destination) pairs skipped as delivered (--resend sends them)\n\n" +
		"sample (1 of 3):\n" +
		"MESSAGE_ID  CONTROL_ID  TYPE     DESTINATION  TARGET_TOPIC\n" +
		"M1          C1          ADT^A08  lis          out.lis\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}
}

func TestReplayMessageIDs(t *testing.T) {
	f := newReplayFake(t, api.ReplayPlan{Count: 2}, api.ReplayJob{ID: "J7", Total: 2, Rate: 50})
	code, out, errb := run(t, "", f.args("replay", "--message-id", "M1", "--message-id", "M2", "--destination", "lis", "--yes")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	if !strings.Contains(out, "started replay job J7") {
		t.Errorf("out %q", out)
	}
	got := f.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want dry run + start", len(got))
	}
	var dry, start api.ReplayRequest
	decodeBody(t, got[0], &dry)
	decodeBody(t, got[1], &start)
	if dry.Confirm || !start.Confirm || !reflect.DeepEqual(start.Selector.MessageIDs, []string{"M1", "M2"}) || start.Selector.Destination != "lis" {
		t.Errorf("dry %+v start %+v", dry, start)
	}
	if strings.Contains(string(got[0].Body), "since") {
		t.Errorf("an unset since is sent: %s", got[0].Body)
	}
}

func TestReplayWarnings(t *testing.T) {
	plan := api.ReplayPlan{Count: 1, Sample: []api.ReplayItem{{MessageID: "OLD", Destination: "lis", TargetTopic: "out.lis"}},
		Warnings: []api.ReplayWarning{{MessageID: "OLD", Destination: "lis", NewerMessageID: "NEW", Reason: "a newer message of the patient was delivered"}}}
	job := api.ReplayJob{ID: "J2", Total: 1, Rate: 10}

	f := newReplayFake(t, plan, job)
	code, out, errb := run(t, "", f.args("replay", "--message-id", "OLD", "--yes")...)
	if code != ExitInvalid || !strings.Contains(errb, "--confirm-newer") {
		t.Errorf("without --confirm-newer: code %d stderr %q", code, errb)
	}
	if !strings.Contains(out, "warnings: 1 messages would reach a destination after a newer message") || !strings.Contains(out, "OLD         lis          NEW") {
		t.Errorf("the warnings are not shown: %q", out)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests; it must not try to start", n)
	}

	f = newReplayFake(t, plan, job)
	code, out, errb = run(t, "", f.args("replay", "--message-id", "OLD", "--yes", "--confirm-newer")...)
	if code != ExitOK || !strings.Contains(out, "started replay job J2") {
		t.Fatalf("with --confirm-newer: code %d out %q stderr %q", code, out, errb)
	}
	var start api.ReplayRequest
	decodeBody(t, f.last(), &start)
	if !start.Confirm || !start.ConfirmNewer {
		t.Errorf("start %+v", start)
	}
}

// The plan can change between the dry run and the start: the API's 409
// with the plan is shown, not a bare error.
func TestReplayConflictAtStart(t *testing.T) {
	f := newFakeAPI(t)
	isDry := func(b []byte) bool { return !strings.Contains(string(b), `"confirm":true`) }
	f.onBody("POST", "/replay-jobs", isDry, 200, api.ReplayPlan{Count: 1})
	f.on("POST", "/replay-jobs", 409, api.ReplayPlan{Count: 1, Warnings: []api.ReplayWarning{{MessageID: "M1", Destination: "lis", NewerMessageID: "M9"}}})
	code, out, errb := run(t, "", f.args("replay", "--message-id", "M1", "--yes")...)
	if code != ExitInvalid || !strings.Contains(errb, "the plan now has 1 newer-message warnings") || !strings.Contains(out, "M9") {
		t.Errorf("code %d out %q stderr %q", code, out, errb)
	}
}

func TestReplayRefusesWithoutTTY(t *testing.T) {
	f := newReplayFake(t, api.ReplayPlan{Count: 4}, api.ReplayJob{ID: "J"})
	code, out, errb := run(t, "y\n", f.args("replay", "--interface", "adt-in", "--since", "1h")...)
	if code != ExitInvalid || !strings.Contains(errb, "--yes") || !strings.Contains(out, "plan: 4 records") {
		t.Errorf("code %d out %q stderr %q", code, out, errb)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests; only the dry run may be sent", n)
	}
}

func TestReplayNothingToSend(t *testing.T) {
	f := newReplayFake(t, api.ReplayPlan{Count: 0, Skipped: 5}, api.ReplayJob{ID: "J"})
	code, out, _ := run(t, "", f.args("replay", "--message-id", "M1", "--yes")...)
	if code != ExitOK || !strings.Contains(out, "nothing to send") || len(f.requests()) != 1 {
		t.Errorf("code %d out %q, %d requests", code, out, len(f.requests()))
	}
}

func TestReplayUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "give --message-id, or a filter with --since"},
		{[]string{"replay", "--interface", "x"}, "a filter with --since"},
		{[]string{"replay", "--message-id", "M", "--since", "1h"}, "--message-id selects by itself"},
		{[]string{"replay", "--since", "yesterday"}, "--since: "},
		{[]string{"replay", "--since", "1h", "--target", "lis"}, "--target \"lis\""},
		{[]string{"replay", "--since", "1h", "--rate", "-1"}, "--rate"},
		{[]string{"replay", "show"}, "give one job ID"},
		{[]string{"replay", "cancel", "a", "b"}, "give one job ID"},
	}
	for _, tt := range tests {
		code, _, errb := run(t, "", tt.args...)
		if code != ExitUsage || !strings.Contains(errb, tt.want) {
			t.Errorf("%v: code %d stderr %q, want 2 and %q", tt.args, code, errb, tt.want)
		}
	}
}

func TestReplayJobs(t *testing.T) {
	f := newFakeAPI(t)
	jobs := api.ReplayJobList{Jobs: []api.ReplayJob{
		{ID: "J1", State: "running", Actor: "alice", Target: "route", Total: 10, Sent: 4, CreatedAt: received},
		{ID: "J2", State: "done", Actor: "bob", Target: "destination:lis", Total: 2, Sent: 2, Skipped: 1, CreatedAt: received},
	}}
	f.on("GET", "/replay-jobs", 200, jobs)
	code, out, errb := run(t, "", f.args("replay", "jobs")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	want := "" +
		"ID  STATE    ACTOR  TARGET           SENT  TOTAL  SKIPPED  FAILED  CREATED_AT\n" +
		"J1  running  alice  route            4     10     0        0       2026-03-01T09:30:00Z\n" +
		"J2  done     bob    destination:lis  2     2      1        0       2026-03-01T09:30:00Z\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}
	_, out, _ = run(t, "", f.args("replay", "jobs", "--json")...)
	if rows := jsonLinesOf(t, out); len(rows) != 2 || rows[1]["id"] != "J2" || rows[1]["state"] != "done" {
		t.Errorf("json %s", out)
	}
}

func TestReplayShowAndCancel(t *testing.T) {
	f := newFakeAPI(t)
	job := api.ReplayJob{ID: "J1", State: "running", Actor: "alice", Target: "route", Rate: 50, Total: 10, Sent: 4,
		Selector: api.ReplaySelector{Interface: "adt-in", Since: received}, CreatedAt: received, UpdatedAt: received}
	f.on("GET", "/replay-jobs/J1", 200, job)
	cancelled := job
	cancelled.State = "cancelled"
	f.on("POST", "/replay-jobs/J1/cancel", 200, cancelled)

	code, out, errb := run(t, "", f.args("replay", "show", "J1")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	for _, want := range []string{"state:            running\n", "selector:         interface=adt-in since=2026-03-01T09:30:00Z\n",
		"progress:         4 of 10 sent, 0 skipped, 0 failed\n", "rate:             50 records/s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = run(t, "", f.args("replay", "show", "J1", "--json")...)
	if rows := jsonLinesOf(t, out); len(rows) != 1 || rows[0]["id"] != "J1" {
		t.Errorf("json %s", out)
	}

	code, out, errb = run(t, "", f.args("replay", "cancel", "J1")...)
	if code != ExitOK || out != "replay job J1: cancelled, 4 of 10 sent\n" {
		t.Errorf("cancel: code %d out %q stderr %q", code, out, errb)
	}
	if r := f.last(); r.Method != "POST" || r.Path != "/replay-jobs/J1/cancel" {
		t.Errorf("cancel sent %s %s", r.Method, r.Path)
	}
}
