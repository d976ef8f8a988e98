// Package egress is the egress stage: one consumer group per destination
// reads out.<destination> and delivers each message over MLLP, committing
// an offset only once every record before it got the receiver's ACK or a
// dead-letter write (at-least-once toward the outside world). Every
// attempt is recorded on the delivery topic. Each destination runs on its
// own, so one that is down holds back only its own messages.
//
// Retry follows the design's "egress retry" contract:
//
//   - An attempt counts only when it failed for this message: the receiver
//     answered AE (or CE), answered with an ACK that is not this message's
//     (MSA-2 differs from the MSH-10 sent, or, unless ack.lenient_* says
//     otherwise, MSH-9 is not ACK or MSH-12 is not the message's version),
//     or did not answer after the message was sent. The message is retried
//     with backoff (retry.initial_backoff doubling to retry.max_backoff)
//     until retry.max_attempts (default 10) or retry.max_retry_time
//     (default 1h), whichever comes first, then goes to dlq.egress with the
//     reason. AR (or CR) goes there at once.
//   - A message that must wait holds back only the later messages of its
//     ordering key (the Kafka key: the patient, by default); other keys on
//     the same partition keep flowing, up to destinations[].connections
//     messages in flight (default 1).
//   - A destination that cannot be reached (mllp.ErrNotSent: the dial
//     failed) is held: no attempt is counted, hl7bus_destination_up drops
//     to 0, the message is tried again every second at most, and when the
//     destination answers delivery resumes at once. An outage never
//     dead-letters.
//
// DESIGN.md states the scheduler's invariants and the goroutines.
package egress
