package mllp

import (
	"errors"
	"fmt"
)

var (
	// ErrFrameTooLarge is returned (wrapped in a *FrameTooLargeError) by
	// Reader.ReadFrame when a frame exceeds the maximum size.
	ErrFrameTooLarge = errors.New("mllp: frame exceeds maximum size")

	// ErrTruncated is returned by Reader.ReadFrame when the stream ends inside
	// a frame (after the start block, before the end block).
	ErrTruncated = errors.New("mllp: stream ended inside a frame")

	// ErrAckTimeout is returned by Client.Send when no reply arrives within
	// the ACK timeout. The connection is closed, because a late reply would
	// otherwise be taken for the reply to the next message.
	ErrAckTimeout = errors.New("mllp: timed out waiting for acknowledgement")

	// ErrNAK is returned by Client.Send in release 2 mode when the receiver
	// answers with a negative commit acknowledgement.
	ErrNAK = errors.New("mllp: receiver sent a negative commit acknowledgement")

	// ErrClosed is returned by Client.Send after Close and by Server.Serve
	// after Shutdown.
	ErrClosed = errors.New("mllp: closed")

	// ErrNotMLLP is returned (wrapped in a *NotMLLPError) by
	// Reader.ReadFrame when the stream is evidently another protocol, or
	// holds too much junk before a start block to be an MLLP sender's.
	ErrNotMLLP = errors.New("mllp: stream is not MLLP")

	// ErrHandlerPanicked is what the server makes of a Handler that
	// panicked on a frame when WithPanicReply gives no reply: the
	// connection is closed without one (the sender resends) and the server
	// goes on.
	ErrHandlerPanicked = errors.New("mllp: handler panicked")
)

// Reasons a connection is rejected at once, as passed to
// ConnEvents.Rejected and carried by NotMLLPError. The set is closed, so a
// metric may use them as label values.
const (
	// RejectTLS: the stream opens with a TLS record (a client that expects
	// TLS on a plain MLLP port).
	RejectTLS = "tls"
	// RejectHTTP: the stream opens with an HTTP/1 request line or the
	// HTTP/2 preface.
	RejectHTTP = "http"
	// RejectNoStartBlock: more junk than the server tolerates arrived
	// without a start block.
	RejectNoStartBlock = "no_start_block"
	// RejectMaxConnections: the server was at its connection cap.
	RejectMaxConnections = "max_connections"
)

// NotMLLPError says why a stream was taken for something other than MLLP.
type NotMLLPError struct {
	// Reason is RejectTLS, RejectHTTP or RejectNoStartBlock.
	Reason string
}

func (e *NotMLLPError) Error() string { return fmt.Sprintf("%v (%s)", ErrNotMLLP, e.Reason) }

func (e *NotMLLPError) Unwrap() error { return ErrNotMLLP }

// FrameTooLargeError says how large a frame was allowed to be and keeps its
// first bytes, so the receiver can still read the MSH to reject it properly.
type FrameTooLargeError struct {
	Limit int
	// Head is the start of the frame (at most HeadSize bytes).
	Head []byte
}

// HeadSize is how much of an oversize frame is kept: enough for any MSH.
const HeadSize = 4096

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("%v (limit %d bytes)", ErrFrameTooLarge, e.Limit)
}

func (e *FrameTooLargeError) Unwrap() error { return ErrFrameTooLarge }

// ErrNotSent is returned (wrapped) by Client.Send when nothing of the
// message reached the peer: the connection could not be made, or a pooled
// connection the peer had closed could not be replaced. The receiver is
// unreachable; it has not refused the message, and resending is safe.
var ErrNotSent = errors.New("mllp: message not sent")
