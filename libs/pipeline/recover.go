package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/logattr"
)

// Recover turns a panic of the handler into a permanent failure of class
// ClassPanic: a record that trips a bug is dead-lettered (and can be
// replayed once the bug is fixed) and the partition moves on, instead of
// the process crashing, restarting on the same uncommitted record and
// crashing again. The panic's type and stack are logged; its value never
// is, in the log or the dead letter, because it may quote the message.
func Recover(log *slog.Logger) Middleware {
	return func(next RecordHandler) RecordHandler {
		return func(ctx context.Context, rec *kgo.Record) (outs []*kgo.Record, id Ident, err error) {
			defer func() {
				if v := recover(); v != nil {
					log.Error("handler panicked; dead-lettering the record", logattr.MessageID(id.MessageID),
						logattr.Topic(rec.Topic), logattr.Partition(rec.Partition), logattr.Offset(rec.Offset),
						logattr.PanicType(fmt.Sprintf("%T", v)), logattr.Stack(string(debug.Stack())))
					outs, err = nil, PermanentClass(ClassPanic, fmt.Errorf("%w (a %T)", ErrHandlerPanicked, v))
				}
			}()
			return next(ctx, rec)
		}
	}
}
