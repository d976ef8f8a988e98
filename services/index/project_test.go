package index

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

var (
	t0     = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	secret = []byte("test-index-secret")
	hdr    = canonical.Header{SendingFacility: "LABFAC", MessageCode: "ORU", TriggerEvent: "R01", ControlID: "CTRL1"}
)

func src(topic string, off int64) Source {
	return Source{Topic: topic, Partition: 2, Offset: off, TraceID: "trace1"}
}

func ptr(kind, topic string, off int64) *Pointer {
	return &Pointer{Kind: kind, Topic: topic, Partition: 2, Offset: off}
}

func TestProject(t *testing.T) {
	p := Projector{Secret: secret}
	fields := MessageFields{ControlID: "CTRL1", SendingFacility: "LABFAC", MessageType: "ORU^R01", Interface: "lab", ReceivedAt: t0, TraceID: "trace1"}
	with := func(f func(*MessageFields)) *MessageFields {
		c := fields
		f(&c)
		return &c
	}
	tests := []struct {
		name string
		got  []Update
		want []Update
	}{
		{"raw", p.Raw(src("raw", 1), &canonical.Raw{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr}),
			[]Update{{MessageID: "m1", At: t0, Message: &fields, Status: StatusReceived, Pointer: ptr(KindRaw, "raw", 1)}}},
		{"raw rejected at ingress", p.Raw(src("raw", 1), &canonical.Raw{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr,
			Rejected: &canonical.Rejection{Code: canonical.RejectTooLarge}}),
			[]Update{{MessageID: "m1", At: t0, Message: &fields, Status: StatusRejected, Pointer: ptr(KindRaw, "raw", 1)}}},
		{"raw without ID", p.Raw(src("raw", 1), &canonical.Raw{}), nil},
		{"parsed", p.Parsed(src("parsed", 3), &canonical.Parsed{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr}),
			[]Update{{MessageID: "m1", At: t0, Message: &fields, Status: StatusParsed, Pointer: ptr(KindParsed, "parsed", 3)}}},
		{"parsed child of a batch marks the batch parsed",
			p.Parsed(src("parsed", 3), &canonical.Parsed{MessageID: "m1.2", ParentMessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr}),
			[]Update{
				{MessageID: "m1.2", At: t0, Message: with(func(f *MessageFields) { f.ParentMessageID = "m1" }), Status: StatusParsed, Pointer: ptr(KindParsed, "parsed", 3)},
				{MessageID: "m1", At: t0, Status: StatusParsed},
			}},
		{"transformed keys every identifier twice",
			p.Transformed(src("transformed", 4), &canonical.Transformed{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr, ConfigVersion: "cv1",
				Patient: &canonical.Patient{FamilyName: "DOE", Identifiers: []canonical.Identifier{{Value: "MRN1", Authority: "HOSP"}, {Value: "N9", Authority: "NAT"}}}}),
			[]Update{{MessageID: "m1", At: t0, Message: with(func(f *MessageFields) {
				f.ConfigVersion = "cv1"
				f.PatientKey = PatientKey(secret, "HOSP", "MRN1")
			}), PatientKeys: []string{PatientKey(secret, "HOSP", "MRN1"), PatientKey(secret, "", "MRN1"), PatientKey(secret, "NAT", "N9"), PatientKey(secret, "", "N9")},
				Pointer: ptr(KindTransformed, "transformed", 4)}}},
		{"decision routed with a filtered destination",
			p.Decision(src("decisions", 5), &canonical.Decision{MessageID: "m1", Interface: "lab", ControlID: "CTRL1", MessageType: "ORU^R01",
				Stage: canonical.StageRoute, DecidedAt: t0, ConfigVersion: "cv2", Outcome: canonical.OutcomeRouted,
				Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}, {Destination: "ehr", Outcome: canonical.OutcomeFiltered, Rule: "r1"}}}),
			[]Update{
				{MessageID: "m1", At: t0, Message: &MessageFields{ControlID: "CTRL1", Interface: "lab", MessageType: "ORU^R01", ConfigVersion: "cv2", TraceID: "trace1"},
					Status: StatusRouted, Pointer: ptr(KindDecision, "decisions", 5)},
				{MessageID: "m1", At: t0, Destination: &DestinationUpdate{Destination: "lis", Status: StatusRouted, LastOutcome: "routed"}},
				{MessageID: "m1", At: t0, Destination: &DestinationUpdate{Destination: "ehr", Status: StatusFiltered, LastOutcome: "filtered"}},
			}},
		{"decision filtered by transform",
			p.Decision(src("decisions", 6), &canonical.Decision{MessageID: "m1", Stage: canonical.StageTransform, DecidedAt: t0, Outcome: canonical.OutcomeFiltered}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"}, Status: StatusFiltered, Pointer: ptr(KindDecision, "decisions", 6)}}},
		{"delivery delivered",
			p.Delivery(src("delivery", 7), &canonical.Delivery{MessageID: "m1", ControlID: "CTRL1", Destination: "lis", Attempt: 1, Outcome: canonical.OutcomeDelivered, AckCode: "AA", At: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{ControlID: "CTRL1", TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusDelivered, Attempt: 1, LastOutcome: "delivered AA"}, Pointer: ptr(KindDelivery, "delivery", 7)}}},
		{"delivery retry is ack_error",
			p.Delivery(src("delivery", 8), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 2, Outcome: canonical.OutcomeRetry, AckCode: "AE", Error: "PATIENT DOE UNKNOWN", At: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusAckError, Attempt: 2, LastOutcome: "retry AE"}, Pointer: ptr(KindDelivery, "delivery", 8)}}},
		{"delivery dead-lettered by AR is rejected",
			p.Delivery(src("delivery", 9), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 1, Outcome: canonical.OutcomeDeadLettered, AckCode: "AR", At: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusRejected, Attempt: 1, LastOutcome: "dead_lettered AR"}, Pointer: ptr(KindDelivery, "delivery", 9)}}},
		{"delivery dead-lettered without an ACK",
			p.Delivery(src("delivery", 9), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 5, Outcome: canonical.OutcomeDeadLettered, At: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusDeadLettered, Attempt: 5, LastOutcome: "dead_lettered"}, Pointer: ptr(KindDelivery, "delivery", 9)}}},
		{"delivery without destination keeps only the pointer",
			p.Delivery(src("delivery", 9), &canonical.Delivery{MessageID: "m1", Outcome: canonical.OutcomeDelivered, At: t0}),
			[]Update{{MessageID: "m1", At: t0, Pointer: ptr(KindDelivery, "delivery", 9)}}},
		{"dead letter of one destination",
			p.DeadLetter(src("dlq.egress", 10), &canonical.DeadLetter{MessageID: "m1", ControlID: "CTRL1", Stage: "egress", ErrorClass: canonical.ErrorPermanent,
				Reason: "AR from lis", Destination: "lis", Attempts: 1, FirstFailedAt: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{ControlID: "CTRL1", TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusDeadLettered, Attempt: 1, LastOutcome: "dead_lettered permanent"},
				Pointer:     ptr(KindDeadLetter, "dlq.egress", 10),
				DeadLetter: &DeadLetter{ID: "egress:2:10", MessageID: "m1", ControlID: "CTRL1", Stage: "egress", Destination: "lis",
					ErrorClass: canonical.ErrorPermanent, Reason: "AR from lis", FailedAt: t0}}}},
		{"dead letter rejected at ingress",
			p.DeadLetter(src("dlq.parse", 11), &canonical.DeadLetter{MessageID: "m1", Stage: "parse", ErrorClass: canonical.ErrorRejectedAtIngress, LastFailedAt: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"}, Status: StatusRejected, Pointer: ptr(KindDeadLetter, "dlq.parse", 11),
				DeadLetter: &DeadLetter{ID: "parse:2:11", MessageID: "m1", Stage: "parse", ErrorClass: canonical.ErrorRejectedAtIngress, FailedAt: t0}}}},
		{"dead letter of the whole message",
			p.DeadLetter(src("dlq.route", 12), &canonical.DeadLetter{MessageID: "m1", Stage: "route", ErrorClass: canonical.ErrorPermanent, LastFailedAt: t0}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"}, Status: StatusDeadLettered, Pointer: ptr(KindDeadLetter, "dlq.route", 12),
				DeadLetter: &DeadLetter{ID: "route:2:12", MessageID: "m1", Stage: "route", ErrorClass: canonical.ErrorPermanent, FailedAt: t0}}}},
		{"dead letter without a message ID is only listed",
			p.DeadLetter(src("dlq.parse", 13), &canonical.DeadLetter{Stage: "parse", ErrorClass: canonical.ErrorPermanent, LastFailedAt: t0}),
			[]Update{{At: t0, DeadLetter: &DeadLetter{ID: "parse:2:13", Stage: "parse", ErrorClass: canonical.ErrorPermanent, FailedAt: t0}}}},
		{"delivery points at the out record it sent",
			p.Delivery(src("delivery", 14), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 1, Outcome: canonical.OutcomeDelivered, At: t0,
				Source: &canonical.RecordRef{Topic: "out.lis", Partition: 1, Offset: 40}}),
			[]Update{{MessageID: "m1", At: t0, Message: &MessageFields{TraceID: "trace1"},
				Destination: &DestinationUpdate{Destination: "lis", Status: StatusDelivered, Attempt: 1, LastOutcome: "delivered"}, Pointer: ptr(KindDelivery, "delivery", 14)},
				{MessageID: "m1", At: t0, Pointer: &Pointer{Kind: KindOut, Topic: "out.lis", Partition: 1, Offset: 40}}}},
		{"audit event",
			p.Audit(src("audit", 15), &canonical.AuditEvent{EventID: "e1", At: t0, Service: "admin", Actor: "ana", Role: "analyst", Auth: "token",
				Action: "message.content", Resource: "m1", Count: 1, Outcome: canonical.AuditOK, Remote: "127.0.0.1"}),
			[]Update{{At: t0, Audit: &AuditRow{EventID: "e1", At: t0, Service: "admin", Actor: "ana", Role: "analyst", Auth: "token",
				Action: "message.content", Resource: "m1", Count: 1, Outcome: canonical.AuditOK, Remote: "127.0.0.1"}}}},
		{"audit event without an ID is keyed by its place",
			p.Audit(src("audit", 16), &canonical.AuditEvent{At: t0, Action: "token.use"}),
			[]Update{{At: t0, Audit: &AuditRow{EventID: "audit:2:16", At: t0, Action: "token.use"}}}},
		{"replay item of one destination",
			p.Replay(src("replay", 17), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: t0,
				Item: &canonical.ReplayItem{MessageID: "m1", Destination: "lis", TargetTopic: "out.lis", DeadLetterID: "egress:0:7"}}),
			[]Update{{MessageID: "m1", At: t0, Destination: &DestinationUpdate{Destination: "lis", Status: StatusReplayed, LastOutcome: "replayed"},
				Pointer: ptr(KindReplay, "replay", 17), Replay: &DeadLetterReplay{DeadLetterID: "egress:0:7", JobID: "j1", At: t0}}}},
		{"replay item of a record the job could not read back (no target topic): nothing",
			p.Replay(src("replay", 23), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: t0,
				Item: &canonical.ReplayItem{MessageID: "m1", Destination: "lis", DeadLetterID: "egress:0:7"}}), nil},
		{"replay item of the whole message",
			p.Replay(src("replay", 18), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: t0,
				Item: &canonical.ReplayItem{MessageID: "m1", TargetTopic: "raw"}}),
			[]Update{{MessageID: "m1", At: t0, Status: StatusReplayed, Pointer: ptr(KindReplay, "replay", 18)}}},
		{"discard",
			p.Replay(src("replay", 19), &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: t0,
				Discard: &canonical.Discard{DeadLetterID: "egress:0:7", MessageID: "m1", Reason: "duplicate", Actor: "op"}}),
			[]Update{{At: t0, Discard: &Discard{DeadLetterID: "egress:0:7", MessageID: "m1", Actor: "op", Reason: "duplicate", At: t0}}}},
		{"discard of a malformed ID projects nothing",
			p.Replay(src("replay", 20), &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: t0, Discard: &canonical.Discard{DeadLetterID: "egress"}}), nil},
		{"job state projects nothing",
			p.Replay(src("replay", 21), &canonical.ReplayRecord{Kind: canonical.ReplayKindJob, JobID: "j1", At: t0, Job: &canonical.ReplayJob{State: canonical.ReplayJobRunning}}), nil},
		{"item without message ID projects nothing",
			p.Replay(src("replay", 22), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, At: t0, Item: &canonical.ReplayItem{}}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", dump(tt.got), dump(tt.want))
			}
			for i, u := range tt.got {
				if err := u.validate(i); err != nil {
					t.Errorf("a projection made an update Apply refuses: %v", err)
				}
			}
		})
	}
}

// dump spells out the pointers of updates for a readable failure.
func dump(us []Update) []string {
	var out []string
	for _, u := range us {
		s := u.MessageID + " " + u.At.String() + " " + u.Status
		if u.Message != nil {
			s += " msg=" + toString(*u.Message)
		}
		if u.Destination != nil {
			s += " dest=" + toString(*u.Destination)
		}
		if u.Pointer != nil {
			s += " ptr=" + toString(*u.Pointer)
		}
		if u.DeadLetter != nil {
			s += " dl=" + toString(*u.DeadLetter)
		}
		for _, v := range []any{u.Discard, u.Replay, u.Audit} {
			if !reflect.ValueOf(v).IsNil() {
				s += " " + toString(v)
			}
		}
		s += " keys=" + toString(u.PatientKeys)
		out = append(out, s)
	}
	return out
}

func toString(v any) string { return fmt.Sprintf("%+v", v) }

func TestParseDeadLetterID(t *testing.T) {
	tests := []struct {
		id    string
		stage string
		part  int32
		off   int64
		ok    bool
	}{
		{"egress:0:7", "egress", 0, 7, true},
		{DeadLetterID("parse", 12, 1<<40), "parse", 12, 1 << 40, true},
		{"egress", "", 0, 0, false},
		{"egress:0", "", 0, 0, false},
		{":0:1", "", 0, 0, false},
		{"egress:x:1", "", 0, 0, false},
		{"egress:1:-3", "", 0, 0, false},
	}
	for _, tt := range tests {
		stage, part, off, err := ParseDeadLetterID(tt.id)
		if (err == nil) != tt.ok || stage != tt.stage || part != tt.part || off != tt.off {
			t.Errorf("ParseDeadLetterID(%q) = %q %d %d %v", tt.id, stage, part, off, err)
		}
	}
}
