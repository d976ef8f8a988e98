package pipeline

import (
	"errors"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// Dead-letter error classes of this runtime, besides canonical's
// (ErrorPermanent, ErrorRejectedAtIngress).
const (
	// ClassPanic: the handler panicked on the record (Recover), or, in
	// egress, delivering the message panicked.
	ClassPanic = "panic"
)

// Classed is implemented by errors that retrying cannot fix; the method
// returns the dead letter's error class ("" for canonical.ErrorPermanent).
// Permanent and PermanentClass return such errors. The classifier finds
// it anywhere in an error's chain with errors.As, so a package that cannot
// import pipeline can mark its errors the same way.
type Classed interface {
	error
	DeadLetterClass() string
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct {
	err   error
	class string
}

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// DeadLetterClass implements Classed.
func (e permanentError) DeadLetterClass() string { return e.class }

// Permanent wraps err to say that retrying the input cannot succeed (it is
// malformed, unroutable...): the stage dead-letters it at once. Any error
// not marked so is transient.
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

// IsPermanent reports whether err (or an error it wraps) is Classed: the
// one classifier of the runtime. Everything else is transient, retried and
// never dead-lettered.
func IsPermanent(err error) bool {
	var c Classed
	return errors.As(err, &c)
}

// ErrorClass returns the dead-letter error class of a permanent error: its
// PermanentClass, or canonical.ErrorPermanent.
func ErrorClass(err error) string {
	var c Classed
	if errors.As(err, &c) && c.DeadLetterClass() != "" {
		return c.DeadLetterClass()
	}
	return canonical.ErrorPermanent
}

// Ident names the message a record holds, as far as the runtime got: both
// empty when the input could not be decoded at all.
type Ident struct {
	MessageID string // hl7bus's ULID
	ControlID string // the sender's MSH-10
}
