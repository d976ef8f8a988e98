package pipeline

import "errors"

// ErrHandlerPanicked is the reason a record is dead-lettered when the
// stage's handler panicked on it (returned by Recover, wrapped with class
// ClassPanic, into the dead letter; the panic value is never quoted: it may
// hold message content).
var ErrHandlerPanicked = errors.New("the stage's handler panicked on this record")

// ErrRecordTimeout is returned by Timeout when a record took longer than
// its per-record timeout. It is transient: during a registry or broker
// outage every record is slow, and an outage must never dead-letter good
// messages.
var ErrRecordTimeout = errors.New("record not handled within its timeout")

// ErrNoProcess is returned by AtLeastOnce.Run when its configuration has
// no Process function.
var ErrNoProcess = errors.New("at-least-once driver without a Process function")
