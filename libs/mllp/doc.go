// Package mllp implements the Minimal Lower Layer Protocol that carries HL7
// v2 over TCP: a frame is a start block (0x0B), the message, an end block
// (0x1C) and a carriage return (0x0D).
//
// The framer is lenient where senders are sloppy and strict where leniency
// would be dangerous: bytes before a start block are skipped (and counted),
// an end block without the trailing CR is accepted, but a frame larger than
// the configured maximum is an error rather than an unbounded buffer.
//
// Server accepts many concurrent connections and hands each frame to a
// Handler, writing back the reply (the ACK) it returns; Shutdown finishes
// in-flight frames before closing. Client keeps one persistent connection to
// a receiver, redials when the peer has closed it, waits for the ACK with a
// timeout and says when a message never left (ErrNotSent).
package mllp
