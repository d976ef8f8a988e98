package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

func TestDestinationsList(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/destinations", 200, api.DestinationList{Destinations: []api.DestinationState{
		{Name: "lis", Protocol: "mllp", State: "paused", Reason: "lab down", Actor: "alice", Since: received, Counts: map[string]int64{"rejected": 1, "delivered": 12},
			ResetID: "r1", ResetTo: received, ResetPending: true, ResetPendingPartitions: []int32{0, 2}},
		{Name: "ris", Protocol: "http", State: "running"},
		{Name: "ehr", Protocol: "mllp", State: "paused", ResetID: "r2", ResetTo: received},
	}})
	code, out, errb := run(t, "", f.args("destinations", "list")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	want := "" +
		"NAME  PROTOCOL  STATE    SINCE                 ACTOR  REASON    RESET                                   LAST_24H\n" +
		"lis   mllp      paused   2026-03-01T09:30:00Z  alice  lab down  to 2026-03-01T09:30:00Z pending on 0,2  delivered=12,rejected=1\n" +
		"ris   http      running  -                     -      -         -                                       -\n" +
		"ehr   mllp      paused   -                     -      -         to 2026-03-01T09:30:00Z applied         -\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}
	_, out, _ = run(t, "", f.args("destinations", "list", "--json")...)
	if rows := jsonLinesOf(t, out); len(rows) != 3 || rows[0]["state"] != "paused" || rows[0]["reset_pending"] != true {
		t.Errorf("json %s", out)
	}
}

func TestDestinationsControl(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST", "/destinations/lis/pause", 200, api.DestinationState{Name: "lis", State: "paused"})
	f.on("POST", "/destinations/lis/resume", 200, api.DestinationState{Name: "lis", State: "running"})
	f.on("POST", "/destinations/lis/reset", 200, api.DestinationState{Name: "lis", State: "paused", ResetID: "r1"})

	code, out, errb := run(t, "", f.args("destinations", "pause", "lis", "--reason", "lab down")...)
	if code != ExitOK || out != "destination lis: paused\n" {
		t.Fatalf("pause: code %d out %q stderr %q", code, out, errb)
	}
	var p api.PauseRequest
	decodeBody(t, f.last(), &p)
	if p.Reason != "lab down" {
		t.Errorf("pause request %+v", p)
	}

	code, out, _ = run(t, "", f.args("destinations", "resume", "lis")...)
	if code != ExitOK || out != "destination lis: running\n" || f.last().Path != "/destinations/lis/resume" {
		t.Errorf("resume: code %d out %q", code, out)
	}

	code, out, errb = run(t, "", f.args("destinations", "reset", "lis", "--to", "2026-03-01T08:00:00Z")...)
	if code != ExitOK || !strings.HasPrefix(out, "destination lis: paused, reset to 2026-03-01T08:00:00Z applied") {
		t.Fatalf("reset: code %d out %q stderr %q", code, out, errb)
	}
	var r api.ResetRequest
	decodeBody(t, f.last(), &r)
	if !r.To.Equal(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("reset request %+v", r)
	}

	for _, args := range [][]string{{"destinations", "reset", "lis"}, {"destinations", "reset", "lis", "--to", "soon"},
		{"destinations", "pause"}, {"destinations", "nope"}} {
		if code, _, _ := run(t, "", f.args(args...)...); code != ExitUsage {
			t.Errorf("%v: code %d, want usage", args, code)
		}
	}
}

// TestDestinationsResumeResetPending: a resume the API refuses because a
// reset is pending shows the API's text and the way on (--force); with
// --force the request says force; reset says when it is still pending.
func TestDestinationsResumeResetPending(t *testing.T) {
	f := newFakeAPI(t)
	msg := "destination lis: reset r1 (to 2026-03-01T08:00:00Z) is not applied yet on partition(s) 2 of its topic; resume with force to drop the reset"
	forced := func(b []byte) bool { return strings.Contains(string(b), `"force":true`) }
	f.onBody("POST", "/destinations/lis/resume", func(b []byte) bool { return !forced(b) }, 409, api.Error{Error: msg, Param: "force"})
	f.onBody("POST", "/destinations/lis/resume", forced, 200, api.DestinationState{Name: "lis", State: "running"})
	code, out, errb := run(t, "", f.args("destinations", "resume", "lis")...)
	if code != ExitInvalid || out != "" || !strings.Contains(errb, msg) || !strings.Contains(errb, "--force") {
		t.Errorf("refused resume: code %d out %q stderr %q", code, out, errb)
	}
	var p api.PauseRequest
	decodeBody(t, f.last(), &p)
	if p.Force {
		t.Error("resume without --force sent force")
	}

	code, out, errb = run(t, "", f.args("destinations", "resume", "lis", "--force")...)
	if code != ExitOK || out != "destination lis: running\n" {
		t.Fatalf("forced resume: code %d out %q stderr %q", code, out, errb)
	}
	decodeBody(t, f.last(), &p)
	if !p.Force {
		t.Error("resume --force did not send force")
	}
	if code, _, _ := run(t, "", f.args("destinations", "pause", "lis", "--force")...); code != ExitUsage {
		t.Errorf("pause --force: code %d, want usage", code)
	}

	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   api.DestinationState
		want string
	}{
		{"applied", api.DestinationState{Name: "lis", State: "paused", ResetID: "r1", ResetTo: at},
			"destination lis: paused, reset to 2026-03-01T08:00:00Z applied; resume it"},
		{"pending", api.DestinationState{Name: "lis", State: "paused", ResetID: "r1", ResetTo: at, ResetPending: true, ResetPendingPartitions: []int32{1, 2}},
			"destination lis: paused, reset to 2026-03-01T08:00:00Z ordered but not applied yet on partition(s) 1,2"},
		{"replaced", api.DestinationState{Name: "lis", State: "running"},
			"destination lis: running; the reset to 2026-03-01T08:00:00Z was replaced before egress applied it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.on("POST", "/destinations/lis/reset", 200, tc.st)
			code, out, errb := run(t, "", f.args("destinations", "reset", "lis", "--to", "2026-03-01T08:00:00Z")...)
			if code != ExitOK || !strings.HasPrefix(out, tc.want) {
				t.Errorf("code %d out %q stderr %q, want %q", code, out, errb, tc.want)
			}
		})
	}
}
