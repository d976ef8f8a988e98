package egress

import (
	"context"
	"log/slog"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// Sender delivers messages to one destination over one connection (or
// whatever the protocol's unit of parallelism is): the worker builds
// destinations[].connections of them and calls each from one goroutine at
// a time, so Send calls on one Sender are never concurrent and their order
// is the order of delivery.
//
// A Sender knows its protocol and nothing of Kafka, retries or dead
// letters: it makes one attempt and says what the receiver did. The retry
// contract (package doc) is applied to its verdicts by the worker.
type Sender interface {
	// Send makes one attempt at delivering m. It must not resend on its
	// own once the receiver may have seen the message (whether a resend is
	// safe is the worker's decision), and it must give up after the
	// destination's ack_timeout without an answer (Failed) or when ctx
	// ends. A sender whose stream is out of step after an answer (a reply
	// that is not this message's) starts afresh on the next Send.
	Send(ctx context.Context, m *canonical.Out) Result
	// Close releases the connection. Send is not called after Close.
	Close() error
}

// Verdict is what one attempt means for the message.
type Verdict int

const (
	// Delivered: the receiver took the message (MLLP: AA or CA naming it).
	Delivered Verdict = iota
	// Failed: this attempt failed for this message and counts (MLLP: AE
	// or CE, an ACK that is not this message's, garbage, no answer within
	// ack_timeout, the connection lost after the write). The message is
	// retried with backoff, then dead-lettered.
	Failed
	// Rejected: the receiver refused the message for good (MLLP: AR or CR);
	// it is dead-lettered at once.
	Rejected
	// NotSent: nothing reached the receiver, which cannot be reached (MLLP:
	// the dial failed). The destination is held and probed; no attempt is
	// counted.
	NotSent
)

// String is the verdict's name, for test output.
func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	case Rejected:
		return "rejected"
	case NotSent:
		return "not sent"
	}
	return "unknown verdict"
}

// Result is the outcome of one Send.
type Result struct {
	Verdict Verdict
	// Reply is the receiver's answer as it came (the ACK's bytes for
	// MLLP), nil when it answered nothing.
	Reply []byte
	// Code is the answer's code when it had one (MSA-1 for MLLP): it goes
	// to the delivery record's ack_code.
	Code string
	// Class labels a failure, the reason label of
	// hl7bus_egress_attempt_failures_total: a short fixed word
	// (ack_error, rejected, ack_mismatch, ack_header, bad_ack, no_answer,
	// connection_lost for MLLP); "" when delivered or not sent.
	Class string
	// Reason says what happened for delivery records, dead letters and
	// logs. It never quotes the message or the reply: no PHI.
	Reason string
	// Answered is true when the receiver answered anything at all, even
	// garbage; RoundTrip is then the time from the write to the answer.
	Answered  bool
	RoundTrip time.Duration
	// Err is the transport error behind a NotSent or an unanswered Failed,
	// for the log; its text carries no message content.
	Err error
}

// Adapter is one protocol's part of egress: the validation of a
// destination's settings for that protocol and the construction of its
// senders. Adding a protocol is one file with an Adapter and one entry in
// DefaultAdapters; it must pass egresstest.Run.
type Adapter interface {
	// Validate checks d (its defaults applied) for this protocol. key is
	// the destination's key ("destinations[2]"), and every error starts
	// with the full key it is about ("destinations[2].address: ...").
	Validate(key string, d Destination) []error
	// NewSender builds one sender to d (its defaults applied, valid). It
	// connects lazily: a destination that is down must not stop the stage
	// from starting.
	NewSender(d Destination, log *slog.Logger) (Sender, error)
}

// DefaultAdapters returns the protocols egress speaks, by the name
// destinations[].protocol gives them. It returns a new map on every call:
// nothing global is shared or mutated.
func DefaultAdapters() map[string]Adapter {
	return map[string]Adapter{"mllp": MLLP()}
}
