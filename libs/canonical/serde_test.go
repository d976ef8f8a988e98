package canonical

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/schemas"
)

func newSerde(t *testing.T) (*Serde, *srfake.Registry) {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	c, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return NewSerde(c), reg
}

var at = time.Date(2024, 3, 1, 10, 15, 0, 123456000, time.UTC)

func samples() []Record {
	h := Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageCode: "ADT", TriggerEvent: "A01",
		ControlID: "MSG1", Version: "2.5", Charset: "UTF-8"}
	return []Record{
		&Raw{MessageID: "01HZ", Interface: "adt-in", ReceivedAt: at, Protocol: "mllp", Peer: "10.0.0.1:5000",
			TLSIdentity: "CN=his", OrderingKey: "GENHOSP|123^^^H", Header: h, Payload: []byte("MSH|^~\\&|\r")},
		&Raw{MessageID: "01HY", Interface: "adt-in", ReceivedAt: at, Protocol: "mllp", Peer: "p", OrderingKey: "k", Payload: []byte{}},
		&Raw{MessageID: "01HW", Interface: "adt-in", ReceivedAt: at, Protocol: "mllp", Peer: "p", OrderingKey: "interface:adt-in",
			Ordering: OrderInterface, Payload: []byte("MSH|^~\\&|A\r"),
			Rejected: &Rejection{Code: RejectMissingHeaderField, Reason: "required field missing: MSH-9, MSH-10, MSH-12"}},
		&Parsed{MessageID: "01HZ", Interface: "adt-in", ReceivedAt: at, OrderingKey: "k", Header: h, Delimiters: `|^~\&`,
			Validation: Validation{Version: "2.5", Structure: "ADT_A01", Valid: false, Issues: []Issue{{Severity: "E", Code: 101, Location: "PID[1]-3", Rule: "required", Text: "x"}},
				IssuesTruncated: 7},
			Payload: []byte("raw"), ParentMessageID: "01HY"},
		&Transformed{MessageID: "01HZ", Interface: "i", ReceivedAt: at, OrderingKey: "k", Header: h, Message: []byte("m"),
			MessageTime: "2024-03-01T09:15:00Z", MessageTimeOffset: "+01:00",
			Patient: &Patient{Identifiers: []Identifier{{Value: "123", Authority: "H", Type: "MR"}}, FamilyName: "DOE", GivenName: "JANE", BirthDate: "1980-01-01", Sex: "F"}},
		&Transformed{MessageID: "01HX", Interface: "i", ReceivedAt: at, OrderingKey: "k", Message: []byte{}},
		&Out{MessageID: "01HZ", Interface: "i", ReceivedAt: at, OrderingKey: "k", ControlID: "MSG1", Destination: "lis",
			Route: "all", ContentType: ContentTypeV2, Payload: []byte("m")},
		&DeadLetter{MessageID: "01HZ", ControlID: "MSG1", Stage: "parse", ErrorClass: ErrorPermanent, Reason: "no MSH", SourceTopic: "hl7bus.raw",
			SourcePartition: 3, SourceOffset: 42, Attempts: 1, FirstFailedAt: at, LastFailedAt: at,
			Key: []byte("k"), Value: []byte{0, 1, 2}, Headers: map[string][]byte{"traceparent": []byte("00-abc")}},
		&DeadLetter{Stage: "route", ErrorClass: ErrorTransient, Reason: "r", SourceTopic: "t", FirstFailedAt: at, LastFailedAt: at, Value: []byte{}},
		&Delivery{MessageID: "01HZ", ControlID: "MSG1", Destination: "lis", Attempt: 2, Outcome: OutcomeDelivered,
			AckCode: "AA", LatencyMS: 12.5, At: at},
		&Transformed{MessageID: "01HZ-2", Interface: "i", ReceivedAt: at, OrderingKey: "k", Header: h, Message: []byte("m"),
			ConfigVersion: "3f2a9c0d11be", ParentMessageID: "01HZ",
			Issues: []Issue{{Severity: "W", Code: 103, Location: "OBX[2]-3.1", Rule: "loinc", Text: "lab_codes has no GLU"}}},
		&Out{MessageID: "01HZ", Interface: "i", ReceivedAt: at, OrderingKey: "k", ControlID: "MSG1", Destination: "lis",
			Route: "all", ContentType: ContentTypeV2, Payload: []byte("m"), ConfigVersion: "3f2a9c0d11be"},
		&DeadLetter{MessageID: "01HZ", ControlID: "MSG1", Stage: "route", ErrorClass: ErrorPermanent, Reason: "rule lis-codes: unmapped code GLU",
			SourceTopic: "hl7bus.transformed", SourcePartition: 1, SourceOffset: 7, Attempts: 1, FirstFailedAt: at, LastFailedAt: at,
			Value: []byte{9}, Destination: "lis", Program: "elr"},
		&Decision{MessageID: "01HV", Interface: "lab-in", Stage: StageTransform, DecidedAt: at, Outcome: OutcomeFiltered,
			Filter: &FilterDecision{Rule: "drop-test", Reason: "test traffic (MSH-11 = T)"}},
		&Decision{MessageID: "01HZ-1", ParentMessageID: "01HZ", Interface: "lab-in", ControlID: "MSG1", MessageType: "ORU^R01",
			Stage: StageRoute, DecidedAt: at, ConfigVersion: "3f2a9c0d11be", Outcome: OutcomeRouted,
			Routes: []RouteDecision{
				{Route: "notifiable", Matched: true, Destinations: []string{"state", "lis"}},
				{Route: "adt-only", Matched: false, Reason: "message type ORU^R01 not in message_types", Destinations: []string{"ehr"}},
			},
			Destinations: []DestinationDecision{
				{Destination: "state", Outcome: OutcomeRouted},
				{Destination: "lis", Outcome: OutcomeDeadLettered, Rule: "lis-codes", Reason: "unmapped code GLU"},
			},
			Programs: []string{"covid"}},
		&AuditEvent{EventID: "01J0", At: at, Service: "admin", Actor: "ops-anna", Role: "operator", Auth: "token",
			Action: "replay.start", Resource: "replay_job/01J1", Selector: `{"since":"2024-03-01T00:00:00Z"}`, Count: 300,
			Outcome: AuditOK, Remote: "10.0.0.9:51000", Detail: "lab down for an hour"},
		&ControlState{Destination: "lis", State: ControlRunning, At: at},
		&ReplayRecord{Kind: ReplayKindItem, JobID: "01J1", At: at, Item: &ReplayItem{MessageID: "01HZ", Destination: "lis",
			TargetTopic: "hl7bus.out.lis", Source: RecordRef{Topic: "hl7bus.dlq.egress", Partition: 0, Offset: 9}, DeadLetterID: "egress:0:9"}},
		&ReplayRecord{Kind: ReplayKindDiscard, At: at, Discard: &Discard{DeadLetterID: "parse:1:4", MessageID: "01HY",
			Reason: "test message", Actor: "ops-anna"}},
		&ReplayRecord{Kind: ReplayKindItem, JobID: "01J1", At: at, Item: &ReplayItem{MessageID: "01HX",
			TargetTopic: "hl7bus.transformed", Source: RecordRef{Topic: "hl7bus.transformed", Partition: 2, Offset: 5}}},
		&Delivery{MessageID: "01HZ", ControlID: "MSG1", Destination: "lis", Attempt: 1, Outcome: OutcomeDelivered,
			AckCode: "AA", LatencyMS: 3, At: at, Source: &RecordRef{Topic: "hl7bus.out.lis", Partition: 2, Offset: 77}},
		&ControlState{Destination: "lis", State: ControlPaused, Reason: "receiver upgrade", Actor: "ops-anna", At: at,
			ResetID: "01J2", ResetTo: &at},
		&ReplayRecord{Kind: ReplayKindJob, JobID: "01J1", At: at, Job: &ReplayJob{State: ReplayJobRunning, Actor: "ops-anna",
			Role: "operator", Selector: `{"dead_letters":["egress:0:9"]}`, Target: "destination:lis", Resend: true,
			ConfirmedNewer: true, Rate: 50, Total: 300, Sent: 120, Skipped: 4, Failed: 1, CreatedAt: at, UpdatedAt: at, Error: "x"}},
	}
}

func TestRoundTrip(t *testing.T) {
	s, _ := newSerde(t)
	ctx := context.Background()
	for _, name := range schemas.All {
		if _, err := s.Register(ctx, "hl7bus."+name, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range samples() {
		b, err := s.Encode(rec)
		if err != nil {
			t.Fatalf("%T: %v", rec, err)
		}
		if b[0] != 0 {
			t.Fatalf("no magic byte")
		}
		got, err := s.Decode(ctx, b)
		if err != nil {
			t.Fatalf("%T: %v", rec, err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", rec, got, rec)
		}
	}
}

func TestDecodeWithFreshSerdeFetchesSchema(t *testing.T) {
	s, reg := newSerde(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, "hl7bus.raw", schemas.Raw); err != nil {
		t.Fatal(err)
	}
	b, err := s.Encode(samples()[0])
	if err != nil {
		t.Fatal(err)
	}
	c, _ := sr.NewClient(sr.URLs(reg.URL()))
	fresh := NewSerde(c)
	got, err := fresh.Decode(ctx, b)
	if err != nil || got.(*Raw).MessageID != "01HZ" {
		t.Fatalf("%v %v", got, err)
	}
}

func TestRegisterIsStableAndBackward(t *testing.T) {
	s, reg := newSerde(t)
	ctx := context.Background()
	id1, err := s.Register(ctx, "hl7bus.out.lis", schemas.Out)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Register(ctx, "hl7bus.out.lis", schemas.Out)
	if err != nil || id1 != id2 {
		t.Errorf("re-registering: %d %d %v", id1, id2, err)
	}
	c, _ := sr.NewClient(sr.URLs(reg.URL()))
	res := c.Compatibility(ctx, "hl7bus.out.lis-value")
	if len(res) != 1 || res[0].Err != nil || res[0].Level != sr.CompatBackward {
		t.Errorf("compatibility = %+v", res)
	}
}

// TestErrorSentinels checks that each failure carries its own sentinel and
// no other: the pipeline retries ErrUnknownSchemaID only, so a programming
// error must never look like a registry outage, nor the reverse.
func TestErrorSentinels(t *testing.T) {
	ctx := context.Background()
	all := []error{ErrWireFormat, ErrNoSuchSchema, ErrSchemaNotRegistered, ErrUnknownSchemaID}
	tests := []struct {
		name string
		run  func(t *testing.T) error
		want error
	}{
		{"plain bytes", func(t *testing.T) error {
			s, _ := newSerde(t)
			_, err := s.Decode(ctx, []byte("MSH|"))
			return err
		}, ErrWireFormat},
		{"schema name not embedded", func(t *testing.T) error {
			s, _ := newSerde(t)
			_, err := s.Register(ctx, "t", "nope")
			return err
		}, ErrNoSuchSchema},
		{"kind never registered", func(t *testing.T) error {
			s, _ := newSerde(t)
			_, err := s.Encode(&Raw{})
			return err
		}, ErrSchemaNotRegistered},
		{"id the registry does not know", func(t *testing.T) error {
			s, _ := newSerde(t)
			_, err := s.Decode(ctx, []byte{0, 0, 0, 0, 99, 1})
			var re *sr.ResponseError
			if !errors.As(err, &re) {
				t.Errorf("the registry's answer is not wrapped: %v", err)
			}
			return err
		}, ErrUnknownSchemaID},
		{"registry unreachable", func(t *testing.T) error {
			// A record written by one Serde, read by a fresh one (no
			// cached codec) once the registry is gone.
			w, reg := newSerde(t)
			if _, err := w.Register(ctx, "hl7bus.raw", schemas.Raw); err != nil {
				t.Fatal(err)
			}
			b, err := w.Encode(samples()[0])
			if err != nil {
				t.Fatal(err)
			}
			c, err := sr.NewClient(sr.URLs(reg.URL()))
			if err != nil {
				t.Fatal(err)
			}
			reg.Close()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err = NewSerde(c).Decode(cctx, b)
			return err
		}, ErrUnknownSchemaID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			for _, other := range all {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
		})
	}
}

func TestDecodeTruncated(t *testing.T) {
	s, _ := newSerde(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, "hl7bus.raw", schemas.Raw); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Encode(samples()[0])
	if _, err := s.Decode(ctx, b[:len(b)-3]); err == nil {
		t.Errorf("truncated record decoded")
	}
}
