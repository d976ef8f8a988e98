package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

func TestDLQList(t *testing.T) {
	f := newFakeAPI(t)
	page := api.DeadLetterPage{DeadLetters: []api.DeadLetter{
		{ID: "egress:0:7", MessageID: "M1", ControlID: "C1", Stage: "egress", Destination: "lis", ErrorClass: "rejected", Reason: "AR: unknown patient class", FailedAt: received},
		{ID: "parse:1:3", MessageID: "M2", ControlID: "C2", Stage: "parse", ErrorClass: "permanent", Reason: "MSH-9: missing", FailedAt: received,
			Discarded: &api.Discarded{Actor: "alice", Reason: "test message"}},
	}}
	f.onQuery("GET", "/dead-letters", "include_discarded=true&stage=egress", 200, page)
	code, out, errb := run(t, "", f.args("dlq", "list", "--stage", "egress", "--include-discarded")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	want := "" +
		"ID          MESSAGE_ID  CONTROL_ID  STAGE   DESTINATION  FAILED_AT             REASON\n" +
		"egress:0:7  M1          C1          egress  lis          2026-03-01T09:30:00Z  AR: unknown patient class\n" +
		"parse:1:3   M2          C2          parse   -            2026-03-01T09:30:00Z  MSH-9: missing [discarded by alice: test message]\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}

	code, out, errb = run(t, "", f.args("dlq", "list", "--json", "--stage", "egress", "--include-discarded")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	rows := jsonLinesOf(t, out)
	if len(rows) != 2 {
		t.Fatalf("%d lines: %s", len(rows), out)
	}
	for _, k := range []string{"id", "message_id", "control_id", "stage", "reason"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("no %s in %v", k, rows[0])
		}
	}
	if rows[0]["id"] != "egress:0:7" || rows[0]["destination"] != "lis" {
		t.Errorf("row %v", rows[0])
	}
}

func TestDLQListPages(t *testing.T) {
	f := newFakeAPI(t)
	f.onQuery("GET", "/dead-letters", "cursor=N&limit=1", 200, api.DeadLetterPage{DeadLetters: []api.DeadLetter{{ID: "parse:0:2", Stage: "parse"}}})
	f.onQuery("GET", "/dead-letters", "limit=1", 200, api.DeadLetterPage{DeadLetters: []api.DeadLetter{{ID: "parse:0:1", Stage: "parse"}}, NextCursor: "N"})
	_, out, errb := run(t, "", f.args("dlq", "list", "--limit", "1")...)
	if strings.Contains(out, "parse:0:2") || !strings.Contains(errb, "--all") {
		t.Errorf("first page only: out %q stderr %q", out, errb)
	}
	_, out, _ = run(t, "", f.args("dlq", "list", "--limit", "1", "--all", "--json")...)
	if rows := jsonLinesOf(t, out); len(rows) != 2 || rows[1]["id"] != "parse:0:2" {
		t.Errorf("all pages: %s", out)
	}
}

func TestDLQReplay(t *testing.T) {
	plan := api.ReplayPlan{Count: 2, Sample: []api.ReplayItem{{MessageID: "M1", ControlID: "C1", Destination: "lis", TargetTopic: "out.lis"}}}
	job := api.ReplayJob{ID: "J1", State: "running", Total: 2, Rate: 50}
	ids := []string{"egress:0:7", "egress:0:9"}

	t.Run("refused without a terminal and --yes", func(t *testing.T) {
		f := newFakeAPI(t)
		f.on("POST", "/replay-jobs", 200, plan)
		code, out, errb := run(t, "yes\n", f.args("dlq", "replay", ids[0], ids[1])...)
		if code != ExitInvalid || !strings.Contains(errb, "error: stdin is not a terminal: add --yes to start the replay") {
			t.Errorf("code %d stderr %q", code, errb)
		}
		if !strings.Contains(out, "plan: 2 records to send") || !strings.Contains(out, "out.lis") {
			t.Errorf("the dry run is not shown first: %q", out)
		}
		got := f.requests()
		if len(got) != 1 {
			t.Fatalf("%d requests, want only the dry run", len(got))
		}
		var req api.ReplayRequest
		decodeBody(t, got[0], &req)
		if req.Confirm || !reflect.DeepEqual(req.Selector.DeadLetters, ids) || req.Resend {
			t.Errorf("dry run %+v", req)
		}
	})

	t.Run("--yes starts it after the dry run", func(t *testing.T) {
		f := newReplayFake(t, plan, job)
		code, out, errb := run(t, "", append(f.args("dlq", "replay", "--resend", "--yes"), ids...)...)
		if code != ExitOK {
			t.Fatalf("code %d: %s", code, errb)
		}
		if !strings.Contains(out, "plan: 2 records to send") || !strings.Contains(out, "started replay job J1: 2 records, 50 records/s") {
			t.Errorf("out %q", out)
		}
		got := f.requests()
		if len(got) != 2 {
			t.Fatalf("%d requests, want dry run and start", len(got))
		}
		var dry, start api.ReplayRequest
		decodeBody(t, got[0], &dry)
		decodeBody(t, got[1], &start)
		if dry.Confirm || !start.Confirm || !start.Resend || start.ConfirmNewer || !reflect.DeepEqual(start.Selector.DeadLetters, ids) {
			t.Errorf("dry run %+v, start %+v", dry, start)
		}
	})

	t.Run("an answer that is not a job is an error", func(t *testing.T) {
		f := newFakeAPI(t)
		f.on("POST", "/replay-jobs", 200, plan)
		code, _, errb := run(t, "", append(f.args("dlq", "replay", "--yes"), ids...)...)
		if code != ExitInvalid || !strings.Contains(errb, "not a started job") {
			t.Errorf("code %d stderr %q", code, errb)
		}
	})
}

func TestDLQDiscard(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST", "/dead-letters/discard", 200, api.DiscardResult{Discarded: 2})
	code, out, errb := run(t, "", f.args("dlq", "discard", "parse:0:1", "parse:0:2", "--reason", "test feed")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	if out != "discarded 2 of 2 dead letters\n" {
		t.Errorf("out %q", out)
	}
	var req api.DiscardRequest
	decodeBody(t, f.last(), &req)
	if !reflect.DeepEqual(req, api.DiscardRequest{IDs: []string{"parse:0:1", "parse:0:2"}, Reason: "test feed"}) {
		t.Errorf("request %+v", req)
	}
	if code, _, errb := run(t, "", f.args("dlq", "discard", "parse:0:1")...); code != ExitUsage || !strings.Contains(errb, "--reason is required") {
		t.Errorf("without --reason: code %d %q", code, errb)
	}
	if code, _, _ := run(t, "", f.args("dlq", "replay")...); code != ExitUsage {
		t.Errorf("replay without IDs: code %d", code)
	}
}
