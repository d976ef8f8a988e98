// Package mllp implements the Minimal Lower Layer Protocol that carries HL7
// v2 over TCP: a frame is a start block (0x0B), the message, an end block
// (0x1C) and a carriage return (0x0D).
//
// The framer is lenient where senders are sloppy and strict where leniency
// would be dangerous: a few bytes before a start block are skipped (and
// counted), an end block without the trailing CR is accepted, but a frame
// larger than the configured maximum is an error rather than an unbounded
// buffer, and a server connection that opens like TLS or HTTP, or sends
// kilobytes without a start block, is closed at once.
//
// Server accepts many concurrent connections (up to an optional cap) and
// hands each frame to a Handler, writing back the reply (the ACK) it
// returns; accept errors are retried with a backoff for as long as the
// server runs, and reported so readiness can follow them; Shutdown
// finishes in-flight frames before closing. The package knows nothing of
// HL7: the reply to an oversize frame, and to a frame whose handler
// panicked, is the caller's (WithOversizeReply, WithPanicReply).
// See DESIGN.md for the concurrency. Client keeps one persistent connection
// to a receiver, redials when the peer has closed it, waits for the ACK with
// a timeout and says when a message never left (ErrNotSent).
package mllp
