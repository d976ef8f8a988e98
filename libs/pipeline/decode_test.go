package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

func TestDecode(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	cl, _ := sr.NewClient(sr.URLs(reg.URL()))
	serde := canonical.NewSerde(cl)
	ctx := context.Background()
	for topic, s := range map[string]string{"raw": schemas.Raw, "out": schemas.Out} {
		if _, err := serde.Register(ctx, topic, s); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := serde.Encode(&canonical.Raw{MessageID: "M1", Payload: []byte("x")})
	out, _ := serde.Encode(&canonical.Out{MessageID: "M2", Payload: []byte("x")})

	if r, err := Decode[*canonical.Raw](ctx, serde, raw); err != nil || r.MessageID != "M1" {
		t.Errorf("raw: %v %v", r, err)
	}
	tests := []struct {
		name      string
		value     []byte
		permanent bool
		text      string
	}{
		{"wrong kind", out, true, "expected a raw record, got out"},
		{"not wire format", []byte("MSH|"), true, "not Confluent wire format"},
		{"corrupt body", append(raw[:5:5], 0xff, 0xff), true, "decoding raw input"},
		{"unknown schema id", []byte{0, 0, 0, 9, 9, 2}, false, "unknown schema"},
	}
	for _, tt := range tests {
		_, err := Decode[*canonical.Raw](ctx, serde, tt.value)
		if err == nil || IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: %v (permanent %v)", tt.name, err, IsPermanent(err))
		}
	}
}
