package modules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// DefaultShutdownTimeout bounds a whole shutdown (ingress's drain
// included) before Run gives up on the modules still running.
const DefaultShutdownTimeout = 30 * time.Second

// running is a started module.
type running struct {
	mod    Module
	svc    Service
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, set before done closes
}

// Run constructs and starts mods in order (dependencies first, as Resolve
// returns them), each constructor after the modules before it have
// started; runs them until ctx ends or one of them stops; then shuts them
// down in order (see stopOrder), within shutdownTimeout for the whole
// shutdown: after it, the modules still running are left to the end of
// the process and Run returns ErrForcedStop. It returns every module's
// error.
func Run(ctx context.Context, f *config.File, d Deps, mods []Module, shutdownTimeout time.Duration) error {
	if shutdownTimeout <= 0 {
		shutdownTimeout = DefaultShutdownTimeout
	}
	// Each module has its own context, cancelled in shutdown order, not
	// all at once when ctx ends.
	base := context.WithoutCancel(ctx)
	stopped := make(chan *running, len(mods))
	var started []*running
	var cause error
	for _, m := range mods {
		svc, err := m.New(f, d)
		if err != nil {
			cause = fmt.Errorf("%s: %w", m.Name, err)
			break
		}
		mctx, cancel := context.WithCancel(base)
		r := &running{mod: m, svc: svc, cancel: cancel, done: make(chan struct{})}
		if st, ok := svc.(Starter); ok {
			if err := st.Start(mctx); err != nil {
				cause = fmt.Errorf("%s: %w", m.Name, err)
				if sp, ok := svc.(Stopper); ok {
					// A failed Start may have opened part of what it
					// opens (some listeners of several).
					sctx, scancel := context.WithTimeout(base, shutdownTimeout)
					_ = sp.Stop(sctx)
					scancel()
				}
				cancel()
				break
			}
		}
		started = append(started, r)
		go func() {
			defer close(r.done)
			r.err = svc.Run(mctx)
			stopped <- r
		}()
	}
	if cause == nil {
		select {
		case <-ctx.Done():
		case r := <-stopped:
			// One module stopped on its own: the others stop too, rather
			// than run an exchange with a part missing.
			if r.err == nil {
				cause = fmt.Errorf("%s: %w", r.mod.Name, ErrStoppedEarly)
			}
		}
	}
	d.Log.Info("shutting down")
	return errors.Join(cause, shutdown(started, shutdownTimeout, d))
}

// shutdown stops the started modules in stopOrder, each one's Stop first
// (if it has one), then its context, then waits for its Run.
func shutdown(started []*running, timeout time.Duration, d Deps) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	order := stopOrder(started)
	for i, r := range order {
		if sp, ok := r.svc.(Stopper); ok {
			if err := sp.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stopping %s: %w", r.mod.Name, err))
			}
		}
		r.cancel()
		select {
		case <-r.done:
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.mod.Name, r.err))
			}
		case <-ctx.Done():
			var left []string
			for _, o := range order[i:] {
				o.cancel()
				left = append(left, o.mod.Name)
			}
			d.Log.Error("shutdown timed out; leaving the modules still running to the end of the process",
				logattr.Stage(strings.Join(left, ",")))
			return errors.Join(append(errs, fmt.Errorf("%w after %v: %s still running", ErrForcedStop, timeout, strings.Join(left, ", ")))...)
		}
	}
	return errors.Join(errs...)
}

// stopOrder returns the order of shutdown: first the modules no other
// running module depends on, upstream before downstream (ingress, which
// reads no topic, first: it stops accepting messages and drains what is in
// flight; then the stages after it along the topics, so each finds its
// input's writer stopped); last the modules others depend on (the broker
// and the registry), in reverse start order, so every stage can still
// commit and close while stopping.
func stopOrder(started []*running) []*running {
	needed := map[string]bool{}
	writers := map[string][]int{}
	for i, r := range started {
		for _, dep := range r.mod.Deps {
			needed[dep] = true
		}
		for _, t := range r.mod.Outputs {
			writers[t] = append(writers[t], i)
		}
	}
	depth := make([]int, len(started))
	state := make([]int, len(started)) // 0 new, 1 computing, 2 done
	var flow func(i int) int
	flow = func(i int) int {
		if state[i] != 0 {
			return depth[i] // a topic cycle counts from where it was entered
		}
		state[i] = 1
		for _, w := range writers[started[i].mod.Input] {
			if w != i && state[w] != 1 {
				depth[i] = max(depth[i], flow(w)+1)
			}
		}
		state[i] = 2
		return depth[i]
	}
	var first, last []*running
	for i, r := range started {
		if needed[r.mod.Name] {
			last = append(last, r)
			continue
		}
		flow(i)
		first = append(first, r)
	}
	slices.SortStableFunc(first, func(a, b *running) int {
		return depth[slices.Index(started, a)] - depth[slices.Index(started, b)]
	})
	slices.Reverse(last)
	return append(first, last...)
}
