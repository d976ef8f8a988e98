package index

// Statuses, spelled as the design spells them. A destination row holds one
// of Routed, Filtered, AckError, Rejected, DeadLettered, Replayed or
// Delivered; a message's stage status one of Received, Parsed, Routed,
// Filtered, Rejected, DeadLettered or Replayed; a message's overall status
// any of them or PartiallyDelivered (see Overall).
const (
	StatusReceived           = "received"
	StatusParsed             = "parsed"
	StatusFiltered           = "filtered"
	StatusRouted             = "routed"
	StatusDelivered          = "delivered"
	StatusAckError           = "ack_error"
	StatusRejected           = "rejected"
	StatusDeadLettered       = "dead_lettered"
	StatusReplayed           = "replayed"
	StatusPartiallyDelivered = "partially_delivered"
)

// precedence is the one table that orders statuses within a cycle. Topics
// are read in parallel and a rebuild reads them in any order, so a record
// can arrive after one that followed it: a status replaces the stored one
// only when its rank is higher. A late parsed (20) never overwrites
// delivered (60); a delivery attempt that failed with AE (ack_error, 40)
// never overwrites the delivered that came after it.
//
// Replayed is the exception: it opens a new cycle (see merge), because a
// replay deliberately sends a dead-lettered message through again, and
// what follows it must be able to say dead_lettered again.
var precedence = map[string]int{
	StatusReplayed:     0,
	StatusReceived:     10,
	StatusParsed:       20,
	StatusRouted:       30,
	StatusAckError:     40,
	StatusFiltered:     50,
	StatusDeadLettered: 50,
	// A receiver's AR is reported twice, by the delivery (rejected) and
	// by its dead letter (dead_lettered), in either order: rejected says
	// more and must win both ways, so it ranks above.
	StatusRejected:  55,
	StatusDelivered: 60,
}

// Known reports whether s is a status a row can hold or a search can ask
// for.
func Known(s string) bool {
	_, ok := precedence[s]
	return ok || s == StatusPartiallyDelivered
}

// merge decides whether an event with status next at time at (Unix
// microseconds) replaces a row holding cur whose current cycle began at
// cycleAt. It returns the status and cycle start to store.
//
// A cycle begins with the first event and again with every replay. An
// event older than the cycle's start belongs to an earlier cycle (a late
// record from before the replay) and is ignored; within a cycle the higher
// rank wins and ties keep what is stored, so applying the same event twice
// changes nothing.
func merge(cur string, cycleAt int64, next string, at int64) (string, int64, bool) {
	if next == StatusReplayed {
		if cur == "" || at > cycleAt {
			return StatusReplayed, at, true
		}
		return cur, cycleAt, false
	}
	if cur == "" {
		return next, cycleAt, true
	}
	if at < cycleAt {
		return cur, cycleAt, false
	}
	if precedence[next] > precedence[cur] {
		return next, cycleAt, true
	}
	return cur, cycleAt, false
}

// Overall derives a message's status from its stage status and its
// destinations' statuses:
//
//   - no destinations: the stage status (received, parsed, filtered,
//     rejected, dead_lettered, replayed, or routed while the destinations
//     are not known yet);
//   - destinations filtered by their own rules do not count, unless every
//     destination was filtered: then filtered;
//   - any destination still in flight: ack_error if one is retrying, else
//     replayed if one is being replayed, else routed;
//   - otherwise every destination is final: all delivered → delivered; all
//     rejected → rejected; none delivered → dead_lettered; some delivered
//     and some dead_lettered or rejected → partially_delivered.
func Overall(stage string, dests []string) string {
	var counted, delivered, rejected, failed int
	var ackError, replayed, routed bool
	for _, d := range dests {
		switch d {
		case StatusFiltered:
			continue
		case StatusDelivered:
			delivered++
		case StatusRejected:
			rejected++
			failed++
		case StatusDeadLettered:
			failed++
		case StatusAckError:
			ackError = true
		case StatusReplayed:
			replayed = true
		default:
			routed = true
		}
		counted++
	}
	switch {
	case len(dests) == 0:
		return stage
	case counted == 0:
		return StatusFiltered
	case ackError:
		return StatusAckError
	case replayed:
		return StatusReplayed
	case routed:
		return StatusRouted
	case delivered == counted:
		return StatusDelivered
	case rejected == counted:
		return StatusRejected
	case delivered == 0:
		return StatusDeadLettered
	default:
		return StatusPartiallyDelivered
	}
}
