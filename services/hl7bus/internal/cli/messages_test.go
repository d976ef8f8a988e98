package cli

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

var received = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func sampleMessage(id, ctl, status string, dests ...api.DestinationStatus) api.Message {
	return api.Message{MessageID: id, ControlID: ctl, Interface: "adt-in", SendingFacility: "HOSP", Type: "ADT^A08",
		ReceivedAt: received, Status: status, StageStatus: "routed", UpdatedAt: received, Destinations: dests}
}

func TestMessagesFindQuery(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/messages", 200, api.MessagePage{})
	code, out, errb := run(t, "", f.args("messages", "find", "--control-id", "C1", "--patient-id", "P9", "--patient-authority", "MRN",
		"--interface", "adt-in", "--facility", "HOSP", "--type", "ADT^A08", "--status", "dead_lettered", "--since", "24h",
		"--until", "2026-03-02T00:00:00Z", "--limit", "50")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	if out != "no messages\n" {
		t.Errorf("out %q", out)
	}
	want := url.Values{"control_id": {"C1"}, "patient_id": {"P9"}, "patient_authority": {"MRN"}, "interface": {"adt-in"},
		"facility": {"HOSP"}, "type": {"ADT^A08"}, "status": {"dead_lettered"}, "since": {"24h"},
		"until": {"2026-03-02T00:00:00Z"}, "limit": {"50"}}
	r := f.last()
	if r.Method != "GET" || r.Path != "/messages" || r.Query.Encode() != want.Encode() {
		t.Errorf("%s %s?%s, want GET /messages?%s", r.Method, r.Path, r.Query.Encode(), want.Encode())
	}
}

func TestMessagesFindTable(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/messages", 200, api.MessagePage{Messages: []api.Message{
		sampleMessage("01HX1", "C1", "delivered", api.DestinationStatus{Name: "lis", Status: "delivered"}, api.DestinationStatus{Name: "ris", Status: "ack_error"}),
		sampleMessage("01HX2", "C22", "filtered"),
	}, NextCursor: "CUR2"})
	code, out, errb := run(t, "", f.args("messages", "find", "--since", "1h")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	want := "" +
		"MESSAGE_ID  CONTROL_ID  INTERFACE  TYPE     RECEIVED_AT           STATUS     DESTINATIONS\n" +
		"01HX1       C1          adt-in     ADT^A08  2026-03-01T09:30:00Z  delivered  lis=delivered,ris=ack_error\n" +
		"01HX2       C22         adt-in     ADT^A08  2026-03-01T09:30:00Z  filtered   -\n"
	if out != want {
		t.Errorf("out:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errb, "--cursor CUR2") {
		t.Errorf("stderr %q does not say how to get the next page", errb)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests without --all, want 1", n)
	}
}

func TestMessagesFindAllPagesJSON(t *testing.T) {
	f := newFakeAPI(t)
	f.onQuery("GET", "/messages", "cursor=CUR2&status=delivered", 200, api.MessagePage{Messages: []api.Message{sampleMessage("M3", "C3", "delivered")}})
	f.onQuery("GET", "/messages", "status=delivered", 200, api.MessagePage{Messages: []api.Message{
		sampleMessage("M1", "C1", "delivered", api.DestinationStatus{Name: "lis", Status: "delivered"}),
		sampleMessage("M2", "C2", "delivered"),
	}, NextCursor: "CUR2"})
	code, out, errb := run(t, "", f.args("messages", "find", "--status", "delivered", "--all", "--json")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	rows := jsonLinesOf(t, out)
	if len(rows) != 3 {
		t.Fatalf("%d lines, want 3: %s", len(rows), out)
	}
	for i, id := range []string{"M1", "M2", "M3"} {
		r := rows[i]
		for _, k := range []string{"message_id", "control_id", "interface", "type", "received_at", "status", "destinations"} {
			if _, ok := r[k]; !ok {
				t.Errorf("line %d has no %s: %v", i, k, r)
			}
		}
		if r["message_id"] != id {
			t.Errorf("line %d message_id %v, want %s", i, r["message_id"], id)
		}
		if _, ok := r["destinations"].([]any); !ok {
			t.Errorf("line %d destinations %v is not a list", i, r["destinations"])
		}
	}
	d := rows[0]["destinations"].([]any)[0].(map[string]any)
	if d["name"] != "lis" || d["status"] != "delivered" {
		t.Errorf("destination %v", d)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (two pages)", n)
	}
}

func TestMessagesFindUsage(t *testing.T) {
	tests := [][]string{
		{"messages", "find", "extra"},
		{"messages", "find", "--patient-authority", "MRN"},
		{"messages", "find", "--no-such-flag"},
		{"messages", "nope"},
		{"messages"},
		{"messages", "show"},
	}
	for _, args := range tests {
		if code, _, _ := run(t, "", args...); code != ExitUsage {
			t.Errorf("%v: code %d, want %d", args, code, ExitUsage)
		}
	}
}

func TestMessagesShow(t *testing.T) {
	f := newFakeAPI(t)
	detail := api.MessageDetail{
		Message: sampleMessage("M1", "C1", "partially_delivered", api.DestinationStatus{Name: "lis", Status: "delivered", Attempts: 1, LastOutcome: "AA", UpdatedAt: received}),
		Records: []api.Record{{Kind: "raw", Topic: "raw", Partition: 2, Offset: 41, At: received, Content: map[string]any{"payload": "MSH|^~\\&|..."}},
			{Kind: "parsed", Topic: "parsed", Partition: 2, Offset: 40, At: received, ContentError: "deleted by retention"}},
		Decisions: []api.Decision{{Stage: "route", DecidedAt: received, Outcome: "routed",
			Routes: []api.RouteDecision{{Route: "adt-to-lis", Matched: true, Destinations: []string{"lis"}}, {Route: "orders", Reason: "type"}}}},
		Deliveries:  []api.Delivery{{Destination: "lis", Attempt: 1, Outcome: "delivered", AckCode: "AA", LatencyMS: 12.5, At: received}},
		DeadLetters: []api.DeadLetter{{ID: "egress:0:7", MessageID: "M1", ControlID: "C1", Stage: "egress", Destination: "ris", Reason: "AR: unknown patient class", FailedAt: received}},
	}
	f.on("GET", "/messages/M1", 200, detail)
	code, out, errb := run(t, "", f.args("messages", "show", "M1", "--content")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	r := f.last()
	if r.Path != "/messages/M1" || r.Query.Get("content") != "true" {
		t.Errorf("%s?%s", r.Path, r.Query.Encode())
	}
	for _, want := range []string{
		"message_id:        M1\n", "status:            partially_delivered\n",
		"lis   delivered  1         AA",
		"raw     raw     2          41",
		"route adt-to-lis matched -> lis; route orders no match (type)",
		"lis          1        delivered  AA        12.5",
		"egress:0:7  M1          C1          egress  ris          2026-03-01T09:30:00Z  AR: unknown patient class",
		"content of raw raw[2]@41:\n{\n  \"payload\": \"MSH|^~\\\\&|...\"\n}",
		"content of parsed parsed[2]@40:\n  (not readable: deleted by retention)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("out lacks %q:\n%s", want, out)
		}
	}

	// Without --content no content is asked for; --json is one object.
	code, out, errb = run(t, "", f.args("messages", "show", "--json", "M1")...)
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	if q := f.last().Query; q.Has("content") {
		t.Errorf("query %v asks for content", q)
	}
	rows := jsonLinesOf(t, out)
	if len(rows) != 1 || rows[0]["message_id"] != "M1" || len(rows[0]["records"].([]any)) != 2 {
		t.Errorf("json %s", out)
	}
}

func TestMessagesShowEscapesPath(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/messages/a%2Fb", 200, api.MessageDetail{Message: sampleMessage("a/b", "C", "received")})
	if code, _, errb := run(t, "", f.args("messages", "show", "a/b")...); code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
}
