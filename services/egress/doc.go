// Package egress is the egress stage: one consumer group per destination
// reads out.<destination> and delivers each message through the sender of
// the destination's protocol (mllp, the default and so far the only one),
// committing an offset only once every record before it was delivered or
// dead-lettered (at-least-once toward the outside world). Every attempt is
// recorded on the delivery topic. Each destination runs on its own, so one
// that is down holds back only its own messages.
//
// The seam: a Sender (sender.go) makes one attempt and returns a Verdict —
// Delivered, Failed, Rejected or NotSent — with the peer's answer. What a
// protocol's answer means (an HL7 ACK's MSA-1 and MSA-2, for MLLP) is the
// sender's business; what a verdict means for the message (the contract
// below) is the worker's, the same for every protocol. Adapters, one per
// protocol, validate their settings and build senders; every sender must
// pass the suite in package egresstest.
//
// Retry follows the design's "egress retry" contract:
//
//   - An attempt counts only when it failed for this message (Failed): for
//     MLLP the receiver answered AE (or CE), answered with an ACK that is
//     not this message's (MSA-2 differs from the MSH-10 sent, or, unless
//     ack.lenient_* says otherwise, MSH-9 is not ACK or MSH-12 is not the
//     message's version), answered garbage, or did not answer after the
//     message was sent. The message is retried with backoff
//     (retry.initial_backoff doubling to retry.max_backoff) until
//     retry.max_attempts (default 10) or retry.max_retry_time (default 1h),
//     whichever comes first, then goes to dlq.egress with the reason.
//     Rejected (AR or CR) goes there at once.
//   - A message that must wait holds back only the later messages of its
//     ordering key (the Kafka key: the patient, by default); other keys on
//     the same partition keep flowing, up to destinations[].connections
//     messages in flight (default 1), one sender each.
//   - A destination that cannot be reached (NotSent; for MLLP the dial
//     failed) is held: no attempt is counted, hl7bus_destination_up drops
//     to 0, the message is tried again every second at most, and when the
//     destination answers delivery resumes at once. An outage never
//     dead-letters.
//   - A panic while delivering one message (a bug in a sender or here)
//     dead-letters that message with class panic, logging the panic's type
//     and stack but never its value; the sender is replaced and delivery
//     goes on.
//
// DESIGN.md states how a destination runs on pipeline.AtLeastOnce (the
// at-least-once driver, which keeps the order per key and the commit
// point) and how to add a protocol.
package egress
