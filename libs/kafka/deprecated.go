package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// The stage runtime (loop, error model, dead letters) moved to
// libs/pipeline. What follows stays only for services/egress, which is
// being rewritten onto that runtime, and goes with it. libs/pipeline
// imports this package for its clients, so these cannot be aliases of
// pipeline's: they are copies, and IsPermanent recognises pipeline's
// marks through pipeline.Classed (an error with a DeadLetterClass method).

// Ident names the message a record holds.
//
// Deprecated: moved to pipeline; removed when egress adopts the pipeline runtime.
type Ident struct {
	MessageID string // hl7bus's ULID
	ControlID string // the sender's MSH-10
}

// classed is pipeline.Classed, matched structurally.
type classed interface {
	error
	DeadLetterClass() string
}

// IsPermanent reports whether err was marked permanent by pipeline (egress
// checks pipeline.Decode's errors with it).
//
// Deprecated: moved to pipeline; removed when egress adopts the pipeline runtime.
func IsPermanent(err error) bool {
	var c classed
	return errors.As(err, &c)
}

// DeadLetter builds the dead-letter record of input rec.
//
// Deprecated: moved to pipeline; removed when egress adopts the pipeline runtime.
func DeadLetter(stage string, id Ident, rec *kgo.Record, class, reason string, attempts int, first, last time.Time) *canonical.DeadLetter {
	d := &canonical.DeadLetter{
		MessageID: id.MessageID, ControlID: id.ControlID, Stage: stage, ErrorClass: class, Reason: reason,
		SourceTopic: rec.Topic, SourcePartition: rec.Partition, SourceOffset: rec.Offset,
		Attempts: attempts, FirstFailedAt: first, LastFailedAt: last,
		Key: rec.Key, Value: rec.Value,
	}
	if len(rec.Headers) > 0 {
		d.Headers = make(map[string][]byte, len(rec.Headers))
		for _, h := range rec.Headers {
			d.Headers[h.Key] = h.Value
		}
	}
	return d
}
