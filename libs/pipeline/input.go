package pipeline

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// inputKey carries the Kafka record a Handler is handling in its context.
type inputKey struct{}

// withInput returns ctx carrying rec, the record being handled.
func withInput(ctx context.Context, rec *kgo.Record) context.Context {
	return context.WithValue(ctx, inputKey{}, rec)
}

// InputHeader returns the value of the header key on the input record a
// Handler is handling (Typed puts the record in the handler's context),
// and whether the record has it. A handler needs this only for what
// travels beside a record rather than in it: route reads the replay
// destinations a replay job sets (kafka.HeaderReplayDestinations). With
// several headers of the same key, the first counts. Outside a handler
// it reports false.
func InputHeader(ctx context.Context, key string) ([]byte, bool) {
	rec, _ := ctx.Value(inputKey{}).(*kgo.Record)
	if rec == nil {
		return nil, false
	}
	for _, h := range rec.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}
