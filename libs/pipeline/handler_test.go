package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestTyped(t *testing.T) {
	serde := testSerde(t, map[string]string{"raw": schemas.Raw, "out": schemas.Out})
	ctx := context.Background()
	raw := func(id string) []byte {
		v, err := serde.Encode(&canonical.Raw{MessageID: id, Header: canonical.Header{ControlID: "C-" + id}, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	h := Typed(serde, func(_ context.Context, in *canonical.Raw) ([]Output, error) {
		switch in.MessageID {
		case "bad":
			return nil, Permanent(errors.New("not a message"))
		case "notopic":
			return []Output{{Record: &canonical.Out{MessageID: in.MessageID}}}, nil
		case "noheader":
			return []Output{{Topic: "out", Record: &canonical.Out{MessageID: in.MessageID, ControlID: "from-output"}}}, nil
		case "child":
			return []Output{{Topic: "out", Record: &canonical.Out{MessageID: in.MessageID + "-1", ControlID: "child's"}}}, nil
		}
		return []Output{
			{Topic: "out", Record: &canonical.Out{MessageID: in.MessageID, Destination: "a"}},
			{Topic: "out", Key: []byte("own"), Record: &canonical.Out{MessageID: in.MessageID, Destination: "b"}},
		}, nil
	})
	headerless := func(id string) []byte {
		v, err := serde.Encode(&canonical.Raw{MessageID: id, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name      string
		value     []byte
		outs      int
		id        Ident
		permanent bool
		text      string
	}{
		{"two outputs", raw("M1"), 2, Ident{"M1", "C-M1"}, false, ""},
		{"handler failure keeps the identity", raw("bad"), 0, Ident{"bad", "C-bad"}, true, "not a message"},
		{"an output without a topic fails", raw("notopic"), 0, Ident{"notopic", "C-notopic"}, true, "has no topic"},
		{"a headerless input takes the control ID of its output", headerless("noheader"), 1, Ident{"noheader", "from-output"}, false, ""},
		{"but not from another message's", headerless("child"), 1, Ident{"child", ""}, false, ""},
		{"not an input record", []byte("MSH|"), 0, Ident{}, true, "not Confluent wire format"},
		{"unknown schema id: transient", []byte{0, 0, 0, 9, 9, 2}, 0, Ident{}, false, "unknown schema"},
	}
	for _, tt := range tests {
		outs, id, err := h(ctx, &kgo.Record{Key: []byte("patient"), Value: tt.value})
		if len(outs) != tt.outs || id != tt.id || (tt.text == "") != (err == nil) ||
			err != nil && (IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.text)) {
			t.Errorf("%s: %d outputs, %+v, %v", tt.name, len(outs), id, err)
			continue
		}
		if tt.outs == 2 {
			if string(outs[0].Key) != "patient" || string(outs[1].Key) != "own" || outs[0].Topic != "out" {
				t.Errorf("%s: keys %q %q, topic %s", tt.name, outs[0].Key, outs[1].Key, outs[0].Topic)
			}
			if o, err := Decode[*canonical.Out](ctx, serde, outs[1].Value); err != nil || o.Destination != "b" {
				t.Errorf("%s: output decodes to %v %v", tt.name, o, err)
			}
		}
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next RecordHandler) RecordHandler {
			return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
				order = append(order, name)
				return next(ctx, rec)
			}
		}
	}
	h := func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
		order = append(order, "handler")
		return nil, Ident{}, nil
	}
	_, _, _ = Chain(h, mw("a"), mw("b"), mw("c"))(context.Background(), &kgo.Record{})
	if got := strings.Join(order, ","); got != "a,b,c,handler" {
		t.Errorf("order %s", got)
	}
}

func TestIdentOf(t *testing.T) {
	tests := []struct {
		rec  canonical.Record
		want Ident
	}{
		{&canonical.Raw{MessageID: "R", Header: canonical.Header{ControlID: "c1"}}, Ident{"R", "c1"}},
		{&canonical.Parsed{MessageID: "P", Header: canonical.Header{ControlID: "c2"}}, Ident{"P", "c2"}},
		{&canonical.Transformed{MessageID: "T", Header: canonical.Header{ControlID: "c3"}}, Ident{"T", "c3"}},
		{&canonical.Out{MessageID: "O", ControlID: "c4"}, Ident{"O", "c4"}},
		{&canonical.DeadLetter{MessageID: "D", ControlID: "c5"}, Ident{"D", "c5"}},
		{&canonical.Delivery{MessageID: "V", ControlID: "c6"}, Ident{"V", "c6"}},
	}
	for _, tt := range tests {
		if got := IdentOf(tt.rec); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.rec.Schema(), got, tt.want)
		}
	}
}

// TestTypedScopedDeadLetter: an Output with DeadLetter set becomes the
// placeholder DeadLetters builds the dead letter from (its Topic and
// Record ignored), in its place among the other outputs; one that names
// no scope is a permanent failure of the input, not a silent whole-input
// dead letter beside written outputs.
func TestTypedScopedDeadLetter(t *testing.T) {
	serde := testSerde(t, map[string]string{"raw": schemas.Raw, "out": schemas.Out})
	ctx := context.Background()
	v, err := serde.Encode(&canonical.Raw{MessageID: "M1", Header: canonical.Header{ControlID: "C1"}, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		scoped Scoped
		err    string
	}{
		{"destination", Scoped{Destination: "lis", Reason: "rule lis-codes: unmapped"}, ""},
		{"program", Scoped{Program: "elr", Reason: "r"}, ""},
		{"whole input", Scoped{Reason: "no route matches ORU^R01"}, ""},
	}
	for _, tt := range tests {
		h := Typed(serde, func(_ context.Context, in *canonical.Raw) ([]Output, error) {
			s := tt.scoped
			return []Output{
				{Topic: "out", Record: &canonical.Out{MessageID: in.MessageID, Destination: "a"}},
				// Topic and Record are ignored beside DeadLetter.
				{Topic: "ignored", Record: &canonical.Raw{}, DeadLetter: &s},
			}, nil
		})
		outs, id, err := h(ctx, &kgo.Record{Key: []byte("k"), Value: v})
		if tt.err != "" {
			if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), tt.err) || outs != nil {
				t.Errorf("%s: %v %v", tt.name, outs, err)
			}
			continue
		}
		if err != nil || len(outs) != 2 || id != (Ident{"M1", "C1"}) {
			t.Fatalf("%s: %v %+v %v", tt.name, outs, id, err)
		}
		if _, ok := ScopedOf(outs[0]); ok || outs[0].Topic != "out" {
			t.Errorf("%s: a normal output taken for a scoped dead letter: %+v", tt.name, outs[0])
		}
		got, ok := ScopedOf(outs[1])
		if !ok || got != tt.scoped || outs[1].Topic == "ignored" || outs[1].Value != nil {
			t.Errorf("%s: placeholder %+v: %+v %v", tt.name, outs[1], got, ok)
		}
	}
	if _, ok := ScopedOf(&kgo.Record{Topic: scopedTopic}); ok {
		t.Errorf("a record without the scope taken for a scoped dead letter")
	}
}
