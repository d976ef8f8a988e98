package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultRecordTimeout bounds the handling of one record: far above what
// a record takes (milliseconds), far below the transaction timeout (60 s)
// the batch must finish within.
const DefaultRecordTimeout = 10 * time.Second

// Timeout gives each try of a record a context that ends after d.
//
// Its class is transient (ErrRecordTimeout), whatever the handler
// returned once the deadline had passed: a record is slow when the
// registry or the broker is, and a timeout during an outage must never
// dead-letter a good message (the handler's own error, a decode failure on
// a cancelled registry call for instance, might say permanent). The record
// is retried and the partition held, visibly (stalled, not ready), until
// it goes through. A handler that ignores its context is not interrupted.
func Timeout(d time.Duration) Middleware {
	return func(next RecordHandler) RecordHandler {
		return func(ctx context.Context, rec *kgo.Record) ([]*kgo.Record, Ident, error) {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			outs, id, err := next(tctx, rec)
			if err != nil && tctx.Err() != nil && ctx.Err() == nil {
				// %v, not %w: a Permanent mark from the handler must not
				// survive into the classifier.
				return nil, id, fmt.Errorf("%w (%v): %v", ErrRecordTimeout, d, err)
			}
			return outs, id, err
		}
	}
}
