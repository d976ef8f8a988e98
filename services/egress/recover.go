package egress

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// deliver is one slot's try of j's record, with the slot's sender.
//
// A panic while processing a job (in the sender or in egress) must not
// take the process down, and must not crash it again on the same record
// after a restart: the job's record is dead-lettered with class panic and
// the slot goes on. The sender that was in use is closed and replaced,
// since whatever state it held when it panicked cannot be trusted.
func (w *worker) deliver(ctx context.Context, slot int, j *job) pipeline.Outcome {
	snd := w.snds[slot]
	if snd == nil {
		// Rebuilding after a panic failed: stop the worker rather than
		// pass records undelivered.
		return pipeline.Outcome{Kind: pipeline.Fatal, Err: fmt.Errorf("no %s sender after a panic", w.d.Protocol)}
	}
	o, panicType := w.safeProcess(ctx, j, snd)
	if panicType != "" {
		o = w.deadLetterPanic(ctx, j, panicType)
		_ = snd.Close()
		var err error
		if w.snds[slot], err = w.adapter.NewSender(w.d, w.log); err != nil {
			w.log.Error("rebuilding the sender after a panic", logattr.Error(err))
			w.snds[slot] = nil
		}
	}
	w.reached(o)
	return o
}

// safeProcess is process with a panic caught; panicType is the panic
// value's type, "" when there was none. Only that type and the stack
// (function names and offsets) are logged: the value may quote the
// message.
func (w *worker) safeProcess(ctx context.Context, j *job, snd Sender) (o pipeline.Outcome, panicType string) {
	defer func() {
		if v := recover(); v != nil {
			panicType = fmt.Sprintf("%T", v)
			w.log.Error("delivering a message panicked; dead-lettering it", logattr.MessageID(ident(j).MessageID),
				logattr.Topic(j.Rec.Topic), logattr.Partition(j.Rec.Partition), logattr.Offset(j.Rec.Offset),
				logattr.PanicType(panicType), logattr.Stack(string(debug.Stack())))
		}
	}()
	return w.process(ctx, j, snd), ""
}

// deadLetterPanic writes j's record to dlq.egress with class panic, and
// its delivery record when the message was decoded.
func (w *worker) deadLetterPanic(ctx context.Context, j *job, panicType string) pipeline.Outcome {
	attempt := j.State.attempts + 1
	reason := fmt.Sprintf("%v (a %s)", ErrPanicked, panicType)
	if out := j.State.out; out != nil {
		w.receipt(&canonical.Delivery{MessageID: out.MessageID, ControlID: out.ControlID, Destination: w.d.Name,
			Attempt: attempt, Outcome: canonical.OutcomeDeadLettered, Error: reason, At: time.Now(), Source: sourceOf(j.Rec)})
	}
	return w.deadLetter(ctx, j, ident(j), pipeline.ClassPanic, reason, attempt, false)
}

// ident names j's message as far as it was decoded.
func ident(j *job) pipeline.Ident {
	out := j.State.out
	if out == nil {
		return pipeline.Ident{}
	}
	return pipeline.Ident{MessageID: out.MessageID, ControlID: out.ControlID}
}
