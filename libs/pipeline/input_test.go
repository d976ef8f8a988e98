package pipeline

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestInputHeader(t *testing.T) {
	serde := testSerde(t, map[string]string{"raw": schemas.Raw})
	v, err := serde.Encode(&canonical.Raw{MessageID: "M1", Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		val []byte
		ok  bool
	}
	var got seen
	h := Typed(serde, func(ctx context.Context, _ *canonical.Raw) ([]Output, error) {
		got.val, got.ok = InputHeader(ctx, "want")
		return nil, nil
	})
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		want    seen
	}{
		{"absent", []kgo.RecordHeader{{Key: "other", Value: []byte("x")}}, seen{nil, false}},
		{"present", []kgo.RecordHeader{{Key: "other", Value: []byte("x")}, {Key: "want", Value: []byte("a,b")}}, seen{[]byte("a,b"), true}},
		{"present and empty", []kgo.RecordHeader{{Key: "want", Value: []byte{}}}, seen{[]byte{}, true}},
		{"the first of two", []kgo.RecordHeader{{Key: "want", Value: []byte("1")}, {Key: "want", Value: []byte("2")}}, seen{[]byte("1"), true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = seen{}
			if _, _, err := h(context.Background(), &kgo.Record{Value: v, Headers: tt.headers}); err != nil {
				t.Fatal(err)
			}
			if got.ok != tt.want.ok || string(got.val) != string(tt.want.val) {
				t.Errorf("InputHeader = %q, %v; want %q, %v", got.val, got.ok, tt.want.val, tt.want.ok)
			}
		})
	}
	if _, ok := InputHeader(context.Background(), "want"); ok {
		t.Error("InputHeader outside a handler reports a header")
	}
}
