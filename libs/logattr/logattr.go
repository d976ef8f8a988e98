// Package logattr is the one list of what hl7bus may log. Every log
// attribute in the product comes from a constructor here, so this file can
// be reviewed like a schema: none of these carries message content, and
// none may be added that does. Message IDs are hl7bus's own ULIDs; control
// IDs are the sender's MSH-10, which identifies a message, not a patient;
// interface, destination, facility and stage names come from configuration.
//
// The control ID is a pseudo-identifier all the same: some senders build
// MSH-10 from the patient's MRN and a sequence number. It stays loggable
// because it is the operator's handle on a message (what the sender's
// support quotes on the phone), but it is bounded: MSH-10 is ST of 20
// characters (199 from v2.6), and a sender that puts 200 KB there must not
// produce a 200 KB log line.
// Errors must come from code that keeps content out of its messages (the
// hl7v2 parser and validator quote no field values).
package logattr

import (
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// MessageID is hl7bus's ULID of a message.
func MessageID(id string) slog.Attr { return slog.String("message_id", id) }

// ControlID is the sender's MSH-10, cut to maxControlID bytes (see the
// package comment).
func ControlID(id string) slog.Attr { return slog.String("control_id", bounded(id)) }

// maxControlID is the most of a control ID a log line carries: room for
// the 20 characters MSH-10 has before v2.6 and for the ULIDs and UUIDs
// senders use, far below a log line's budget.
const maxControlID = 64

// bounded returns id when it fits in maxControlID bytes, or its first
// maxControlID bytes (cut on a UTF-8 boundary) followed by
// "...(N bytes)", so the line still tells how long the original was.
func bounded(id string) string {
	if len(id) <= maxControlID {
		return id
	}
	cut := maxControlID
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "...(" + strconv.Itoa(len(id)) + " bytes)"
}

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

// ReplayJob is a replay job's ID.
func ReplayJob(id string) slog.Attr { return slog.String("replay_job", id) }

// Instance names a stage instance (a pod name).
func Instance(name string) slog.Attr { return slog.String("instance", name) }

// ControlIDInAck is MSA-2 of a received ACK, when it differs from what was
// sent; bounded like ControlID.
func ControlIDInAck(id string) slog.Attr { return slog.String("msa_2", bounded(id)) }

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

// PanicType is the Go type of a recovered panic's value. The value itself
// is never logged: a panic raised while handling a message may quote it.
func PanicType(t string) slog.Attr { return slog.String("panic_type", t) }

// Stack is a goroutine stack trace (debug.Stack): function names, files and
// offsets; argument words are addresses and integers, never strings.
func Stack(s string) slog.Attr { return slog.String("stack", s) }

// ConfigVersion is the configuration version (12 hex digits of a hash of
// the configuration and table files).
func ConfigVersion(v string) slog.Attr { return slog.String("config_version", v) }

// ConfigKeys names configuration keys (interfaces[1], kafka), never
// their values.
func ConfigKeys(keys []string) slog.Attr { return slog.Any("keys", keys) }

// Trigger says what started an action (SIGHUP, a changed file).
func Trigger(t string) slog.Attr { return slog.String("trigger", t) }

// Route is an HTTP route pattern ("GET /api/v1/messages/{id}"), never
// the request's path or query: those can hold identifiers.
func Route(pattern string) slog.Attr { return slog.String("route", pattern) }

// Actor is who did an operator action (a token's name or an OIDC
// subject, as audit records name them); never a patient.
func Actor(name string) slog.Attr { return slog.String("actor", name) }

// Path is a file the process wrote or read (a secret's file, never its
// content).
func Path(p string) slog.Attr { return slog.String("path", p) }

// Issuer is an OpenID Connect issuer URL.
func Issuer(u string) slog.Attr { return slog.String("issuer", u) }

// Retention is a retention period, under the name of the setting or
// topic config it comes from (index.retention, retention.ms); 0 is
// "keep everything".
func Retention(key string, d time.Duration) slog.Attr { return slog.Duration(key, d) }
