package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// planIndex answers Select with its entries (by message ID, or all for
// a filter), oldest first as given.
type planIndex struct {
	Index
	entries     []IndexEntry
	deadLetters map[string]*api.DeadLetter
	// newer maps patient key + "/" + destination to a newer message.
	newer map[string]string
	// extra entries Select returns beyond entries (to exceed a limit).
	selectErr error
	limits    []int
}

func (f *planIndex) Select(_ context.Context, s api.ReplaySelector, limit int) ([]IndexEntry, error) {
	f.limits = append(f.limits, limit)
	if f.selectErr != nil {
		return nil, f.selectErr
	}
	var out []IndexEntry
	for _, e := range f.entries {
		switch {
		case len(s.MessageIDs) > 0:
			if slices.Contains(s.MessageIDs, e.MessageID) {
				out = append(out, e)
			}
		case len(s.DeadLetters) > 0:
			for _, id := range s.DeadLetters {
				if dl := f.deadLetters[id]; dl != nil && dl.MessageID == e.MessageID {
					out = append(out, e)
					break
				}
			}
		default:
			out = append(out, e)
		}
		if len(out) > limit {
			break
		}
	}
	return out, nil
}

func (f *planIndex) DeadLetter(_ context.Context, id string) (*api.DeadLetter, error) {
	if dl := f.deadLetters[id]; dl != nil {
		return dl, nil
	}
	return nil, ErrNotFound
}

func (f *planIndex) NewerDelivered(_ context.Context, key, dest string, _ time.Time, _ string) (string, error) {
	return f.newer[key+"/"+dest], nil
}

// replayAudit records the events.
type replayAudit struct {
	mu     sync.Mutex
	events []canonical.AuditEvent
	err    error
}

func (a *replayAudit) Audit(_ context.Context, e canonical.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return a.err
	}
	a.events = append(a.events, e)
	return nil
}

func (a *replayAudit) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Action)
	}
	return out
}

type noRecords struct{}

func (noRecords) Read(context.Context, string, int32, int64) (*kgo.Record, error) {
	return nil, ErrRecordGone
}

var kc = kafka.Config{Brokers: []string{"127.0.0.1:1"}}.WithDefaults()

// rec is a record of the entry on topic at offset off (partition 0).
func rec(topic string, off int64) api.Record {
	return api.Record{Topic: kc.Topic(topic), Offset: off}
}

func dest(name, status string) api.DestinationStatus {
	return api.DestinationStatus{Name: name, Status: status}
}

func entry(id string, dests []api.DestinationStatus, recs ...api.Record) IndexEntry {
	return IndexEntry{Message: api.Message{MessageID: id, ControlID: "C" + short(id), Type: "ADT^A08", Destinations: dests,
		ReceivedAt: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)}, PatientKey: "pk-" + short(id), Records: recs}
}

// idPrefix pads the tests' short names (M1) to message IDs.
const idPrefix = "01HV0000000000000000000000"

// mid is the message ID the tests call s: a ULID-shaped ID ending in s.
func mid(s string) string { return idPrefix[:len(idPrefix)-len(s)] + s }

// short undoes mid.
func short(id string) string {
	if len(id) == len(idPrefix) && strings.HasPrefix(id, idPrefix[:4]) {
		return strings.TrimLeft(id[4:], "0")
	}
	return id
}

// the index every plan test uses.
func testIndex() *planIndex {
	all := []api.Record{rec("raw", 1), rec("parsed", 2), rec("transformed", 3), {Topic: kc.OutTopic("lis"), Offset: 4}}
	return &planIndex{
		entries: []IndexEntry{
			// M1: lis delivered, ehr failed.
			entry(mid("M1"), []api.DestinationStatus{dest("lis", "delivered"), dest("ehr", "dead_lettered")}, all...),
			// M2: delivered everywhere.
			func() IndexEntry {
				e := entry(mid("M2"), []api.DestinationStatus{dest("lis", "delivered")}, all...)
				e.Status = "delivered"
				return e
			}(),
			// M3: nothing delivered yet.
			entry(mid("M3"), []api.DestinationStatus{dest("lis", "ack_error"), dest("ehr", "routed")}, all...),
			// M4: no out.lis record indexed, but an egress dead letter.
			func() IndexEntry {
				e := entry(mid("M4"), []api.DestinationStatus{dest("lis", "rejected")}, rec("transformed", 9))
				e.DeadLetters = []api.DeadLetter{{ID: "egress:1:70", Stage: "egress", Destination: "lis", FailedAt: time.Unix(1, 0)},
					{ID: "egress:1:80", Stage: "egress", Destination: "lis", FailedAt: time.Unix(2, 0)},
					{ID: "egress:1:90", Stage: "egress", Destination: "ehr", FailedAt: time.Unix(3, 0)}}
				return e
			}(),
			// M5: never routed, no records but raw.
			entry(mid("M5"), nil, rec("raw", 11)),
		},
		deadLetters: map[string]*api.DeadLetter{
			"egress:2:15": {ID: "egress:2:15", MessageID: mid("M1"), ControlID: "CM1", Stage: "egress", Destination: "ehr"},
			"egress:2:16": {ID: "egress:2:16", MessageID: mid("M1"), ControlID: "CM1", Stage: "egress", Destination: "lis"},
			"parse:0:7":   {ID: "parse:0:7", MessageID: mid("M2"), ControlID: "CM2", Stage: "parse"},
			"route:1:3":   {ID: "route:1:3", MessageID: mid("M3"), ControlID: "CM3", Stage: "route", Destination: "lis"},
		},
		newer: map[string]string{"pk-M3/ehr": mid("M9")},
	}
}

func newTestReplay(t *testing.T, ix Index, audit *replayAudit, limits ReplayConfig) *Replay {
	t.Helper()
	var a Auditor
	if audit != nil {
		a = audit
	}
	r, err := NewReplayer(ReplayerConfig{Kafka: kc, Serde: canonical.NewSerde(nil), Index: ix, Records: noRecords{}, Audit: a,
		Limits: limits, Destinations: []string{"lis", "ehr"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// spell writes a plan's items as message>topic[dest|only]@source.
func spell(p *plan) string {
	var b []string
	for _, it := range p.items {
		s := short(it.MessageID) + ">" + strings.TrimPrefix(it.TargetTopic, kc.TopicPrefix)
		if it.Destination != "" {
			s += "[" + it.Destination + "]"
		}
		if it.Only != nil {
			s += "{" + strings.Join(it.Only, ",") + "}"
		}
		if it.Reopens != nil {
			s += "~" + strings.Join(it.Reopens, ",")
		}
		s += fmt.Sprintf("@%s/%d/%d", strings.TrimPrefix(it.Source.Topic, kc.TopicPrefix), it.Source.Partition, it.Source.Offset)
		if it.DeadLetterID != "" {
			s += "!" + it.DeadLetterID
		}
		b = append(b, s)
	}
	return strings.Join(b, " ")
}

func spellWarnings(p *plan) string {
	var b []string
	for _, w := range p.warnings {
		b = append(b, short(w.MessageID)+"/"+w.Destination+"<"+short(w.NewerMessageID))
	}
	return strings.Join(b, " ")
}

func spellProblems(p *plan) string {
	var b []string
	for _, x := range p.problems {
		b = append(b, short(x.MessageID)+"/"+x.Destination+": "+x.Reason)
	}
	return strings.Join(b, "; ")
}

var since = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

func TestPlan(t *testing.T) {
	tests := []struct {
		name     string
		req      api.ReplayRequest
		target   string
		items    string
		skipped  int64
		warnings string
		problems string
	}{
		{name: "route skips the delivered destinations through the header",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1"), mid("M2"), mid("M3")}}},
			target: "route",
			// M1: lis delivered, only ehr; M2: skipped whole; M3: no
			// header, route decides afresh. Each reopens the
			// destinations it goes to again.
			items: "M1>transformed{ehr}~ehr@transformed/0/3 M3>transformed~lis,ehr@transformed/0/3", skipped: 2,
			warnings: "M3/ehr<M9"},
		{name: "route with resend sends everything, no header",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1"), mid("M2")}}, Target: "route", Resend: true},
			target: "route", items: "M1>transformed~lis,ehr@transformed/0/3 M2>transformed~lis@transformed/0/3"},
		{name: "a destination: delivered skipped, the out record or the latest egress dead letter, problems named",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Target: "destination:lis"},
			target: "destination:lis",
			items:  "M3>out.lis[lis]@out.lis/0/4 M4>out.lis[lis]@dlq.egress/1/80!egress:1:80", skipped: 2,
			problems: "M5/lis: never routed to lis"},
		{name: "a destination from the selector, with resend",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M2"), mid("M3")}, Destination: "ehr"}, Resend: true},
			target: "destination:ehr",
			// M3 has no out.ehr record and no egress dead letter for ehr.
			problems: "M2/ehr: never routed to ehr; M3/ehr: no record of hl7bus.out.ehr in the index"},
		{name: "parse: skipped only when every destination has it, then to all of them",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Target: "parse"},
			target: "parse",
			items:  "M1>raw~lis,ehr@raw/0/1 M3>raw~lis,ehr@raw/0/1 M5>raw@raw/0/11", skipped: 1, warnings: "M3/ehr<M9",
			problems: "M4/: no record of hl7bus.raw in the index"},
		{name: "transform",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M3"), mid("M5")}}, Target: "transform"},
			target: "transform", items: "M3>parsed~lis,ehr@parsed/0/2", warnings: "M3/ehr<M9",
			problems: "M5/: no record of hl7bus.parsed in the index"},
		{name: "message IDs the index does not know",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M3"), mid("M7")}}},
			target: "route", items: "M3>transformed~lis,ehr@transformed/0/3", warnings: "M3/ehr<M9", problems: "M7/: not in the index"},
		{name: "dead letters go back where they came from, once per message and destination",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"egress:2:15", "route:1:3", "egress:2:15"}}},
			target: "",
			items:  "M1>out.ehr[ehr]@dlq.egress/2/15!egress:2:15 M3>transformed[lis]{lis}@dlq.route/1/3!route:1:3"},
		// M1 reached lis since its dead letter for lis; M2 was delivered
		// overall since its parse dead letter.
		{name: "dead letters of pairs the index shows delivered are skipped",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7", "egress:2:16", "egress:2:15"}}},
			target: "", skipped: 2,
			items: "M1>out.ehr[ehr]@dlq.egress/2/15!egress:2:15"},
		{name: "dead letters of delivered pairs with resend",
			req:    api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7", "egress:2:16", "egress:2:15"}}, Resend: true},
			target: "",
			items:  "M2>raw@dlq.parse/0/7!parse:0:7 M1>out.lis[lis]@dlq.egress/2/16!egress:2:16 M1>out.ehr[ehr]@dlq.egress/2/15!egress:2:15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := testIndex()
			r := newTestReplay(t, ix, &replayAudit{}, ReplayConfig{})
			p, err := r.plan(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if p.target != tt.target || p.rate != DefaultRate {
				t.Errorf("target %q rate %g, want %q %d", p.target, p.rate, tt.target, DefaultRate)
			}
			if g := spell(p); g != tt.items {
				t.Errorf("items\n got %s\nwant %s", g, tt.items)
			}
			if p.skipped != tt.skipped {
				t.Errorf("skipped %d, want %d", p.skipped, tt.skipped)
			}
			if g := spellWarnings(p); g != tt.warnings {
				t.Errorf("warnings %q, want %q", g, tt.warnings)
			}
			if g := spellProblems(p); g != tt.problems {
				t.Errorf("problems %q, want %q", g, tt.problems)
			}
			if p.notReplayable != int64(len(p.problems)) {
				t.Errorf("not replayable %d, problems %d", p.notReplayable, len(p.problems))
			}
			if !slices.Equal(ix.limits, []int{DefaultMaxMessages}) {
				t.Errorf("Select limits %v", ix.limits)
			}
		})
	}
}

func TestPlanAnswerSample(t *testing.T) {
	ix := &planIndex{}
	for i := range 25 {
		ix.entries = append(ix.entries, entry(mid(fmt.Sprintf("M%02d", i)), []api.DestinationStatus{dest("lis", "delivered"), dest("ehr", "routed")},
			rec("transformed", int64(i))))
	}
	r := newTestReplay(t, ix, &replayAudit{}, ReplayConfig{})
	p, err := r.plan(context.Background(), api.ReplayRequest{Selector: api.ReplaySelector{Since: since}})
	if err != nil {
		t.Fatal(err)
	}
	a := p.answer()
	if a.Count != 25 || a.Skipped != 25 || len(a.Sample) != sampleSize {
		t.Fatalf("count %d skipped %d sample %d", a.Count, a.Skipped, len(a.Sample))
	}
	if s := a.Sample[0]; s != (api.ReplayItem{MessageID: mid("M00"), ControlID: "CM00", Type: "ADT^A08", Destination: "ehr", TargetTopic: "hl7bus.transformed"}) {
		t.Errorf("sample[0] %+v", s)
	}
	if a.Sample[9].MessageID != mid("M09") {
		t.Errorf("sample is not the first items: %+v", a.Sample[9])
	}
}

func TestPlanRefuses(t *testing.T) {
	tests := []struct {
		name   string
		req    api.ReplayRequest
		limits ReplayConfig
		param  string
		msg    string
	}{
		{name: "no selector", param: "selector", msg: "give message_ids"},
		{name: "two selectors", req: api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1")}, Since: since}}, param: "selector", msg: "only one"},
		{name: "ids and dead letters", req: api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1")}, DeadLetters: []string{"parse:0:7"}}}, param: "selector", msg: "only one"},
		{name: "a filter without since", req: api.ReplayRequest{Selector: api.ReplaySelector{Interface: "lab"}}, param: "selector.since", msg: "needs since"},
		{name: "until before since", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since, Until: since.Add(-time.Hour)}}, param: "selector.until", msg: "before since"},
		{name: "an empty message ID", req: api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1"), " "}}}, param: "selector.message_ids[1]", msg: "empty"},
		// An MRN typed where a message ID belongs: refused, not quoted.
		{name: "a patient ID as a message ID", req: api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M1"), "MRNX1001"}}},
			param: "selector.message_ids[1]", msg: "not an hl7bus message ID"},
		{name: "a malformed dead letter ID", req: api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7", "parse:x:1"}}}, param: "selector.dead_letters[1]", msg: "not a dead letter ID"},
		{name: "an unknown dead letter", req: api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7", "parse:0:8"}}}, param: "selector.dead_letters[1]", msg: "no dead letter parse:0:8"},
		{name: "dead letters with a target", req: api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7"}}, Target: "route"}, param: "target", msg: "leave target empty"},
		{name: "dead letters with a destination", req: api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"parse:0:7"}, Destination: "lis"}}, param: "selector.destination", msg: "leave destination empty"},
		{name: "an unknown target", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Target: "egress"}, param: "target", msg: "parse, transform, route or destination:<name>"},
		{name: "an unknown destination target", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Target: "destination:pharmacy"}, param: "target", msg: "no destination pharmacy"},
		{name: "an unknown selector destination", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since, Destination: "pharmacy"}}, param: "selector.destination", msg: "no destination pharmacy"},
		{name: "a negative rate", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Rate: -1}, param: "rate", msg: "positive"},
		{name: "above max_rate", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since}, Rate: 11}, limits: ReplayConfig{MaxRate: 10}, param: "rate", msg: "above max_rate 10"},
		{name: "more matches than max_messages", req: api.ReplayRequest{Selector: api.ReplaySelector{Since: since}}, limits: ReplayConfig{MaxMessages: 4},
			param: "selector", msg: "matches more than 4 messages; narrow it"},
		{name: "more message IDs than max_messages", req: api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{"a", "b", "c"}}}, limits: ReplayConfig{MaxMessages: 2},
			param: "selector", msg: "matches more than 2 messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audit := &replayAudit{}
			r := newTestReplay(t, testIndex(), audit, tt.limits)
			_, err := r.Plan(context.Background(), Principal{Actor: "ann", Role: RoleOperator}, tt.req)
			fe, ok := errors.AsType[*FieldError](err)
			if !ok {
				t.Fatalf("error %v, want a FieldError", err)
			}
			if fe.Param != tt.param || !strings.Contains(fe.Msg, tt.msg) {
				t.Errorf("%s: %s, want %s: ...%s...", fe.Param, fe.Msg, tt.param, tt.msg)
			}
			if strings.Contains(fe.Error(), "MRNX1001") {
				t.Errorf("the error quotes the value: %s", fe.Error())
			}
			if len(audit.actions()) != 0 {
				t.Errorf("a refused plan was audited: %v", audit.actions())
			}
		})
	}
}

func TestPlanMaxMessagesIsSelectsLimit(t *testing.T) {
	// Exactly max matches is fine; Select was asked for max (it returns
	// up to max+1).
	ix := testIndex()
	r := newTestReplay(t, ix, &replayAudit{}, ReplayConfig{MaxMessages: 5})
	if _, err := r.plan(context.Background(), api.ReplayRequest{Selector: api.ReplaySelector{Since: since}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ix.limits, []int{5}) {
		t.Errorf("Select limits %v", ix.limits)
	}
}

func TestPlanAuditsAndFailsWithoutAudit(t *testing.T) {
	audit := &replayAudit{}
	r := newTestReplay(t, testIndex(), audit, ReplayConfig{})
	p := Principal{Actor: "ann", Role: RoleOperator, Auth: "token"}
	plan, err := r.Plan(context.Background(), p, api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M3")}}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Count != 1 || len(plan.Warnings) != 1 {
		t.Errorf("plan %+v", plan)
	}
	if len(audit.events) != 1 {
		t.Fatalf("events %v", audit.events)
	}
	e := audit.events[0]
	if e.Action != "replay.plan" || e.Actor != "ann" || e.Role != "operator" || e.Auth != "token" || e.Service != "admin" || e.Count != 1 ||
		e.Selector != `{"message_ids":["`+mid("M3")+`"]}` || e.Outcome != canonical.AuditOK || e.EventID == "" {
		t.Errorf("audit event %+v", e)
	}
	// Without an Auditor (behind the Server, which audits) it plans all
	// the same.
	if _, err := newTestReplay(t, testIndex(), nil, ReplayConfig{}).Plan(context.Background(), p,
		api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M3")}}}); err != nil {
		t.Errorf("without an auditor: %v", err)
	}
	audit.err = errors.New("audit topic down")
	if _, err := r.Plan(context.Background(), p, api.ReplayRequest{Selector: api.ReplaySelector{MessageIDs: []string{mid("M3")}}}); err == nil {
		t.Error("a plan that could not be audited was answered")
	}
}

func TestDiscardRefuses(t *testing.T) {
	tests := []struct {
		name   string
		ids    []string
		reason string
		param  string
	}{
		{"no reason", []string{"parse:0:7"}, " ", "reason"},
		{"no ids", nil, "fixed", "ids"},
		{"an unknown id", []string{"parse:0:7", "parse:0:99"}, "fixed", "ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audit := &replayAudit{}
			r := newTestReplay(t, testIndex(), audit, ReplayConfig{})
			_, err := r.Discard(context.Background(), Principal{Actor: "ann"}, tt.ids, tt.reason)
			if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Param != tt.param {
				t.Errorf("error %v, want a FieldError on %s", err, tt.param)
			}
			if len(audit.actions()) != 0 {
				t.Errorf("audited %v", audit.actions())
			}
		})
	}
}

func TestIsMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"01M8VSMQ5SQN7NKEWD0WSQPD42":      true,
		"01M8VSMQ5SQN7NKEWD0WSQPD42-2":    true,
		"01M8VSMQ5SQN7NKEWD0WSQPD42-2-13": true,
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ":      true,
		"":                                false,
		"01M":                             false,
		"MRNX1001":                        false,
		"8ZZZZZZZZZZZZZZZZZZZZZZZZZ":      false, // past the 128 bits
		"01m8vsmq5sqn7nkewd0wsqpd42":      false, // ingress writes upper case
		"01M8VSMQ5SQN7NKEWD0WSQPDI2":      false, // I is not in the alphabet
		"01M8VSMQ5SQN7NKEWD0WSQPD42-":     false,
		"01M8VSMQ5SQN7NKEWD0WSQPD42-x":    false,
		"01M8VSMQ5SQN7NKEWD0WSQPD42 DOE":  false,
		"01M8VSMQ5SQN7NKEWD0WSQPD42X":     false,
		"01M8VSMQ5SQN7NKEWD0WSQPD42-2--3": false,
		"01M8VSMQ5SQN7NKEWD0WSQPD4":       false,
		"01M8VSMQ5SQN7NKEWD0WSQPD42" + strings.Repeat("-1", 30): false,
	} {
		if got := isMessageID(id); got != want {
			t.Errorf("isMessageID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestDeadLetterID(t *testing.T) {
	tests := []struct {
		id     string
		stage  string
		p      int32
		off    int64
		wantOK bool
	}{
		{"egress:2:15", "egress", 2, 15, true},
		{"parse:0:0", "parse", 0, 0, true},
		{"egress:2", "", 0, 0, false},
		{":2:15", "", 0, 0, false},
		{"egress:-1:15", "", 0, 0, false},
		{"egress:1:x", "", 0, 0, false},
		{"egress:99999999999:1", "", 0, 0, false},
	}
	for _, tt := range tests {
		s, p, o, ok := parseDeadLetterID(tt.id)
		if ok != tt.wantOK || s != tt.stage || p != tt.p || o != tt.off {
			t.Errorf("%s: %q %d %d %v", tt.id, s, p, o, ok)
		}
	}
}
