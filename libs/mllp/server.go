package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
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

// WithMaxFrameSize sets the largest accepted frame. Default
// DefaultMaxFrameSize.
func WithMaxFrameSize(n int) ServerOption { return func(s *Server) { s.maxFrame = n } }

// WithMaxConnections caps concurrent connections; connections beyond it are
// closed at once. Default 0, no cap.
func WithMaxConnections(n int) ServerOption { return func(s *Server) { s.maxConns = n } }

// WithTLSConfig makes the server speak TLS on every connection it accepts.
// Default: plain TCP.
func WithTLSConfig(c *tls.Config) ServerOption { return func(s *Server) { s.tlsConfig = c } }

// WithLogger sets the logger. Default: discard. The server logs connection
// events only, never frame content.
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// WithOversizeReply sets how to answer a frame larger than the maximum: the
// function gets the frame's first bytes and returns the reply to send before
// the connection is closed (nil for none). Default: RejectOversize, an AR
// (or CR) for the message whose MSH the head holds.
func WithOversizeReply(f func(head []byte) []byte) ServerOption {
	return func(s *Server) { s.oversize = f }
}

// Server serves MLLP connections.
type Server struct {
	handler      Handler
	idleTimeout  time.Duration
	readTimeout  time.Duration
	writeTimeout time.Duration
	maxFrame     int
	maxConns     int
	tlsConfig    *tls.Config
	log          *slog.Logger
	oversize     func([]byte) []byte

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
}

// NewServer returns a Server that passes frames to h.
func NewServer(h Handler, opts ...ServerOption) *Server {
	s := &Server{
		handler:      h,
		idleTimeout:  10 * time.Minute,
		readTimeout:  30 * time.Second,
		writeTimeout: 30 * time.Second,
		maxFrame:     DefaultMaxFrameSize,
		log:          slog.New(slog.DiscardHandler),
		listeners:    map[net.Listener]struct{}{},
		conns:        map[*serverConn]struct{}{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.oversize == nil {
		limit := s.maxFrame
		s.oversize = func(head []byte) []byte { return RejectOversize(head, limit) }
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
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Transient accept failures (EMFILE and the like) must not
				// end the listener; back off as net/http does.
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		s.startConn(nc)
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
		}
		_ = nc.Close()
		return
	}
	c := &serverConn{srv: s, nc: nc, id: s.nextID.Add(1)}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// Shutdown stops accepting connections, closes connections that are waiting
// for a frame, lets every frame already being handled finish and get its
// reply, and returns when all connections are closed. If ctx ends first, the
// remaining connections are closed, handlers' contexts are cancelled and
// ctx's error is returned. Shutdown is idempotent and safe without Serve.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
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
			switch {
			case errors.As(err, &tooLarge):
				log.Warn("mllp frame too large; closing connection", logattr.Limit(tooLarge.Limit))
				if s.oversize != nil {
					if reply := s.oversize(tooLarge.Head); reply != nil {
						c.write(conn, reply, log)
					}
				}
			case errors.Is(err, io.EOF):
				log.Debug("mllp connection closed by peer", logattr.SkippedBytes(r.Skipped()))
			default:
				log.Info("mllp connection ended", logattr.Error(err), logattr.SkippedBytes(r.Skipped()))
			}
			return
		}
		reply, err := s.handler.ServeMLLP(s.baseCtx, info, frame)
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
