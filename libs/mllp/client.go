package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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

// WithBackoff sets the wait before reconnecting after a failure: it starts
// at initial and doubles up to max. Default 100ms to 30s.
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

	mu        sync.Mutex
	conn      net.Conn
	reader    *Reader
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
		backoffMin:  100 * time.Millisecond,
		backoffMax:  30 * time.Second,
		maxFrame:    DefaultMaxFrameSize,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Send delivers msg and returns the receiver's reply payload. It connects
// (waiting out the backoff after a failure) when there is no connection. Any
// transport error or ACK timeout closes the connection; Send never resends
// on its own, since whether a resend is safe is the caller's decision.
func (c *Client) Send(ctx context.Context, msg []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Now()) })
	defer stop()

	deadline := time.Now().Add(c.ackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, c.fail(err)
	}
	if err := WriteFrame(c.conn, msg); err != nil {
		return nil, c.fail(c.ctxErr(ctx, fmt.Errorf("mllp: writing to %s: %w", c.addr, err)))
	}
	reply, err := c.reader.ReadFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return nil, c.fail(ErrAckTimeout)
		}
		return nil, c.fail(c.ctxErr(ctx, fmt.Errorf("mllp: reading reply from %s: %w", c.addr, err)))
	}
	c.backoff = 0
	if c.release2 && len(reply) == 1 {
		switch reply[0] {
		case ACKByte:
			return reply, nil
		case NAKByte:
			return reply, ErrNAK
		}
	}
	return reply, nil
}

func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// connect dials if there is no connection, after waiting out the backoff
// that the last failure set.
func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	if wait := time.Until(c.nextDial); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mllp: waiting to reconnect to %s: %w (last error: %v)", c.addr, ctx.Err(), c.lastError)
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
		return c.fail(fmt.Errorf("mllp: connecting to %s: %w", c.addr, err))
	}
	c.conn, c.reader = nc, NewReader(nc, c.maxFrame)
	return nil
}

// fail closes the connection and schedules the next dial.
func (c *Client) fail(err error) error {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.reader = nil, nil
	}
	c.backoff = min(max(2*c.backoff, c.backoffMin), c.backoffMax)
	c.nextDial = time.Now().Add(c.backoff)
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
