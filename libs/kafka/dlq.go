package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// permanentError marks an error that retrying cannot fix; class is the
// dead letter's error class ("" for canonical.ErrorPermanent).
type permanentError struct {
	err   error
	class string
}

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err to say that retrying the input cannot succeed (it is
// malformed, unroutable...): the stage dead-letters it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// PermanentClass is Permanent with the dead letter's error class, for
// inputs whose failure has a class of its own (parse dead-letters what
// ingress rejected as canonical.ErrorRejectedAtIngress).
func PermanentClass(class string, err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err, class: class}
}

// ErrorClass returns the dead-letter error class of a permanent error:
// its PermanentClass, or canonical.ErrorPermanent.
func ErrorClass(err error) string {
	var p permanentError
	if errors.As(err, &p) && p.class != "" {
		return p.class
	}
	return canonical.ErrorPermanent
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Ident names the message a record holds, as far as a handler got: both
// empty when the input could not be decoded at all.
type Ident struct {
	MessageID string // hl7bus's ULID
	ControlID string // the sender's MSH-10
}

// DeadLetter builds the dead-letter record of input rec: its key, value and
// headers untouched, with the stage, error class and reason. reason must not
// carry message content.
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
