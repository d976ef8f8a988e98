package index

import (
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// Record kinds of a Pointer.
const (
	KindRaw         = "raw"
	KindParsed      = "parsed"
	KindTransformed = "transformed"
	KindDecision    = "decision"
	KindDelivery    = "delivery"
	KindDeadLetter  = "dead_letter"
	// KindOut is the out.<destination> record a delivery attempt sent
	// (Delivery.Source): what a replay to that one destination re-sends.
	KindOut = "out"
	// KindReplay is the replay topic's item record of a job that re-sent
	// the message.
	KindReplay = "replay"
)

// Source is where a decoded record was read: its topic, partition and
// offset, and the trace ID of its traceparent header ("" if none).
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
	TraceID   string
}

func (s Source) pointer(kind string) *Pointer {
	return &Pointer{Kind: kind, Topic: s.Topic, Partition: s.Partition, Offset: s.Offset}
}

// Projector turns decoded records into index updates: a record without a
// message ID projects to nothing (a dead letter still lists), so a
// projection never gives Apply an update it refuses. Its methods are pure:
// the same record and source give the same updates, which is what lets the
// index be rebuilt from the topics. Secret keys the patient identifiers
// (PatientKey); it is the only input besides the record.
type Projector struct {
	Secret []byte
}

func headerFields(h canonical.Header) MessageFields {
	return MessageFields{
		ControlID:       h.ControlID,
		SendingFacility: h.SendingFacility,
		MessageType:     canonical.MessageTypeOf(h),
	}
}

// Raw projects a raw record: the message was received (or, with an ingress
// verdict, rejected).
func (p Projector) Raw(src Source, r *canonical.Raw) []Update {
	if r.MessageID == "" {
		return nil
	}
	f := headerFields(r.Header)
	f.Interface, f.ReceivedAt, f.TraceID = r.Interface, r.ReceivedAt, src.TraceID
	status := StatusReceived
	if r.Rejected != nil {
		status = StatusRejected
	}
	return []Update{{MessageID: r.MessageID, At: r.ReceivedAt, Message: &f, Status: status, Pointer: src.pointer(KindRaw)}}
}

// Parsed projects a parsed record. A message split from a batch also marks
// its parent (the batch's raw record) parsed: nothing else will.
func (p Projector) Parsed(src Source, r *canonical.Parsed) []Update {
	if r.MessageID == "" {
		return nil
	}
	f := headerFields(r.Header)
	f.Interface, f.ReceivedAt, f.TraceID, f.ParentMessageID = r.Interface, r.ReceivedAt, src.TraceID, r.ParentMessageID
	out := []Update{{MessageID: r.MessageID, At: r.ReceivedAt, Message: &f, Status: StatusParsed, Pointer: src.pointer(KindParsed)}}
	if r.ParentMessageID != "" && r.ParentMessageID != r.MessageID {
		out = append(out, Update{MessageID: r.ParentMessageID, At: r.ReceivedAt, Status: StatusParsed})
	}
	return out
}

// Transformed projects a transformed record: the configuration version and
// the patient keys. Every identifier is keyed twice, with its authority
// and without, so a search by a bare ID finds it; the first identifier's
// keyed form is the message's PatientKey.
func (p Projector) Transformed(src Source, r *canonical.Transformed) []Update {
	if r.MessageID == "" {
		return nil
	}
	f := headerFields(r.Header)
	f.Interface, f.ReceivedAt, f.TraceID = r.Interface, r.ReceivedAt, src.TraceID
	f.ParentMessageID, f.ConfigVersion = r.ParentMessageID, r.ConfigVersion
	var keys []string
	if r.Patient != nil {
		seen := map[string]bool{}
		for _, id := range r.Patient.Identifiers {
			for _, k := range []string{PatientKey(p.Secret, id.Authority, id.Value), PatientKey(p.Secret, "", id.Value)} {
				if k != "" && !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			if f.PatientKey == "" {
				f.PatientKey = PatientKey(p.Secret, id.Authority, id.Value)
			}
		}
	}
	return []Update{{MessageID: r.MessageID, At: r.ReceivedAt, Message: &f, PatientKeys: keys, Pointer: src.pointer(KindTransformed)}}
}

// decisionStatus maps a decision outcome to a status; the outcomes are
// spelled as the statuses are.
func decisionStatus(outcome string) string {
	switch outcome {
	case canonical.OutcomeRouted:
		return StatusRouted
	case canonical.OutcomeFiltered:
		return StatusFiltered
	case canonical.OutcomeDeadLettered:
		return StatusDeadLettered
	}
	return ""
}

// Decision projects a route decision: the message's outcome and one
// status per selected destination.
func (p Projector) Decision(src Source, r *canonical.Decision) []Update {
	if r.MessageID == "" {
		return nil
	}
	f := MessageFields{ParentMessageID: r.ParentMessageID, ControlID: r.ControlID, Interface: r.Interface,
		MessageType: r.MessageType, ConfigVersion: r.ConfigVersion, TraceID: src.TraceID}
	out := []Update{{MessageID: r.MessageID, At: r.DecidedAt, Message: &f, Status: decisionStatus(r.Outcome), Pointer: src.pointer(KindDecision)}}
	for _, d := range r.Destinations {
		st := decisionStatus(d.Outcome)
		if st == "" || d.Destination == "" {
			continue
		}
		out = append(out, Update{MessageID: r.MessageID, At: r.DecidedAt,
			Destination: &DestinationUpdate{Destination: d.Destination, Status: st, LastOutcome: d.Outcome}})
	}
	return out
}

// rejectingAck reports whether an ACK code is the receiver's reject (AR,
// or CR in enhanced mode): a delivery dead-lettered by one is rejected,
// not merely failed.
func rejectingAck(code string) bool {
	code = strings.ToUpper(code)
	return code == "AR" || code == "CR"
}

// Delivery projects one delivery attempt, and the out.<destination>
// record it delivered when the delivery says (records written before
// Delivery.Source have no such pointer).
func (p Projector) Delivery(src Source, r *canonical.Delivery) []Update {
	if r.MessageID == "" {
		return nil
	}
	out := p.delivery(src, r)
	if s := r.Source; s != nil && s.Topic != "" {
		out = append(out, Update{MessageID: r.MessageID, At: r.At,
			Pointer: &Pointer{Kind: KindOut, Topic: s.Topic, Partition: s.Partition, Offset: s.Offset}})
	}
	return out
}

func (p Projector) delivery(src Source, r *canonical.Delivery) []Update {
	if r.Destination == "" {
		return []Update{{MessageID: r.MessageID, At: r.At, Pointer: src.pointer(KindDelivery)}}
	}
	var st string
	switch r.Outcome {
	case canonical.OutcomeDelivered:
		st = StatusDelivered
	case canonical.OutcomeRetry:
		st = StatusAckError
	case canonical.OutcomeDeadLettered:
		st = StatusDeadLettered
		if rejectingAck(r.AckCode) {
			st = StatusRejected
		}
	default:
		return []Update{{MessageID: r.MessageID, At: r.At, Pointer: src.pointer(KindDelivery)}}
	}
	outcome := r.Outcome
	if r.AckCode != "" {
		outcome += " " + r.AckCode
	}
	// Delivery.Error is left out: it may quote the receiver's ACK text.
	return []Update{{MessageID: r.MessageID, At: r.At, Message: &MessageFields{ControlID: r.ControlID, TraceID: src.TraceID},
		Destination: &DestinationUpdate{Destination: r.Destination, Status: st, Attempt: r.Attempt, LastOutcome: outcome},
		Pointer:     src.pointer(KindDelivery)}}
}

// DeadLetter projects a dlq.<stage> record; src is the dead-letter
// record's own place, which its ID names. A dead letter scoped to one
// destination fails that destination only; one without fails the message
// (rejected when ingress had refused it, dead_lettered otherwise). A dead
// letter without a message ID is listed but touches no message.
func (p Projector) DeadLetter(src Source, r *canonical.DeadLetter) []Update {
	at := r.LastFailedAt
	if at.IsZero() {
		at = r.FirstFailedAt
	}
	dl := &DeadLetter{ID: DeadLetterID(r.Stage, src.Partition, src.Offset), MessageID: r.MessageID, ControlID: r.ControlID,
		Stage: r.Stage, Destination: r.Destination, ErrorClass: r.ErrorClass, Reason: r.Reason, FailedAt: at}
	u := Update{MessageID: r.MessageID, At: at, DeadLetter: dl}
	if r.MessageID == "" {
		return []Update{u}
	}
	u.Pointer = src.pointer(KindDeadLetter)
	u.Message = &MessageFields{ControlID: r.ControlID, TraceID: src.TraceID}
	switch {
	case r.Destination != "":
		u.Destination = &DestinationUpdate{Destination: r.Destination, Status: StatusDeadLettered, Attempt: r.Attempts,
			LastOutcome: StatusDeadLettered + " " + r.ErrorClass}
	case r.ErrorClass == canonical.ErrorRejectedAtIngress:
		u.Status = StatusRejected
	default:
		u.Status = StatusDeadLettered
	}
	return []Update{u}
}

// Audit projects an audit record. An event without an ID (a writer's
// bug) is keyed by its record's place, so applying it twice still stores
// it once.
func (p Projector) Audit(src Source, r *canonical.AuditEvent) []Update {
	id := r.EventID
	if id == "" {
		id = src.Topic + ":" + strconv.FormatInt(int64(src.Partition), 10) + ":" + strconv.FormatInt(src.Offset, 10)
	}
	return []Update{{At: r.At, Audit: &AuditRow{EventID: id, At: r.At, Service: r.Service, Actor: r.Actor, Role: r.Role,
		Auth: r.Auth, Action: r.Action, Resource: r.Resource, Selector: r.Selector, Count: r.Count, Outcome: r.Outcome,
		Remote: r.Remote, Detail: r.Detail}}}
}

// Replay projects a replay record. An item re-sent a message (or one
// destination's copy): that opens a new cycle, status replayed at the
// item's time, and notes the job on the dead letter it came from. A
// record re-sent into a stage comes with an item for the message and one
// for each destination it goes to again, so each destination's cycle
// opens too and the re-send's outcome (even a rejected, which ranks
// below delivered) replaces the last one. A
// discard sets a dead letter aside. A job's state projects nothing (the
// admin API follows the replay topic itself).
func (p Projector) Replay(src Source, r *canonical.ReplayRecord) []Update {
	switch r.Kind {
	case canonical.ReplayKindItem:
		it := r.Item
		if it == nil || it.MessageID == "" || it.TargetTopic == "" {
			// No target topic: the job could not read the record back
			// (retention) and sent nothing; the item only tells a
			// resuming runner it was counted.
			return nil
		}
		u := Update{MessageID: it.MessageID, At: r.At, Pointer: src.pointer(KindReplay)}
		if it.Destination != "" {
			u.Destination = &DestinationUpdate{Destination: it.Destination, Status: StatusReplayed, LastOutcome: StatusReplayed}
		} else {
			u.Status = StatusReplayed
		}
		if it.DeadLetterID != "" && r.JobID != "" {
			u.Replay = &DeadLetterReplay{DeadLetterID: it.DeadLetterID, JobID: r.JobID, At: r.At}
		}
		return []Update{u}
	case canonical.ReplayKindDiscard:
		d := r.Discard
		if d == nil {
			return nil
		}
		if _, _, _, err := ParseDeadLetterID(d.DeadLetterID); err != nil {
			// Apply would refuse the whole batch for it.
			return nil
		}
		return []Update{{At: r.At, Discard: &Discard{DeadLetterID: d.DeadLetterID, MessageID: d.MessageID,
			Actor: d.Actor, Reason: d.Reason, At: r.At}}}
	}
	return nil
}
