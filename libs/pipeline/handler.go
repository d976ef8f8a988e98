package pipeline

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// Handler is a stage's logic: a plain function from one decoded input
// record to its outputs. It returns Permanent errors for inputs it can
// never handle (they are dead-lettered) and any other error for a cause
// that may pass (registry or broker unavailable: retried, never
// dead-lettered). It knows nothing of Kafka records, offsets, retries,
// dead letters, panics, timeouts, spans or metrics: the middleware do.
type Handler[In canonical.Record] func(ctx context.Context, in In) ([]Output, error)

// Output is one record a handler writes, or, with DeadLetter set, the
// dead letter of its input for one destination or program.
type Output struct {
	// Topic receives the record; required unless DeadLetter is set.
	Topic string
	// Key is the record key; nil writes it under its input's key, so
	// per-patient order holds downstream.
	Key []byte
	// Record is encoded with the stage's serde (the schema registered for
	// Topic).
	Record canonical.Record
	// DeadLetter, when set, dead-letters the input for one destination or
	// program beside the handler's other outputs (Topic, Key and Record
	// are ignored): the stage's DeadLetters middleware writes the input's
	// full dead letter (its bytes, source offsets, class permanent) with
	// Destination and Program set to dlq.<stage>, in the same transaction
	// as the other outputs, so a replay re-runs only what failed.
	DeadLetter *Scoped
}

// Scoped is the scope and reason of a dead letter for part of an input's
// work: one destination's copy (a destination rule that failed in route)
// or one program's. Neither set, it dead-letters the whole input while
// the handler still writes what says why (route's decision for a message
// no route matches: a Permanent error would drop that decision too).
type Scoped struct {
	Destination string
	Program     string
	// Reason says why, without message content ("rule lis-codes: ..."):
	// it is also logged.
	Reason string
	// Detail is the value of the message the failure is about, quoted,
	// or "" (see Detailed; DetailOf(err) gives a failed rule's): only the
	// dead-letter record's reason carries it, never a log line or span.
	Detail string
}

// DeadLetterReason is the reason the scoped dead-letter record says:
// Reason, then Detail when set ("<reason>: <detail>"), as
// DeadLetterReason does for an error.
func (s Scoped) DeadLetterReason() string { return withDetail(s.Reason, s.Detail) }

// scopedTopic marks, among a RecordHandler's outputs, a scoped dead letter
// DeadLetters has still to build (the Scoped rides in the record's
// Context). It is no valid topic name: should one ever reach a producer
// the broker refuses it, and Transact refuses it before that.
const scopedTopic = "\x00scoped dead letter"

type scopedKey struct{}

// scopedRecord is the placeholder output of a scoped dead letter.
func scopedRecord(s Scoped) *kgo.Record {
	return &kgo.Record{Topic: scopedTopic, Context: context.WithValue(context.Background(), scopedKey{}, s)}
}

// ScopedOf reports whether rec, an output of Typed, is the placeholder of
// a scoped dead letter that DeadLetters has not yet turned into the dead
// letter, and returns its scope. Tests that run a Typed handler without
// the drivers' middleware use it to tell those outputs from records.
func ScopedOf(rec *kgo.Record) (Scoped, bool) {
	if rec == nil || rec.Topic != scopedTopic || rec.Context == nil {
		return Scoped{}, false
	}
	s, ok := rec.Context.Value(scopedKey{}).(Scoped)
	return s, ok
}

// RecordHandler is what the middleware wrap and the drivers run: one
// consumed Kafka record to the records to produce, with the identity of
// the message as far as it was decoded. Stage code does not write these:
// Typed makes one from a Handler.
type RecordHandler func(ctx context.Context, rec *kgo.Record) (outs []*kgo.Record, id Ident, err error)

// Middleware wraps a RecordHandler with one concern (retry, recovery,
// timeout, tracing, metrics, dead-lettering).
type Middleware func(RecordHandler) RecordHandler

// Chain wraps h in ms, the first outermost: Chain(h, a, b)(rec) runs
// a(b(h)).
func Chain(h RecordHandler, ms ...Middleware) RecordHandler {
	for i := len(ms) - 1; i >= 0; i-- {
		h = ms[i](h)
	}
	return h
}

// Typed turns a Handler into a RecordHandler: it decodes the input with
// Decode (a schema the registry cannot give yet is transient, bytes that
// are not an In are permanent), takes the message's identity from the
// decoded input, and encodes the outputs with serde. The handler's
// context carries the input record for InputHeader.
func Typed[In canonical.Record](serde *canonical.Serde, h Handler[In]) RecordHandler {
	return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
		in, err := Decode[In](ctx, serde, rec.Value)
		if err != nil {
			return nil, Ident{}, err
		}
		id := IdentOf(in)
		outs, err := h(withInput(ctx, rec), in)
		if err != nil {
			return nil, id, err
		}
		if id.ControlID == "" && len(outs) > 0 && outs[0].DeadLetter == nil {
			// An input without a header (a raw record not written by
			// ingress) gets its control ID from the handler's output about
			// the same message, for the logs and any dead letter.
			if oid := IdentOf(outs[0].Record); oid.MessageID == id.MessageID {
				id.ControlID = oid.ControlID
			}
		}
		recs := make([]*kgo.Record, 0, len(outs))
		for _, o := range outs {
			if s := o.DeadLetter; s != nil {
				recs = append(recs, scopedRecord(*s))
				continue
			}
			if o.Topic == "" {
				// A record without a topic would go to the client's
				// default, or fail at produce: say which output it was.
				return nil, id, Permanent(fmt.Errorf("an output %s record has no topic", o.Record.Schema()))
			}
			v, err := serde.Encode(o.Record)
			if err != nil {
				return nil, id, Permanent(fmt.Errorf("encoding %s output: %w", o.Record.Schema(), err))
			}
			key := o.Key
			if key == nil {
				key = rec.Key
			}
			recs = append(recs, &kgo.Record{Topic: o.Topic, Key: key, Value: v})
		}
		return recs, id, nil
	}
}

// IdentOf returns the identity every hl7bus record carries (its message
// ID and the sender's MSH-10), or an empty Ident for a record without one.
func IdentOf(r canonical.Record) Ident {
	switch r := r.(type) {
	case *canonical.Raw:
		return Ident{MessageID: r.MessageID, ControlID: r.Header.ControlID}
	case *canonical.Parsed:
		return Ident{MessageID: r.MessageID, ControlID: r.Header.ControlID}
	case *canonical.Transformed:
		return Ident{MessageID: r.MessageID, ControlID: r.Header.ControlID}
	case *canonical.Out:
		return Ident{MessageID: r.MessageID, ControlID: r.ControlID}
	case *canonical.DeadLetter:
		return Ident{MessageID: r.MessageID, ControlID: r.ControlID}
	case *canonical.Delivery:
		return Ident{MessageID: r.MessageID, ControlID: r.ControlID}
	case *canonical.Decision:
		return Ident{MessageID: r.MessageID, ControlID: r.ControlID}
	}
	return Ident{}
}
