// Package logattr is the one list of what hl7bus may log. Every log
// attribute in the product comes from a constructor here, so this file can
// be reviewed like a schema: none of these carries message content, and
// none may be added that does. Message IDs are hl7bus's own ULIDs; control
// IDs are the sender's MSH-10, which identifies a message, not a patient;
// interface, destination, facility and stage names come from configuration.
// Errors must come from code that keeps content out of its messages (the
// hl7v2 parser and validator quote no field values).
package logattr

import (
	"log/slog"
	"time"
)

// MessageID is hl7bus's ULID of a message.
func MessageID(id string) slog.Attr { return slog.String("message_id", id) }

// ControlID is the sender's MSH-10.
func ControlID(id string) slog.Attr { return slog.String("control_id", id) }

// Interface is the name of an inbound interface.
func Interface(name string) slog.Attr { return slog.String("interface", name) }

// Destination is the name of an outbound destination.
func Destination(name string) slog.Attr { return slog.String("destination", name) }

// Stage is a stage name.
func Stage(name string) slog.Attr { return slog.String("stage", name) }

// Topic, Partition and Offset locate a record.
func Topic(t string) slog.Attr { return slog.String("topic", t) }

// Partition of a record.
func Partition(p int32) slog.Attr { return slog.Int("partition", int(p)) }

// Offset of a record.
func Offset(o int64) slog.Attr { return slog.Int64("offset", o) }

// Group is a Kafka consumer group.
func Group(g string) slog.Attr { return slog.String("group", g) }

// Address is a listen or connect address from configuration.
func Address(a string) slog.Attr { return slog.String("address", a) }

// Peer is the remote address of a connection.
func Peer(a string) slog.Attr { return slog.String("peer", a) }

// Conn numbers a connection within a server.
func Conn(id uint64) slog.Attr { return slog.Uint64("conn", id) }

// Attempt is a delivery or retry attempt number.
func Attempt(n int) slog.Attr { return slog.Int("attempt", n) }

// Backoff is the wait before the next attempt.
func Backoff(d time.Duration) slog.Attr { return slog.Duration("backoff", d) }

// Ack is an acknowledgement code (AA, AE, AR, CA, CE, CR).
func Ack(code string) slog.Attr { return slog.String("ack", code) }

// Instance names a stage instance (a pod name).
func Instance(name string) slog.Attr { return slog.String("instance", name) }

// ControlIDInAck is MSA-2 of a received ACK, when it differs from what was sent.
func ControlIDInAck(id string) slog.Attr { return slog.String("msa_2", id) }

// Limit is a configured limit (frame size, connections).
func Limit(n int) slog.Attr { return slog.Int("limit", n) }

// SkippedBytes counts bytes discarded outside MLLP frames.
func SkippedBytes(n int64) slog.Attr { return slog.Int64("skipped_bytes", n) }

// Stored says whether a message reached Kafka.
func Stored(ok bool) slog.Attr { return slog.Bool("stored", ok) }

// Reason explains a failure; it must not quote message content.
func Reason(s string) slog.Attr { return slog.String("reason", s) }

// Error is an error; see the package comment.
func Error(err error) slog.Attr { return slog.Any("error", err) }

// Input names the topic a stage consumes.
func Input(t string) slog.Attr { return slog.String("input", t) }

// DataDir is the standalone data directory.
func DataDir(d string) slog.Attr { return slog.String("data_dir", d) }

// URL is a service URL from configuration (the registry).
func URL(key, u string) slog.Attr { return slog.String(key, u) }
