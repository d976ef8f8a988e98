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
		{Name: "lis", Protocol: "mllp", State: "paused", Reason: "lab down", Actor: "alice", Since: received, Counts: map[string]int64{"rejected": 1, "delivered": 12}},
		{Name: "ris", Protocol: "http", State: "running"},
	}})
	code, out, errb := run(t, "", f.args("destinations", "list")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	want := "" +
		"NAME  PROTOCOL  STATE    SINCE                 ACTOR  REASON    LAST_24H\n" +
		"lis   mllp      paused   2026-03-01T09:30:00Z  alice  lab down  delivered=12,rejected=1\n" +
		"ris   http      running  -                     -      -         -\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}
	_, out, _ = run(t, "", f.args("destinations", "list", "--json")...)
	if rows := jsonLinesOf(t, out); len(rows) != 2 || rows[0]["state"] != "paused" {
		t.Errorf("json %s", out)
	}
}

func TestDestinationsControl(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST", "/destinations/lis/pause", 200, api.DestinationState{Name: "lis", State: "paused"})
	f.on("POST", "/destinations/lis/resume", 200, api.DestinationState{Name: "lis", State: "running"})
	f.on("POST", "/destinations/lis/reset", 200, api.DestinationState{Name: "lis", State: "paused"})

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
	if code != ExitOK || !strings.HasPrefix(out, "destination lis: paused, reset to 2026-03-01T08:00:00Z") {
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
