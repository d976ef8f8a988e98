package mllp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails Accept with the queued errors, in order, before it
// hands out real connections; with failForever it fails until closed, as a
// listener does while the process is out of descriptors.
type flakyListener struct {
	net.Listener
	mu          sync.Mutex
	errs        []error
	failForever bool
	closed      bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	if l.failForever {
		l.mu.Unlock()
		return nil, acceptErr(syscall.EMFILE)
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *flakyListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// acceptErr is what the net package returns for a failed accept(2).
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func repeatErr(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestServeSurvivesAcceptErrors(t *testing.T) {
	tests := []struct {
		name string
		errs []error
	}{
		{"EMFILE", repeatErr(acceptErr(syscall.EMFILE), 6)},
		{"ENFILE", repeatErr(acceptErr(syscall.ENFILE), 3)},
		{"ECONNABORTED", repeatErr(acceptErr(syscall.ECONNABORTED), 1)},
		{"ENOBUFS then EMFILE", append(repeatErr(acceptErr(syscall.ENOBUFS), 2), acceptErr(syscall.EMFILE))},
		{"unknown error", repeatErr(errors.New("something odd"), 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := &flakyListener{Listener: inner, errs: append([]error(nil), tt.errs...)}
			s := NewServer(echoAck)
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			defer func() {
				_ = s.Shutdown(context.Background())
				if err := <-served; !errors.Is(err, ErrClosed) {
					t.Errorf("Serve returned %v, want ErrClosed", err)
				}
			}()

			c := NewClient(inner.Addr().String(), WithAckTimeout(5*time.Second))
			defer c.Close()
			reply, err := c.Send(context.Background(), []byte("MSH|after"))
			if err != nil || string(reply) != "ACK:MSH|after" {
				t.Fatalf("after %d accept errors: reply %q, %v", len(tt.errs), reply, err)
			}
			select {
			case err := <-served:
				t.Fatalf("Serve returned %v after accept errors", err)
			default:
			}
		})
	}
}

// recordingHandler keeps the messages of the log records it gets.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// stateRecorder collects WithAcceptState reports.
type stateRecorder struct {
	mu     sync.Mutex
	states []bool
}

func (r *stateRecorder) record(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, ok)
}

func (r *stateRecorder) get() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.states...)
}

// TestAcceptStateFollowsAStreak checks one failing streak is logged once,
// reported as not accepting, and reported as accepting again once a
// connection is accepted.
func TestAcceptStateFollowsAStreak(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner, errs: repeatErr(acceptErr(syscall.EMFILE), 5)}
	logs := &recordingHandler{}
	var states stateRecorder
	s := NewServer(echoAck, WithLogger(slog.New(logs)), WithAcceptState(states.record))
	s.acceptRecovery = time.Hour // only an accepted connection ends the streak here
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	waitFor(t, "the failing streak to be reported", func() bool { return len(states.get()) >= 2 })
	if s.Accepting() {
		t.Error("Accepting() = true while Accept fails")
	}
	c := NewClient(inner.Addr().String(), WithAckTimeout(5*time.Second))
	defer c.Close()
	if _, err := c.Send(context.Background(), []byte("MSH|1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery to be reported", func() bool { return len(states.get()) >= 3 })
	if !s.Accepting() {
		t.Error("Accepting() = false after a connection was accepted")
	}
	if got := states.get(); !equalBools(got, []bool{true, false, true}) {
		t.Errorf("accept states %v, want [true false true]", got)
	}
	if n := logs.count("mllp accept failing; retrying until it works again"); n != 1 {
		t.Errorf("streak of 5 accept errors logged %d times, want once", n)
	}
	if n := logs.count("mllp accepting again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	_ = s.Shutdown(context.Background())
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Errorf("Serve = %v", err)
	}
	if s.Accepting() {
		t.Error("Accepting() = true after Shutdown")
	}
}

// TestAcceptStateRecoversWithEmptyBacklog: after the errors stop, an
// Accept that simply waits (nobody connecting) ends the streak, or an
// unready listener would keep away the senders whose connection would
// prove it works.
func TestAcceptStateRecoversWithEmptyBacklog(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner, errs: repeatErr(acceptErr(syscall.ENFILE), 3)}
	var states stateRecorder
	s := NewServer(echoAck, WithAcceptState(states.record))
	s.acceptRecovery = 50 * time.Millisecond
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	waitFor(t, "recovery without a connection", func() bool { return len(states.get()) >= 3 })
	if got := states.get(); !equalBools(got, []bool{true, false, true}) || !s.Accepting() {
		t.Errorf("accept states %v (Accepting %v), want [true false true]", got, s.Accepting())
	}
	_ = s.Shutdown(context.Background())
	<-served
}

// TestShutdownDuringAcceptBackoff: Shutdown must not wait out the backoff.
func TestShutdownDuringAcceptBackoff(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner, failForever: true}
	s := NewServer(echoAck)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	time.Sleep(1500 * time.Millisecond) // the backoff has reached its 1 s cap
	start := time.Now()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve still running after Shutdown")
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Serve took %v to end after Shutdown", d)
	}
}

// TestServeListenerClosedElsewhere: a listener nobody can accept on again
// ends Serve with an error rather than a retry loop, and says so.
func TestServeListenerClosedElsewhere(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var states stateRecorder
	s := NewServer(echoAck, WithAcceptState(states.record))
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	waitFor(t, "Serve to start", s.Accepting)
	_ = ln.Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve kept retrying a closed listener")
	}
	if got := states.get(); len(got) == 0 || got[len(got)-1] {
		t.Errorf("accept states %v, want the last one false", got)
	}
	_ = s.Shutdown(context.Background())
}

func TestNextAcceptDelay(t *testing.T) {
	var d time.Duration
	var got []time.Duration
	for range 10 {
		d = nextAcceptDelay(d)
		got = append(got, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
