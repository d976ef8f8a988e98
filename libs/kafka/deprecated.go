package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// The stage runtime (loop, error model, dead letters) moved to
// libs/pipeline. What follows stays only for the callers not moved yet,
// and goes with them. libs/pipeline imports this package for its clients,
// so these cannot be aliases of pipeline's: they are copies, and the error
// marks agree through pipeline.Classed (an error with a DeadLetterClass
// method), which both packages recognise.

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

// IsPermanent reports whether err was marked permanent, by this package's
// Permanent or by pipeline's.
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

// permanentError is pipeline's permanent mark, for the callers below.
type permanentError struct {
	err   error
	class string
}

func (e permanentError) Error() string           { return e.err.Error() }
func (e permanentError) Unwrap() error           { return e.err }
func (e permanentError) DeadLetterClass() string { return e.class }

// Permanent marks err as one retrying cannot fix.
//
// Deprecated: moved to pipeline; removed when parse.Handle and
// transform.Handle take their decoded input (their bodies are being
// changed by the parse-once work of issue 9).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// PermanentClass is Permanent with the dead letter's error class.
//
// Deprecated: moved to pipeline; removed with Permanent.
func PermanentClass(class string, err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err, class: class}
}

// ErrorClass returns the dead-letter error class of a permanent error.
//
// Deprecated: moved to pipeline; removed with Permanent.
func ErrorClass(err error) string {
	var c classed
	if errors.As(err, &c) && c.DeadLetterClass() != "" {
		return c.DeadLetterClass()
	}
	return canonical.ErrorPermanent
}
