package pipeline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRecover(t *testing.T) {
	type secret struct{ name string }
	tests := []struct {
		name      string
		h         RecordHandler
		panicked  bool
		panicType string
	}{
		{"no panic passes", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			return []*kgo.Record{{Topic: "out"}}, Ident{MessageID: "M"}, nil
		}, false, ""},
		{"an error passes", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			return nil, Ident{MessageID: "M"}, errors.New("registry unavailable")
		}, false, ""},
		{"a string panic", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			panic("index out of range handling ZZTESTNAME")
		}, true, "string"},
		{"an error panic", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			panic(errors.New("ZZTESTNAME"))
		}, true, "*errors.errorString"},
		{"a struct panic", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			panic(secret{"ZZTESTNAME"})
		}, true, "pipeline.secret"},
		{"a runtime error", func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			_ = rec.Headers[5] // out of range
			return nil, Ident{}, nil
		}, true, "runtime.boundsError"},
	}
	for _, tt := range tests {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		outs, _, err := Recover(log)(tt.h)(context.Background(), &kgo.Record{Topic: "in", Offset: 7})
		if !tt.panicked {
			if logs.Len() != 0 || IsPermanent(err) {
				t.Errorf("%s: logged %q, err %v", tt.name, logs.String(), err)
			}
			continue
		}
		if outs != nil || !errors.Is(err, ErrHandlerPanicked) || ErrorClass(err) != ClassPanic {
			t.Errorf("%s: %v %v (class %s)", tt.name, outs, err, ErrorClass(err))
		}
		if strings.Contains(err.Error(), "ZZTESTNAME") || strings.Contains(logs.String(), "ZZTESTNAME") {
			t.Errorf("%s: the panic value was quoted: %v\n%s", tt.name, err, logs.String())
		}
		if !strings.Contains(logs.String(), "panic_type="+tt.panicType) || !strings.Contains(logs.String(), "stack=") ||
			!strings.Contains(logs.String(), "offset=7") {
			t.Errorf("%s: logs lack the type, stack or offset: %s", tt.name, logs.String())
		}
	}
}
