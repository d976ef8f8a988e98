package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

// testSerde returns a serde on a fake registry with the given topics'
// schemas registered.
func testSerde(t *testing.T, topics map[string]string) *canonical.Serde {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	serde := canonical.NewSerde(cl)
	for topic, s := range topics {
		if _, err := serde.Register(context.Background(), topic, s); err != nil {
			t.Fatal(err)
		}
	}
	return serde
}

func TestDeadLetters(t *testing.T) {
	serde := testSerde(t, map[string]string{"dlq.test": schemas.DeadLetter})
	in := &kgo.Record{Topic: "in", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("the record"),
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-t")}}}
	transient := errors.New("registry unavailable")
	tests := []struct {
		name     string
		err      error
		dead     bool
		class    string
		reason   string
		attempts int
	}{
		{"ok passes", nil, false, "", "", 0},
		{"transient passes, never dead-lettered", transient, false, "", "", 0},
		{"transient past its retries passes too", attemptsError{err: transient, attempts: 9, first: time.Now()}, false, "", "", 0},
		{"permanent", Permanent(errors.New("not a message")), true, canonical.ErrorPermanent, "not a message", 1},
		{"class kept", PermanentClass(canonical.ErrorRejectedAtIngress, errors.New("rejected")), true, canonical.ErrorRejectedAtIngress, "rejected", 1},
		{"panic class", PermanentClass(ClassPanic, ErrHandlerPanicked), true, ClassPanic, ErrHandlerPanicked.Error(), 1},
		{"attempts from Retry", attemptsError{err: Permanent(errors.New("bad")), attempts: 3, first: time.Now().Add(-time.Second)}, true, canonical.ErrorPermanent, "bad", 3},
	}
	for _, tt := range tests {
		h := func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			if tt.err != nil {
				return nil, Ident{MessageID: "M1", ControlID: "C1"}, tt.err
			}
			return []*kgo.Record{{Topic: "out"}}, Ident{MessageID: "M1"}, nil
		}
		outs, id, err := DeadLetters("test", "dlq.test", serde, slog.New(slog.DiscardHandler))(h)(context.Background(), in)
		if id.MessageID != "M1" {
			t.Errorf("%s: id %+v", tt.name, id)
		}
		if !tt.dead {
			if !errors.Is(err, tt.err) || tt.err == nil && (len(outs) != 1 || outs[0].Topic != "out") {
				t.Errorf("%s: passed %v %v", tt.name, outs, err)
			}
			continue
		}
		if err != nil || len(outs) != 1 || outs[0].Topic != "dlq.test" || string(outs[0].Key) != "k" || len(outs[0].Headers) != 1 {
			t.Fatalf("%s: %v %v", tt.name, outs, err)
		}
		rec, err := serde.Decode(context.Background(), outs[0].Value)
		if err != nil {
			t.Fatal(err)
		}
		d := rec.(*canonical.DeadLetter)
		got := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%s|%s|%d|%s|%s", d.Stage, d.ErrorClass, d.Reason, d.SourceTopic, d.SourcePartition,
			d.SourceOffset, d.Key, d.Value, d.Attempts, d.MessageID, d.Headers["traceparent"])
		want := fmt.Sprintf("test|%s|%s|in|2|41|k|the record|%d|M1|00-t", tt.class, tt.reason, tt.attempts)
		if got != want {
			t.Errorf("%s: dead letter\n got %s\nwant %s", tt.name, got, want)
		}
		if d.FirstFailedAt.After(d.LastFailedAt) || d.LastFailedAt.IsZero() {
			t.Errorf("%s: failed at %v .. %v", tt.name, d.FirstFailedAt, d.LastFailedAt)
		}
	}
}

// TestDeadLettersUnencodable: a dead letter the serde cannot encode (its
// schema not registered) is a transient failure: the record is retried,
// never lost.
func TestDeadLettersUnencodable(t *testing.T) {
	serde := testSerde(t, nil)
	h := func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
		return nil, Ident{}, Permanent(errors.New("bad"))
	}
	outs, _, err := DeadLetters("test", "dlq.test", serde, slog.New(slog.DiscardHandler))(h)(context.Background(), &kgo.Record{})
	if err == nil || IsPermanent(err) || outs != nil {
		t.Errorf("got %v %v (permanent %v)", outs, err, IsPermanent(err))
	}
}
