package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTimeout(t *testing.T) {
	// slow waits for its context, or d, then fails with err (nil: succeeds).
	slow := func(d time.Duration, err error) RecordHandler {
		return func(ctx context.Context, _ *kgo.Record) ([]*kgo.Record, Ident, error) {
			select {
			case <-ctx.Done():
				if err == nil {
					err = ctx.Err()
				}
				return nil, Ident{MessageID: "M"}, err
			case <-time.After(d):
				return []*kgo.Record{{Topic: "out"}}, Ident{MessageID: "M"}, nil
			}
		}
	}
	permanent := Permanent(errors.New("decoding parsed input: context deadline exceeded"))
	tests := []struct {
		name      string
		h         RecordHandler
		ok        bool
		timedOut  bool
		permanent bool
	}{
		{"fast", slow(0, nil), true, false, false},
		{"slow: transient", slow(time.Minute, nil), false, true, false},
		{"slow, and the handler says permanent: still transient", slow(time.Minute, permanent), false, true, false},
		{"a permanent failure in time stays permanent", func(context.Context, *kgo.Record) ([]*kgo.Record, Ident, error) {
			return nil, Ident{}, permanent
		}, false, false, true},
	}
	for _, tt := range tests {
		outs, _, err := Timeout(20*time.Millisecond)(tt.h)(context.Background(), &kgo.Record{})
		if (err == nil) != tt.ok || errors.Is(err, ErrRecordTimeout) != tt.timedOut || IsPermanent(err) != tt.permanent {
			t.Errorf("%s: %v %v (permanent %v)", tt.name, outs, err, IsPermanent(err))
		}
	}
}
