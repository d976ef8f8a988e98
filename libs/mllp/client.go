package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithAckTimeout bounds the wait for the reply to a message. Default 30
// seconds, the figure most interface specifications quote.
func WithAckTimeout(d time.Duration) ClientOption { return func(c *Client) { c.ackTimeout = d } }

// WithDialTimeout bounds connection establishment. Default 10 seconds.
func WithDialTimeout(d time.Duration) ClientOption { return func(c *Client) { c.dialTimeout = d } }

// WithBackoff makes Send wait before redialling after a failure: the wait
// starts at initial and doubles up to max, and a successful exchange resets
// it. Default: no wait, for callers that own their retry policy (egress
// backs off per message and probes a destination that is down; a second
// backoff here would only add to it). Simple callers that resend in a loop
// (the CLI, the load generator) use it so as not to spin against a receiver
// that is down.
func WithBackoff(initial, max time.Duration) ClientOption {
	return func(c *Client) { c.backoffMin, c.backoffMax = initial, max }
}

// WithClientTLS makes the client speak TLS. Default: plain TCP.
func WithClientTLS(cfg *tls.Config) ClientOption { return func(c *Client) { c.tlsConfig = cfg } }

// WithClientMaxFrameSize bounds the size of replies. Default
// DefaultMaxFrameSize.
func WithClientMaxFrameSize(n int) ClientOption { return func(c *Client) { c.maxFrame = n } }

// WithRelease2 makes Send wait for an MLLP release 2 commit acknowledgement
// (a frame holding the single byte 0x06, or 0x15 for a NAK) instead of an
// HL7 ACK. A receiver that answers with an HL7 message anyway has that
// message returned. Default: off (release 1, the HL7 ACK is the reply).
func WithRelease2() ClientOption { return func(c *Client) { c.release2 = true } }

// Client sends messages to one MLLP receiver over a persistent connection.
// Send calls are serialised: MLLP allows one outstanding message per
// connection, so ordering on one Client is the order of Send calls.
type Client struct {
	addr        string
	ackTimeout  time.Duration
	dialTimeout time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	tlsConfig   *tls.Config
	maxFrame    int
	release2    bool

	mu     sync.Mutex
	conn   net.Conn
	reader *Reader
	// read counts the bytes read from conn since the current exchange
	// began, to tell "the peer closed without a byte of reply" from a reply
	// cut short.
	read      int64
	backoff   time.Duration
	nextDial  time.Time
	closed    bool
	lastError error
}

// NewClient returns a client for addr (host:port). It connects lazily, on
// the first Send.
func NewClient(addr string, opts ...ClientOption) *Client {
	c := &Client{
		addr:        addr,
		ackTimeout:  30 * time.Second,
		dialTimeout: 10 * time.Second,
		maxFrame:    DefaultMaxFrameSize,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Send delivers msg and returns the receiver's reply payload; it is
// Exchange without the timing.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	ex, err := c.Exchange(ctx, msg)
	return ex.Reply, err
}

// Exchange is the outcome of one Client.Exchange.
type Exchange struct {
	// Reply is the receiver's reply payload.
	Reply []byte
	// RoundTrip is the time from writing the message to the end of its
	// reply (or the failure) on the connection that carried it: no dial
	// and no backoff are in it.
	RoundTrip time.Duration
}

// Exchange delivers msg and returns the receiver's reply.
//
// It connects when there is no connection. Before reusing a pooled
// connection it checks, without blocking, that the peer has not closed or
// reset it (receivers that close after each ACK, or were restarted, are
// common) and redials if it has. When the peer closes a reused connection
// right after the write without a byte of reply, the connection was stale
// after all (it closed while we wrote): the message is sent once more, at
// once, on a fresh connection. Apart from that one case Exchange never
// resends, since whether a resend is safe is the caller's decision.
//
// When nothing of msg reached the peer (the dial failed, or a stale
// connection could not be replaced) the error satisfies
// errors.Is(err, ErrNotSent): the receiver is unreachable, and resending is
// always safe. Any other transport error or an ACK timeout (ErrAckTimeout)
// means msg may have arrived; the connection is closed either way.
func (c *Client) Exchange(ctx context.Context, msg []byte) (Exchange, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Exchange{}, ErrClosed
	}
	reused := false
	if c.conn != nil {
		if c.usable() {
			reused = true
		} else {
			c.drop()
		}
	}
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			return Exchange{}, err
		}
	}
	ex, silent, err := c.exchange(ctx, msg, reused)
	if err != nil && reused && silent && ctx.Err() == nil {
		// The peer closed the pooled connection as the message went out:
		// it never saw it. Not a failure of this message, so no backoff
		// either.
		c.drop()
		c.nextDial = time.Time{}
		if err := c.connect(ctx); err != nil {
			return Exchange{}, err
		}
		ex, _, err = c.exchange(ctx, msg, false)
	}
	return ex, err
}

// Reset closes the connection, if any, so that the next message goes on a
// new one: for callers that find a reply out of step with the message sent
// (an ACK naming another message), after which the stream cannot be
// trusted.
func (c *Client) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
}

// exchange writes msg on the current connection and reads the reply.
// silent reports that the failure left the peer's side empty: the write
// failed before a byte went out, or the peer closed without a byte of
// reply.
func (c *Client) exchange(ctx context.Context, msg []byte, reused bool) (ex Exchange, silent bool, err error) {
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Now()) })
	defer stop()

	deadline := time.Now().Add(c.ackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return ex, false, c.fail(fmt.Errorf("mllp: setting deadline: %w", err))
	}
	c.read = 0
	start := time.Now()
	defer func() { ex.RoundTrip = time.Since(start) }()
	if n, err := c.conn.Write(AppendFrame(make([]byte, 0, len(msg)+3), msg)); err != nil {
		err = c.ctxErr(ctx, fmt.Errorf("mllp: writing to %s: %w", c.addr, err))
		if n == 0 && !reused {
			// A fresh connection the peer dropped at once: nothing sent.
			err = fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return ex, n == 0, c.fail(err)
	}
	ex.Reply, err = c.reader.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return ex, false, c.fail(ErrAckTimeout)
		}
		return ex, c.read == 0, c.fail(c.ctxErr(ctx, fmt.Errorf("mllp: reading reply from %s: %w", c.addr, err)))
	}
	c.backoff = 0
	if c.release2 && len(ex.Reply) == 1 && ex.Reply[0] == NAKByte {
		return ex, false, ErrNAK
	}
	return ex, false, nil
}

func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// usable reports whether the pooled connection can carry the next message:
// the peer has neither closed nor reset it, and has sent nothing unasked
// (bytes waiting now would be a late reply, taken for the next message's).
func (c *Client) usable() bool {
	if c.reader.br.Buffered() > 0 {
		return false
	}
	_ = c.conn.SetReadDeadline(time.Time{})
	if st, ok := peekSocket(c.conn); ok {
		switch st {
		case sockIdle:
			return true
		case sockClosed:
			return false
		}
		if _, isTLS := c.conn.(*tls.Conn); !isTLS {
			return false
		}
	}
	// A TLS record is waiting, or there is no socket to look at: read with
	// a moment's deadline to tell data or a close from TLS housekeeping
	// (a session ticket), which the read consumes.
	_ = c.conn.SetReadDeadline(time.Now().Add(peekWait))
	_, err := c.reader.br.Peek(1)
	_ = c.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// peekWait is how long usable waits for a TLS record it must decode: long
// enough for one already in the socket buffer, short enough not to show in
// the latency of a send.
const peekWait = time.Millisecond

// connect dials, after waiting out the backoff that the last failure set
// (only with WithBackoff). Its errors satisfy errors.Is(err, ErrNotSent).
func (c *Client) connect(ctx context.Context) error {
	if wait := time.Until(c.nextDial); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: waiting to reconnect to %s: %w (last error: %v)", ErrNotSent, c.addr, ctx.Err(), c.lastError)
		case <-t.C:
		}
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	var nc net.Conn
	var err error
	if c.tlsConfig != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.tlsConfig}
		nc, err = td.DialContext(ctx, "tcp", c.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return c.fail(fmt.Errorf("%w: connecting to %s: %w", ErrNotSent, c.addr, err))
	}
	c.conn = nc
	c.reader = NewReader(countingReader{nc, &c.read}, c.maxFrame)
	return nil
}

// drop closes the connection without scheduling a backoff: it was found
// stale, which says nothing about the receiver.
func (c *Client) drop() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.reader = nil, nil
	}
}

// fail closes the connection and, with WithBackoff, schedules the next
// dial.
func (c *Client) fail(err error) error {
	c.drop()
	if c.backoffMax > 0 {
		c.backoff = min(max(2*c.backoff, c.backoffMin), c.backoffMax)
		c.nextDial = time.Now().Add(c.backoff)
	}
	c.lastError = err
	return err
}

// Connected reports whether the client holds an open connection.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Close closes the connection; later Sends fail with ErrClosed. It waits for
// a Send in progress to finish.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.reader = nil, nil
	return err
}

// IsCommitACK reports whether a reply is a release 2 commit acknowledgement.
func IsCommitACK(reply []byte) bool { return bytes.Equal(reply, []byte{ACKByte}) }

// countingReader counts the bytes read through it into *n.
type countingReader struct {
	r io.Reader
	n *int64
}

func (cr countingReader) Read(p []byte) (int, error) {
	k, err := cr.r.Read(p)
	*cr.n += int64(k)
	return k, err
}

// sockState is what a look at a connection's socket found.
type sockState int

const (
	sockIdle   sockState = iota // open, nothing waiting
	sockData                    // bytes waiting
	sockClosed                  // the peer closed (EOF) or reset it
)
