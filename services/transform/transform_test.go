package transform

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestHandle: transform parses payload with the configured parser, carries
// the header it was given unchanged and projects the patient and MSH-7
// with the libraries' projections.
// handle runs s's handler on the parsed record value v as the driver does
// (pipeline.Typed: decode, handle, encode) and decodes what it wrote.
func handle(ctx context.Context, s *Service, v []byte) (*canonical.Transformed, pipeline.Ident, error) {
	outs, id, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Value: v})
	if err != nil {
		return nil, id, err
	}
	if len(outs) != 1 || outs[0].Topic != s.out {
		return nil, id, fmt.Errorf("%d outputs, want one to %s", len(outs), s.out)
	}
	rec, err := s.serde.Decode(ctx, outs[0].Value)
	if err != nil {
		return nil, id, err
	}
	return rec.(*canonical.Transformed), id, nil
}

func TestHandle(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	for topic, sc := range map[string]string{"hl7bus.parsed": schemas.Parsed, "hl7bus.transformed": schemas.Transformed} {
		if _, err := env.Serde.Register(ctx, topic, sc); err != nil {
			t.Fatal(err)
		}
	}
	p, err := hl7v2.ParserConfig{FallbackCharset: hl7v2.FallbackNone}.NewParser()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Parser: p}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	msg := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240301101500+0545||ADT^A01^ADT_A01|C1|P|2.5\n" +
		"PID|1||123^^^GENHOSP^MR||D\x8AOE^JANE||198001010030+0100|F\n"
	header := canonical.Header{MessageCode: "ADT", TriggerEvent: "A01", ControlID: "C1", Version: "2.5", Charset: "FROM-INGRESS"}
	v, err := env.Serde.Encode(&canonical.Parsed{MessageID: "M1", Interface: "in", ReceivedAt: time.Now(), OrderingKey: "k",
		Header: header, Payload: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	tr, id, err := handle(ctx, s, v)
	if err != nil || id != (pipeline.Ident{MessageID: "M1", ControlID: "C1"}) {
		t.Fatalf("%v %+v", err, id)
	}
	if tr.Header != header {
		t.Errorf("header %+v, want the one carried %+v", tr.Header, header)
	}
	if tr.MessageTime != "2024-03-01T04:30:00Z" || tr.MessageTimeOffset != "+05:45" {
		t.Errorf("message time %q %q", tr.MessageTime, tr.MessageTimeOffset)
	}
	if tr.Patient == nil || tr.Patient.FamilyName != "D\uFFFDOE" || tr.Patient.BirthDate != "1980-01-01" {
		t.Errorf("patient %+v (decoded by the configured parser, birth date as written)", tr.Patient)
	}
	if want := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240301101500+0545||ADT^A01^ADT_A01|C1|P|2.5\r" +
		"PID|1||123^^^GENHOSP^MR||D\x8AOE^JANE||198001010030+0100|F\r"; string(tr.Message) != want {
		t.Errorf("message %q, want the bytes with CR terminators", tr.Message)
	}
	bad, _ := env.Serde.Encode(&canonical.Parsed{MessageID: "M2", ReceivedAt: time.Now(), Header: canonical.Header{ControlID: "C2"}, Payload: []byte("hello")})
	if _, id, err := handle(ctx, s, bad); !pipeline.IsPermanent(err) || id.MessageID != "M2" || id.ControlID != "C2" {
		t.Errorf("unparseable payload: %v %+v", err, id)
	}
}
