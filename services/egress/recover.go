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

// send is one sender goroutine: it processes the jobs it is handed on snd
// until jobs is closed, then closes snd.
//
// A panic while processing a job (in the sender or in egress) must not
// take the process down, and must not crash it again on the same record
// after a restart: the job's record is dead-lettered with class panic and
// the goroutine goes on. The sender that was in use is closed and replaced,
// since whatever state it held when it panicked cannot be trusted.
func (w *worker) send(ctx context.Context, snd Sender, jobs <-chan *job, results chan<- result) {
	defer func() {
		if snd != nil {
			_ = snd.Close()
		}
	}()
	for j := range jobs {
		if snd == nil {
			// Rebuilding after a panic failed: stop the worker rather
			// than pass records undelivered.
			results <- result{j: j, kind: fatalResult, err: fmt.Errorf("no %s sender after a panic", w.d.Protocol)}
			continue
		}
		r, panicType := w.safeProcess(ctx, j, snd)
		if panicType != "" {
			r = w.deadLetterPanic(ctx, j, panicType)
			_ = snd.Close()
			var err error
			if snd, err = w.adapter.NewSender(w.d, w.log); err != nil {
				w.log.Error("rebuilding the sender after a panic", logattr.Error(err))
				snd = nil
			}
		}
		results <- r
	}
}

// safeProcess is process with a panic caught; panicType is the panic
// value's type, "" when there was none. Only that type and the stack
// (function names and offsets) are logged: the value may quote the
// message.
func (w *worker) safeProcess(ctx context.Context, j *job, snd Sender) (r result, panicType string) {
	defer func() {
		if v := recover(); v != nil {
			panicType = fmt.Sprintf("%T", v)
			w.log.Error("delivering a message panicked; dead-lettering it", logattr.MessageID(j.ident().MessageID),
				logattr.Topic(j.rec.Topic), logattr.Partition(j.rec.Partition), logattr.Offset(j.rec.Offset),
				logattr.PanicType(panicType), logattr.Stack(string(debug.Stack())))
		}
	}()
	return w.process(ctx, j, snd), ""
}

// deadLetterPanic writes j's record to dlq.egress with class panic, and
// its delivery record when the message was decoded.
func (w *worker) deadLetterPanic(ctx context.Context, j *job, panicType string) result {
	attempt := j.attempts + 1
	reason := fmt.Sprintf("%v (a %s)", ErrPanicked, panicType)
	if out := j.out; out != nil {
		w.receipt(&canonical.Delivery{MessageID: out.MessageID, ControlID: out.ControlID, Destination: w.d.Name,
			Attempt: attempt, Outcome: canonical.OutcomeDeadLettered, Error: reason, At: time.Now()})
	}
	return w.deadLetter(ctx, j, j.ident(), pipeline.ClassPanic, reason, attempt, false)
}

// ident names j's message as far as it was decoded.
func (j *job) ident() pipeline.Ident {
	if j.out == nil {
		return pipeline.Ident{}
	}
	return pipeline.Ident{MessageID: j.out.MessageID, ControlID: j.out.ControlID}
}
