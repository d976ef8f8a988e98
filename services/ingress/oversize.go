package ingress

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// An oversize frame cannot be stored (no topic holds more than the
// interface's max_message_size), so it is answered here, from the first
// bytes the MLLP server kept, and never reaches the handler. Resending the
// same message cannot help, so the answer is AR (CR in enhanced mode),
// never AE: ackCode's answer to a refusal. Only the head's MSH is read.

// oversizeText is the reason a sender reads, naming the limit it exceeded.
func oversizeText(limit int) string {
	return fmt.Sprintf("message exceeds the maximum size of %d bytes", limit)
}

// oversizeReply is interface it's mllp.WithOversizeReply: it builds the
// reject and counts it in hl7bus_ingress_messages_total.
func (s *Service) oversizeReply(it Interface) func(head []byte, limit int) []byte {
	return func(head []byte, limit int) []byte {
		reply, msgType, ack := rejectOversize(head, limit, s.newID(time.Now()))
		s.messages.WithLabelValues(it.Name, msgType, ack).Inc()
		s.log.Warn("message too large; rejected without storing it", logattr.Interface(it.Name), logattr.Ack(ack), logattr.Limit(limit))
		return reply
	}
}

// rejectOversize builds the reply to a frame over limit bytes given its
// head: an AR (CR when the sender asked for enhanced mode) whose MSA-2 is
// the head's MSH-10, or, when the head holds no usable MSH, an AR with an
// empty MSA-2 in the default delimiters and v2.5, so the sender still
// learns why. id is the ACK's own MSH-10. It also returns the message type
// for the metric label ("unknown" without an MSH) and the code sent
// ("none" for an acknowledgement, which is never acknowledged).
func rejectOversize(head []byte, limit int, id string) (reply []byte, msgType, ack string) {
	text := oversizeText(limit)
	spec := hl7v2.AckSpec{Code: hl7v2.AckReject, ControlID: id, Text: text,
		Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: hl7v2.CodeInternalError, Rule: "size", Text: text}}}
	if m := oversizeMSH(head); m != nil {
		code, trigger, _ := m.Type()
		msgType = metricType(code, trigger)
		if strings.EqualFold(strings.TrimSpace(code), "ACK") {
			return nil, msgType, "none"
		}
		spec.Code = ackCode(answerReject, false, hl7v2.PlanAck(m))
		if a, err := hl7v2.BuildACK(m, spec); err == nil {
			return a.Bytes(), msgType, spec.Code
		}
	}
	spec.Code = hl7v2.AckReject
	return replyWithoutMSH(spec, ""), "unknown", hl7v2.AckReject
}

// oversizeMSH parses the head's first segment when it is a complete,
// sound MSH; nil otherwise. Only the MSH is read: the rest of the head is
// cut off mid-message, and what follows the MSH must not decide whether
// the sender gets its control ID back.
func oversizeMSH(head []byte) *hl7v2.Message {
	end := bytes.IndexAny(head, "\r\n")
	if end < 0 {
		// The MSH itself runs past the head: nothing in it can be trusted.
		return nil
	}
	m, err := hl7v2.Parse(head[:end+1])
	if err != nil {
		return nil
	}
	return m
}
