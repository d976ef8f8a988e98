package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// TestScopedDeadLetters: a handler that writes two outputs and
// dead-letters its input for one destination gives three records: the
// two outputs untouched and, in its place, the input's full dead letter
// (its bytes, key, headers and offsets, class permanent) naming the
// destination. The log names the destination and never the content.
func TestScopedDeadLetters(t *testing.T) {
	serde := testSerde(t, map[string]string{"dlq.test": schemas.DeadLetter, "transformed": schemas.Transformed, "out": schemas.Out})
	ctx := context.Background()
	value, err := serde.Encode(&canonical.Transformed{MessageID: "M1", Header: canonical.Header{ControlID: "C1"},
		Message: []byte("MSH|^~\\&|LAB|GEN\rPID|1||SECRET-MRN\r")})
	if err != nil {
		t.Fatal(err)
	}
	in := &kgo.Record{Topic: "transformed", Partition: 2, Offset: 41, Key: []byte("k"), Value: value,
		Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-t")}}}
	h := Typed(serde, func(_ context.Context, tr *canonical.Transformed) ([]Output, error) {
		return []Output{
			{Topic: "out", Record: &canonical.Out{MessageID: tr.MessageID, Destination: "ehr"}},
			{DeadLetter: &Scoped{Destination: "lis", Reason: "rule lis-codes: lab_codes has no GLU"}},
			{Topic: "out", Record: &canonical.Out{MessageID: tr.MessageID, Destination: "state"}},
		}, nil
	})
	var logs bytes.Buffer
	outs, id, err := DeadLetters("test", "dlq.test", serde, slog.New(slog.NewTextHandler(&logs, nil)))(h)(ctx, in)
	if err != nil || len(outs) != 3 || id != (Ident{"M1", "C1"}) {
		t.Fatalf("%d records, %+v, %v", len(outs), id, err)
	}
	for i, dest := range map[int]string{0: "ehr", 2: "state"} {
		o, err := Decode[*canonical.Out](ctx, serde, outs[i].Value)
		if err != nil || outs[i].Topic != "out" || o.Destination != dest {
			t.Errorf("output %d: %s %+v %v", i, outs[i].Topic, o, err)
		}
	}
	dl := outs[1]
	if dl.Topic != "dlq.test" || string(dl.Key) != "k" || len(dl.Headers) != 1 || dl.Context != nil {
		t.Fatalf("dead letter record %+v", dl)
	}
	d, err := Decode[*canonical.DeadLetter](ctx, serde, dl.Value)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%s|%d|%s|%s|%s|%s|%s", d.Stage, d.ErrorClass, d.Reason, d.SourceTopic, d.SourcePartition,
		d.SourceOffset, d.Key, d.Attempts, d.MessageID, d.ControlID, d.Headers["traceparent"], d.Destination, d.Program)
	want := "test|permanent|rule lis-codes: lab_codes has no GLU|transformed|2|41|k|1|M1|C1|00-t|lis|"
	if got != want {
		t.Errorf("dead letter\n got %s\nwant %s", got, want)
	}
	if !bytes.Equal(d.Value, value) {
		t.Errorf("dead letter holds %q, not the input's bytes", d.Value)
	}
	if d.LastFailedAt.IsZero() || d.FirstFailedAt.After(d.LastFailedAt) {
		t.Errorf("failed at %v .. %v", d.FirstFailedAt, d.LastFailedAt)
	}
	if l := logs.String(); !strings.Contains(l, "destination=lis") || !strings.Contains(l, "message_id=M1") || strings.Contains(l, "SECRET") {
		t.Errorf("log: %s", l)
	}

	// Its dead letter unencodable (no dlq schema): transient, so the
	// input is retried and neither its outputs nor its dead letter lost.
	bare := testSerde(t, map[string]string{"transformed": schemas.Transformed, "out": schemas.Out})
	bareIn := *in
	if bareIn.Value, err = bare.Encode(&canonical.Transformed{MessageID: "M1"}); err != nil {
		t.Fatal(err)
	}
	outs, _, err = DeadLetters("test", "dlq.test", bare, slog.New(slog.DiscardHandler))(Typed(bare, func(context.Context, *canonical.Transformed) ([]Output, error) {
		return []Output{{DeadLetter: &Scoped{Destination: "lis", Reason: "r"}}}, nil
	}))(ctx, &bareIn)
	if err == nil || IsPermanent(err) || outs != nil {
		t.Errorf("unencodable scoped dead letter: %v %v (permanent %v)", outs, err, IsPermanent(err))
	}
}
