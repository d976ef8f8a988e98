package parse

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestHandleAppliesTheInterfaceProfile(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	if _, err := env.Serde.Register(ctx, "hl7bus.raw", schemas.Raw); err != nil {
		t.Fatal(err)
	}
	profile, err := hl7v2.ParseProfile([]byte("name: strict\nrequired: [PID-7]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Profiles: map[string]*hl7v2.Profile{"lab": profile}}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	msg := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||ADT^A01^ADT_A01|C1|P|2.5\rEVN|A01|20240101\rPID|1||1^^^H^MR||DOE\rPV1|1|I\r"
	for iface, wantValid := range map[string]bool{"lab": false, "other": true} {
		v, err := env.Serde.Encode(&canonical.Raw{MessageID: "M1", Interface: iface, ReceivedAt: time.Now(), Protocol: "mllp",
			Peer: "p", OrderingKey: "k", Payload: []byte(msg)})
		if err != nil {
			t.Fatal(err)
		}
		p, id, err := s.Handle(ctx, v)
		if err != nil || id.MessageID != "M1" || id.ControlID != "C1" {
			t.Fatalf("%s: %v %+v", iface, err, id)
		}
		if p.Validation.Valid != wantValid {
			t.Errorf("%s: valid = %v, want %v (issues %+v)", iface, p.Validation.Valid, wantValid, p.Validation.Issues)
		}
		// The message is held once, as the payload (no segments tree).
		if len(p.Segments) != 0 || string(p.Payload) != msg {
			t.Errorf("%s: segments %+v, payload %q", iface, p.Segments, p.Payload)
		}
	}
	bad, _ := env.Serde.Encode(&canonical.Raw{MessageID: "M2", Interface: "lab", ReceivedAt: time.Now(), Payload: []byte("hello")})
	if _, id, err := s.Handle(ctx, bad); !kafka.IsPermanent(err) || id.MessageID != "M2" {
		t.Errorf("unparseable: %v %+v", err, id)
	}
}
