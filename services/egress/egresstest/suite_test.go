package egresstest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/egress"
)

// recorder is a T that records failures instead of failing the test, so
// that the suite itself can be tested: Fatalf ends the case's goroutine
// as testing.T's does.
type recorder struct {
	ctx      context.Context
	mu       sync.Mutex
	failures []string
	cleanups []func()
}

func (r *recorder) Helper()                        {}
func (r *recorder) Logf(string, ...any)            {}
func (r *recorder) Context() context.Context       { return r.ctx }
func (r *recorder) Cleanup(f func())               { r.mu.Lock(); r.cleanups = append(r.cleanups, f); r.mu.Unlock() }
func (r *recorder) Errorf(format string, a ...any) { r.fail(fmt.Sprintf(format, a...)) }
func (r *recorder) Fatalf(format string, a ...any) {
	r.fail(fmt.Sprintf(format, a...))
	runtime.Goexit()
}

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, msg)
}

// runRecorded runs every case of the suite against f under a recorder and
// returns the failures of each case that failed.
func runRecorded(t *testing.T, f Factory) map[string][]string {
	failed := map[string][]string{}
	for _, c := range cases {
		r := &recorder{ctx: t.Context()}
		done := make(chan struct{})
		go func() {
			defer close(done)
			runCase(r, c, f)
		}()
		<-done
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
		if len(r.failures) > 0 {
			failed[c.name] = r.failures
		}
	}
	return failed
}

// mllpSender builds the real MLLP sender to an MLLP peer.
func mllpSender(t T, s Settings) (egress.Sender, Peer) {
	p := NewMLLPPeer(t)
	d := egress.Destination{Name: "conformance", Address: p.Addr(), AckTimeout: s.AckTimeout}.WithDefaults()
	snd, err := egress.MLLP().NewSender(d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("mllp sender: %v", err)
	}
	return snd, p
}

// liar reports every message delivered without sending it.
type liar struct{}

func (liar) Send(context.Context, *canonical.Out) egress.Result {
	return egress.Result{Verdict: egress.Delivered, Answered: true, Reply: []byte("ok")}
}
func (liar) Close() error { return nil }

// nakIgnorer sends for real but takes every answer for delivery.
type nakIgnorer struct{ egress.Sender }

func (n nakIgnorer) Send(ctx context.Context, m *canonical.Out) egress.Result {
	r := n.Sender.Send(ctx, m)
	if r.Verdict == egress.Failed || r.Verdict == egress.Rejected {
		r.Verdict, r.Class = egress.Delivered, ""
	}
	return r
}

// TestSuiteFailsBrokenSenders runs the suite against senders that break
// the contract: each must fail exactly the cases that check what it
// breaks, and the real MLLP sender, under the same recorder, none.
func TestSuiteFailsBrokenSenders(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Factory
		want []string // the cases that must fail
	}{
		{"mllp sender", mllpSender, nil},
		{"delivered without sending", func(t T, s Settings) (egress.Sender, Peer) {
			snd, p := mllpSender(t, s)
			_ = snd.Close()
			return liar{}, p
		}, []string{"AckNak", "Delivery", "Garbage", "OrderPerKey", "Reconnect", "Timeout", "Unreachable"}},
		{"ignores NAKs", func(t T, s Settings) (egress.Sender, Peer) {
			snd, p := mllpSender(t, s)
			return nakIgnorer{snd}, p
		}, []string{"AckNak", "Garbage", "Timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := runRecorded(t, tc.f)
			if got := slices.Sorted(maps.Keys(failed)); !slices.Equal(got, tc.want) {
				t.Errorf("failed cases %v, want %v", got, tc.want)
				for c, msgs := range failed {
					t.Logf("%s: %v", c, msgs)
				}
			}
		})
	}
}
