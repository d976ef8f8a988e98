package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"
)

// ConnInfo describes the connection a frame arrived on.
type ConnInfo struct {
	// ID numbers connections in the order the server accepted them.
	ID         uint64
	RemoteAddr net.Addr
	// TLS is the handshake state on a TLS listener, nil otherwise.
	TLS *tls.ConnectionState
}

// Handler processes one frame and returns the reply to frame back (usually
// an ACK), or nil to send nothing. An error closes the connection without a
// reply, which tells an MLLP sender to resend: return an error only when no
// honest ACK can be given.
type Handler interface {
	ServeMLLP(ctx context.Context, conn ConnInfo, frame []byte) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, conn ConnInfo, frame []byte) ([]byte, error)

// ServeMLLP calls f.
func (f HandlerFunc) ServeMLLP(ctx context.Context, conn ConnInfo, frame []byte) ([]byte, error) {
	return f(ctx, conn, frame)
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithIdleTimeout closes a connection on which no frame starts for d.
// Default 10 minutes: senders keep connections open between bursts, but a
// peer that vanished without a FIN must not hold a slot forever. Zero
// disables it.
func WithIdleTimeout(d time.Duration) ServerOption { return func(s *Server) { s.idleTimeout = d } }

// WithReadTimeout bounds the time from a frame's start block to its end
// block. Default 30 seconds.
func WithReadTimeout(d time.Duration) ServerOption { return func(s *Server) { s.readTimeout = d } }

// WithWriteTimeout bounds writing a reply. Default 30 seconds.
func WithWriteTimeout(d time.Duration) ServerOption { return func(s *Server) { s.writeTimeout = d } }

// WithMaxFrameSize sets the largest accepted frame. Default (and when
// n <= 0) DefaultMaxFrameSize.
func WithMaxFrameSize(n int) ServerOption { return func(s *Server) { s.maxFrame = n } }

// WithMaxConnections caps concurrent connections; connections beyond it are
// closed at once (not held until a slot frees: a sender that is refused
// reconnects, one that is held only times out). Default 0, no cap.
func WithMaxConnections(n int) ServerOption { return func(s *Server) { s.maxConns = n } }

// WithMaxJunk bounds how many bytes a connection may send outside frames
// before a start block (at its start or between two frames) before it is
// taken for something other than MLLP and closed. Default
// DefaultMaxJunk; n < 0 removes the bound.
func WithMaxJunk(n int) ServerOption { return func(s *Server) { s.maxJunk = n } }

// DefaultMaxJunk is the default of WithMaxJunk: far more than the stray
// newlines and NULs some senders put between frames, far less than what a
// client of another protocol sends before it gives up.
const DefaultMaxJunk = 4 << 10

// WithAcceptState calls f with each change of Accepting: true when Serve
// starts, false when accepting starts to fail (for example when the
// process is out of file descriptors), true when it works again, false when
// Serve ends; so readiness can follow the listener. f is called from the
// accept loop, one call at a time and in order; it must not block or call
// back into the Server. Default: none.
func WithAcceptState(f func(accepting bool)) ServerOption {
	return func(s *Server) { s.acceptState = f }
}

// ConnEvents receives connection events, for metrics. Any field may be nil.
// The functions are called concurrently from the accept loop and the
// connection goroutines and must be fast.
type ConnEvents struct {
	// Opened is called when a connection is accepted for serving, Closed
	// when it ends: Opened minus Closed is the number of open connections.
	Opened, Closed func()
	// Rejected is called when a connection is closed at once, with one of
	// the Reject* reasons. A connection refused at the cap is never
	// Opened; one rejected for what it sent was.
	Rejected func(reason string)
}

// WithConnEvents sets the connection event callbacks. Default: none.
func WithConnEvents(e ConnEvents) ServerOption { return func(s *Server) { s.events = e } }

// WithTLSConfig makes the server speak TLS on every connection it accepts.
// Default: plain TCP.
func WithTLSConfig(c *tls.Config) ServerOption { return func(s *Server) { s.tlsConfig = c } }

// WithLogger sets the logger. Default: discard. The server logs connection
// events only, never frame content.
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// WithOversizeReply sets how to answer a frame larger than the maximum: f
// gets the frame's first bytes (at most HeadSize) and the limit it
// exceeded, and returns the reply to send before the connection is closed
// (nil for none). Default: none, the connection is only closed. The
// package knows frames, not HL7: the caller builds the HL7 reject (hl7bus
// ingress answers AR naming the limit).
func WithOversizeReply(f func(head []byte, limit int) []byte) ServerOption {
	return func(s *Server) { s.oversize = f }
}

// WithPanicReply sets how to answer a frame whose handler panicked: f gets
// the frame and returns the reply to send (nil for none). With a reply the
// exchange is complete, so the connection stays open for the next frame;
// without one the connection is closed, which tells the sender to resend.
// A panic in f is recovered too (the connection is then closed without a
// reply). Default: none. The package knows frames, not HL7: the caller
// builds the answer (hl7bus ingress answers AE, CE in enhanced mode, with
// an ERR naming an internal error).
func WithPanicReply(f func(frame []byte) []byte) ServerOption {
	return func(s *Server) { s.panicReply = f }
}

// Server serves MLLP connections.
type Server struct {
	handler      Handler
	idleTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	maxFrame     int
	maxConns     int
	maxJunk      int
	tlsConfig    *tls.Config
	log          *slog.Logger
	oversize     func(head []byte, limit int) []byte
	panicReply   func(frame []byte) []byte
	acceptState  func(bool)
	events       ConnEvents
	// acceptRecovery is how long an Accept must wait without failing
	// before a failing streak counts as over (see acceptLoopState).
	acceptRecovery time.Duration

	// baseCtx is what handlers run under; it is cancelled only when a
	// shutdown gives up waiting, so in-flight frames finish normally.
	baseCtx context.Context
	cancel  context.CancelFunc

	// Lock order: mu before serverConn.mu. closing is atomic so that a
	// connection can check it while holding its own lock.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	nextID    atomic.Uint64
	// closed is closed by the first Shutdown; it wakes accept loops that
	// are backing off.
	closed    chan struct{}
	closeOnce sync.Once

	// acceptMu is a leaf lock (never held while taking another) over the
	// accept state: how many listeners are in a failing streak.
	acceptMu  sync.Mutex
	failing   int
	serving   int
	accepting atomic.Bool
}

// NewServer returns a Server that passes frames to h.
func NewServer(h Handler, opts ...ServerOption) *Server {
	s := &Server{
		handler:      h,
		idleTimeout:  10 * time.Minute,
		readTimeout:  30 * time.Second,
		writeTimeout: 30 * time.Second,
		maxFrame:     DefaultMaxFrameSize,
		maxJunk:      DefaultMaxJunk,
		log:          slog.New(slog.DiscardHandler),
		listeners:    map[net.Listener]struct{}{},
		conns:        map[*serverConn]struct{}{},
		closed:       make(chan struct{}),
		// The longest accept backoff: an Accept that then waits this long
		// without an error has an empty backlog, so nobody is refused.
		acceptRecovery: maxAcceptDelay,
	}
	for _, o := range opts {
		o(s)
	}
	// Resolve the limit here, once: it is both what the reader enforces
	// and what the oversize reply names, so the two cannot disagree (an
	// unset limit was once reported to senders as "0 bytes").
	if s.maxFrame <= 0 {
		s.maxFrame = DefaultMaxFrameSize
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	return s
}

// ListenAndServe listens on addr and serves until Shutdown.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown, then returns ErrClosed.
// Serve takes ownership of ln.
//
// An accept error never ends Serve: running out of file descriptors
// (EMFILE, ENFILE), of buffers, or anything else the kernel reports is
// waited out with a backoff (5 ms doubling to 1 s, as net/http does) and
// retried until the server is shut down, logged once per failing streak
// and reported through WithAcceptState and Accepting. The one exception is
// a listener closed by someone else (net.ErrClosed without a Shutdown):
// nothing can accept on it again, so Serve returns that error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	st := &acceptLoopState{srv: s}
	st.serving(true)
	defer func() {
		st.serving(false)
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		stopWatch := st.watchRecovery()
		nc, err := ln.Accept()
		stopWatch()
		if err != nil {
			if s.isClosing() {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				// Retrying cannot help; the deferred serving(false)
				// reports the listener as no longer accepting.
				return fmt.Errorf("mllp: listener closed outside Shutdown: %w", err)
			}
			delay = nextAcceptDelay(delay)
			st.fail(err, delay)
			select {
			case <-time.After(delay):
			case <-s.closed:
				return ErrClosed
			}
			continue
		}
		delay = 0
		st.ok()
		s.startConn(nc)
	}
}

// maxAcceptDelay caps the accept backoff.
const maxAcceptDelay = time.Second

// nextAcceptDelay is the wait after an accept error that followed a wait of
// prev: 5 ms, doubling, at most maxAcceptDelay.
func nextAcceptDelay(prev time.Duration) time.Duration {
	return min(max(2*prev, 5*time.Millisecond), maxAcceptDelay)
}

// Accepting reports whether the server is serving at least one listener and
// none of its listeners is failing to accept.
func (s *Server) Accepting() bool { return s.accepting.Load() }

// acceptLoopState is one Serve loop's part of the accept state. A failing
// streak starts at an accept error and ends at the next accepted
// connection, or when an Accept has waited acceptRecovery without an
// error: the backlog is then empty, so nobody is being refused, and a
// listener must not stay unready just because readiness itself keeps
// senders away.
type acceptLoopState struct {
	srv *Server
	// The fields below are guarded by srv.acceptMu.
	failing bool
	// attempt numbers the Accept calls, so a recovery timer that fires
	// after its Accept returned does nothing.
	attempt uint64
}

// serving counts the loop in or out of the server's accept state.
func (a *acceptLoopState) serving(on bool) {
	s := a.srv
	s.acceptMu.Lock()
	defer s.acceptMu.Unlock()
	if on {
		s.serving++
	} else {
		s.serving--
		if a.failing {
			a.failing = false
			s.failing--
		}
	}
	s.setAccepting()
}

// fail records an accept error; the first of a streak is logged and
// reported.
func (a *acceptLoopState) fail(err error, retryIn time.Duration) {
	s := a.srv
	s.acceptMu.Lock()
	defer s.acceptMu.Unlock()
	a.attempt++
	if a.failing {
		return
	}
	a.failing = true
	s.failing++
	s.log.Warn("mllp accept failing; retrying until it works again", logattr.Error(err), logattr.Backoff(retryIn))
	s.setAccepting()
}

// ok records an accepted connection.
func (a *acceptLoopState) ok() {
	a.srv.acceptMu.Lock()
	defer a.srv.acceptMu.Unlock()
	a.attempt++
	a.recover()
}

// recover ends a failing streak; the caller holds acceptMu.
func (a *acceptLoopState) recover() {
	if !a.failing {
		return
	}
	a.failing = false
	a.srv.failing--
	a.srv.log.Info("mllp accepting again")
	a.srv.setAccepting()
}

// watchRecovery starts the timer that ends a failing streak if the coming
// Accept waits long enough; the returned function stops it.
func (a *acceptLoopState) watchRecovery() (stop func()) {
	s := a.srv
	s.acceptMu.Lock()
	defer s.acceptMu.Unlock()
	if !a.failing {
		return func() {}
	}
	attempt := a.attempt
	t := time.AfterFunc(s.acceptRecovery, func() {
		s.acceptMu.Lock()
		defer s.acceptMu.Unlock()
		if a.attempt == attempt {
			a.recover()
		}
	})
	return func() { t.Stop() }
}

// setAccepting publishes the accept state and reports a change; the caller
// holds acceptMu, which keeps the reports in order.
func (s *Server) setAccepting() {
	now := s.serving > 0 && s.failing == 0
	if s.accepting.Swap(now) != now && s.acceptState != nil {
		s.acceptState(now)
	}
}

func (s *Server) isClosing() bool { return s.closing.Load() }

func (s *Server) startConn(nc net.Conn) {
	s.mu.Lock()
	if s.closing.Load() || (s.maxConns > 0 && len(s.conns) >= s.maxConns) {
		full := !s.closing.Load()
		s.mu.Unlock()
		if full {
			s.log.Warn("mllp connection refused: too many connections", logattr.Peer(nc.RemoteAddr().String()), logattr.Limit(s.maxConns))
			s.rejected(RejectMaxConnections)
		}
		// Closed at once, so the refused sender sees it and retries
		// rather than waiting on a connection nobody reads.
		_ = nc.Close()
		return
	}
	c := &serverConn{srv: s, nc: nc, id: s.nextID.Add(1)}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if s.events.Opened != nil {
		s.events.Opened()
	}
	go c.serve()
}

func (s *Server) rejected(reason string) {
	if s.events.Rejected != nil {
		s.events.Rejected(reason)
	}
}

// Shutdown stops accepting connections, closes connections that are waiting
// for a frame, lets every frame already being handled finish and get its
// reply, and returns when all connections are closed. If ctx ends first, the
// remaining connections are closed, handlers' contexts are cancelled and
// ctx's error is returned. Shutdown is idempotent and safe without Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

type serverConn struct {
	srv *Server
	nc  net.Conn
	id  uint64

	mu   sync.Mutex
	busy bool // a frame is being read or handled
}

// closeIfIdle closes the connection unless it is in the middle of a frame;
// a busy connection closes itself after writing its reply.
func (c *serverConn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.busy {
		_ = c.nc.Close()
	}
}

func (c *serverConn) setBusy(b bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = b
	return c.srv.isClosing()
}

func (c *serverConn) serve() {
	s := c.srv
	defer func() {
		_ = c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if s.events.Closed != nil {
			s.events.Closed()
		}
		s.wg.Done()
	}()
	info := ConnInfo{ID: c.id, RemoteAddr: c.nc.RemoteAddr()}
	conn := c.nc
	if s.tlsConfig != nil {
		tc := tls.Server(c.nc, s.tlsConfig)
		_ = tc.SetDeadline(time.Now().Add(s.readTimeout))
		if err := tc.HandshakeContext(s.baseCtx); err != nil {
			s.log.Warn("mllp TLS handshake failed", logattr.Conn(c.id), logattr.Peer(info.RemoteAddr.String()), logattr.Error(err))
			return
		}
		st := tc.ConnectionState()
		info.TLS = &st
		conn = tc
	}
	log := s.log.With(logattr.Conn(c.id), logattr.Peer(info.RemoteAddr.String()))
	log.Debug("mllp connection opened")

	r := NewReader(conn, s.maxFrame)
	r.RejectForeign = true
	if s.maxJunk > 0 {
		r.MaxJunk = s.maxJunk
	}
	r.OnFrameStart = func() {
		// From the start block on, the frame is in flight: Shutdown waits
		// for it instead of cutting it off.
		c.setBusy(true)
		if s.readTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.readTimeout))
		}
	}
	for {
		if s.idleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.idleTimeout))
		} else {
			_ = conn.SetReadDeadline(time.Time{})
		}
		frame, err := r.ReadFrame()
		if closing := c.setBusy(err == nil); closing && err != nil {
			return
		}
		if err != nil {
			var tooLarge *FrameTooLargeError
			var foreign *NotMLLPError
			switch {
			case errors.As(err, &tooLarge):
				log.Warn("mllp frame too large; closing connection", logattr.Limit(tooLarge.Limit))
				if s.oversize != nil {
					if reply := s.oversize(tooLarge.Head, tooLarge.Limit); reply != nil {
						c.write(conn, reply, log)
					}
				}
			case errors.As(err, &foreign):
				// Whatever else it sent is never read: a TLS or HTTP client
				// learns at once that this is not its protocol.
				log.Warn("mllp connection rejected: not MLLP", logattr.Reason(foreign.Reason), logattr.SkippedBytes(r.Skipped()))
				s.rejected(foreign.Reason)
			case errors.Is(err, io.EOF):
				log.Debug("mllp connection closed by peer", logattr.SkippedBytes(r.Skipped()))
			default:
				log.Info("mllp connection ended", logattr.Error(err), logattr.SkippedBytes(r.Skipped()))
			}
			return
		}
		reply, err := s.serveFrame(info, frame)
		if err != nil {
			log.Warn("mllp handler failed; closing connection without reply", logattr.Error(err))
			return
		}
		if reply != nil && !c.write(conn, reply, log) {
			return
		}
		if closing := c.setBusy(false); closing {
			return
		}
	}
}

// serveFrame calls the handler, turning a panic into the panic reply
// (WithPanicReply) or, without one, ErrHandlerPanicked: one frame that
// trips a bug must cost at most its connection, never the listener and
// every other sender's connections with it.
func (s *Server) serveFrame(info ConnInfo, frame []byte) (reply []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			// The panic value may quote the frame, so only its type and the
			// stack (function names and offsets) are logged.
			s.log.Error("mllp handler panicked", logattr.PanicType(fmt.Sprintf("%T", v)), logattr.Stack(string(debug.Stack())))
			reply, err = s.replyToPanic(frame)
		}
	}()
	return s.handler.ServeMLLP(s.baseCtx, info, frame)
}

// replyToPanic returns the panic reply to frame, or ErrHandlerPanicked
// when there is none (no WithPanicReply, nil from it, or it panicked too).
func (s *Server) replyToPanic(frame []byte) (reply []byte, err error) {
	if s.panicReply == nil {
		return nil, ErrHandlerPanicked
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("mllp panic reply panicked", logattr.PanicType(fmt.Sprintf("%T", v)), logattr.Stack(string(debug.Stack())))
			reply, err = nil, ErrHandlerPanicked
		}
	}()
	if reply = s.panicReply(frame); reply == nil {
		return nil, ErrHandlerPanicked
	}
	return reply, nil
}

func (c *serverConn) write(conn net.Conn, reply []byte, log *slog.Logger) bool {
	if c.srv.writeTimeout > 0 {
		_ = conn.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout))
	}
	if err := WriteFrame(conn, reply); err != nil {
		log.Info("mllp reply not written", logattr.Error(err))
		return false
	}
	return true
}
