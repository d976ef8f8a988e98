package mllp

import (
	"bytes"
	"fmt"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// RejectOversize returns the reply for a frame that exceeded limit bytes,
// given its first bytes: an AR (CR when the sender asked for enhanced mode)
// acknowledging the message whose MSH the head holds, so the sender learns
// why and does not retry the same message forever. It returns nil when the
// head holds no usable MSH: then the connection is only closed.
func RejectOversize(head []byte, limit int) []byte {
	// Only complete segments: the last one in the head is cut off.
	if i := bytes.LastIndexAny(head, "\r\n"); i >= 0 {
		head = head[:i+1]
	} else {
		return nil
	}
	m, err := hl7v2.Parse(head)
	if err != nil || hl7v2.IsAck(m) {
		return nil
	}
	code := hl7v2.AckReject
	if hl7v2.PlanAck(m).Enhanced {
		code = hl7v2.AckCommitReject
	}
	ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{
		Code: code,
		Text: fmt.Sprintf("message exceeds the maximum size of %d bytes", limit),
		Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: hl7v2.CodeInternalError, Rule: "size",
			Text: fmt.Sprintf("message exceeds the maximum size of %d bytes", limit)}},
	})
	if err != nil {
		return nil
	}
	return ack.Bytes()
}
