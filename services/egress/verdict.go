package egress

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// This file is the MLLP sender's reading of an HL7 ACK (mllp.go); the
// worker sees only the Verdict it comes to.

// Failure classes, the reason label of hl7bus_egress_attempt_failures_total.
const (
	failAckError       = "ack_error"       // AE or CE
	failRejected       = "rejected"        // AR or CR
	failAckMismatch    = "ack_mismatch"    // MSA-2 names another message
	failAckHeader      = "ack_header"      // MSH-9 not ACK, or MSH-12 not the message's version
	failBadAck         = "bad_ack"         // the reply is not an HL7 acknowledgement
	failNoAnswer       = "no_answer"       // the ACK timeout passed
	failConnectionLost = "connection_lost" // the connection broke after the message was sent
)

// sentHeader is what the ACK is checked against: the MSH of the payload
// sent.
type sentHeader struct {
	controlID, version string
}

// headerOf reads MSH-10 and MSH-12 of payload, parsing only its first
// segment; controlID falls back to fallback when the payload has no
// readable MSH.
func headerOf(payload []byte, fallback string) sentHeader {
	seg := payload
	if i := bytes.IndexAny(seg, "\r\n"); i >= 0 {
		seg = seg[:i]
	}
	m, err := hl7v2.Parse(seg)
	if err != nil {
		return sentHeader{controlID: fallback}
	}
	return sentHeader{controlID: strings.TrimSpace(m.ControlID()), version: strings.TrimSpace(m.Version())}
}

// judgement is the reading of one attempt.
type judgement struct {
	verdict Verdict
	// ackCode is MSA-1 when the reply was an ACK.
	ackCode string
	// class is one of the fail* constants when the verdict is Rejected or
	// Failed.
	class string
	// reason says what happened, without message content.
	reason string
	// answered is true when the receiver answered anything at all (up
	// means reachable, even when the answer is garbage).
	answered bool
	// ackControlID is MSA-2 of an ACK that names another message.
	ackControlID string
}

// judge reads the outcome of sending a message with header sent: the
// client's reply and error.
func judge(reply []byte, err error, sent sentHeader, check AckCheck) judgement {
	switch {
	case errors.Is(err, mllp.ErrNotSent):
		return judgement{verdict: NotSent, reason: err.Error()}
	case errors.Is(err, mllp.ErrAckTimeout):
		return judgement{verdict: Failed, class: failNoAnswer, reason: "timed out waiting for acknowledgement"}
	case err != nil:
		return judgement{verdict: Failed, class: failConnectionLost, reason: err.Error()}
	}
	j := judgement{answered: true, verdict: Failed}
	ack, perr := hl7v2.ParseACK(reply)
	if perr != nil {
		// The parser's text is not quoted: it may hold the reply's bytes.
		j.class, j.reason = failBadAck, "the reply is not an HL7 acknowledgement"
		return j
	}
	j.ackCode = ack.Code
	if !ack.Matches(sent.controlID) {
		// A late ACK of an earlier message, or another peer's: never
		// delivery, and the stream is out of step, so the sender drops the
		// connection.
		j.class, j.reason = failAckMismatch, "acknowledgement names another message (MSA-2 differs from the MSH-10 sent)"
		j.ackControlID = ack.ControlID
		return j
	}
	if code, _, _ := ack.Message.Type(); code != "ACK" && !check.LenientType {
		j.class, j.reason = failAckHeader, "acknowledgement's MSH-9 is not ACK (ack.lenient_type accepts it)"
		return j
	}
	if v := strings.TrimSpace(ack.Message.Version()); sent.version != "" && v != sent.version && !check.LenientVersion {
		j.class, j.reason = failAckHeader, fmt.Sprintf("acknowledgement's version (MSH-12) %s differs from the message's %s (ack.lenient_version accepts it)",
			clip(v), clip(sent.version))
		return j
	}
	switch {
	case ack.Accepted():
		j.verdict = Delivered
	case ack.Rejected():
		j.verdict, j.class, j.reason = Rejected, failRejected, "receiver answered "+ack.Code
	case ack.Code == hl7v2.AckError || ack.Code == hl7v2.AckCommitError:
		j.class, j.reason = failAckError, "receiver answered "+ack.Code
	default:
		j.class, j.reason = failBadAck, fmt.Sprintf("acknowledgement code (MSA-1) %s is not one of table 0008", clip(ack.Code))
	}
	return j
}

// clip bounds a header value quoted in a reason: a version or a code is a
// few characters; anything longer is not one and is cut.
func clip(s string) string {
	const n = 12
	if len(s) > n {
		return fmt.Sprintf("%q…", s[:n])
	}
	return fmt.Sprintf("%q", s)
}
