// Package audit writes the audit trail: who read, replayed, paused or
// changed what (design.md, topic audit). Every service that performs an
// audited action holds one Writer; the admin API is the main one.
//
// A Writer produces synchronously with the producer's acks=all, so an
// action that must be audited (a content read, a replay) can refuse to
// happen when its record cannot be written: the trail has no gaps an
// operator could exploit by breaking Kafka.
package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/schemas"
)

// Writer writes canonical.AuditEvent records to <prefix>audit, keyed by
// actor (the design's key: one actor's trail stays in order).
type Writer struct {
	prod    *kgo.Client
	serde   *canonical.Serde
	kc      kafka.Config
	topic   string
	service string
	now     func() time.Time

	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

// NewWriter returns a writer producing with prod (an acks=all producer
// from kafka.NewProducer) for service, the name events carry.
func NewWriter(prod *kgo.Client, serde *canonical.Serde, kc kafka.Config, service string) *Writer {
	return &Writer{prod: prod, serde: serde, kc: kc, topic: kc.Topic(kafka.TopicAudit), service: service,
		now: time.Now, entropy: ulid.Monotonic(rand.Reader, 0)}
}

// Prepare creates the audit topic when missing and registers its schema;
// call it once before the first Audit.
func (w *Writer) Prepare(ctx context.Context) error {
	if err := kafka.EnsureTopics(ctx, w.prod, w.kc, w.topic); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if _, err := w.serde.Register(ctx, w.topic, schemas.Audit); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ErrIncomplete refuses an event without an actor, action or outcome:
// an audit record that does not say who did what is no record.
var ErrIncomplete = errors.New("audit event needs actor, action and outcome")

// Audit writes e and returns once Kafka has acknowledged it. It sets
// EventID, At and Service when they are empty.
func (w *Writer) Audit(ctx context.Context, e canonical.AuditEvent) error {
	if e.Actor == "" || e.Action == "" || e.Outcome == "" {
		return ErrIncomplete
	}
	now := w.now().UTC()
	if e.At.IsZero() {
		e.At = now
	}
	if e.Service == "" {
		e.Service = w.service
	}
	if e.EventID == "" {
		w.mu.Lock()
		id, err := ulid.New(ulid.Timestamp(now), w.entropy)
		w.mu.Unlock()
		if err != nil {
			return fmt.Errorf("audit: event id: %w", err)
		}
		e.EventID = id.String()
	}
	b, err := w.serde.Encode(&e)
	if err != nil {
		return fmt.Errorf("audit: encoding %s: %w", e.Action, err)
	}
	rec := &kgo.Record{Topic: w.topic, Key: []byte(e.Actor), Value: b}
	if err := w.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("audit: writing %s: %w", e.Action, err)
	}
	return nil
}
