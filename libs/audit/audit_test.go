package audit_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hl7bus/hl7bus/libs/audit"
	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestAuditWritesKeyedEvents: an event lands on <prefix>audit keyed by
// its actor, with an ID, a time and the writer's service filled in; two
// events get different IDs.
func TestAuditWritesKeyedEvents(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	w := audit.NewWriter(prod, env.Serde, env.Kafka, "admin")
	if err := w.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"replay.start", "destination.pause"} {
		if err := w.Audit(ctx, canonical.AuditEvent{Actor: "ops-anna", Role: "operator", Auth: "token", Action: action,
			Resource: "destination/lis", Outcome: canonical.AuditOK}); err != nil {
			t.Fatal(err)
		}
	}
	topic := env.Kafka.Topic(kafka.TopicAudit)
	recs := env.Read(t, topic, 2)
	dec := env.ReadDecoded(t, topic, 2)
	ids := map[string]bool{}
	for i, r := range dec {
		e, ok := r.(*canonical.AuditEvent)
		if !ok {
			t.Fatalf("record %d is %T", i, r)
		}
		if string(recs[i].Key) != "ops-anna" {
			t.Errorf("key %q, want the actor", recs[i].Key)
		}
		if e.EventID == "" || e.At.IsZero() || e.Service != "admin" {
			t.Errorf("event %d: id %q at %v service %q: not filled in", i, e.EventID, e.At, e.Service)
		}
		ids[e.EventID] = true
	}
	if len(ids) != 2 {
		t.Errorf("event IDs %v are not unique", ids)
	}
}

// TestAuditRefusesIncompleteEvents: who, what and the outcome are
// required, and nothing is written without them.
func TestAuditRefusesIncompleteEvents(t *testing.T) {
	w := audit.NewWriter(nil, nil, kafka.Config{}.WithDefaults(), "admin")
	for _, e := range []canonical.AuditEvent{
		{Action: "x", Outcome: "ok"}, {Actor: "a", Outcome: "ok"}, {Actor: "a", Action: "x"},
	} {
		if err := w.Audit(context.Background(), e); !errors.Is(err, audit.ErrIncomplete) {
			t.Errorf("%+v: %v, want ErrIncomplete", e, err)
		}
	}
}
