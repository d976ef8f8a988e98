package ingress

import (
	"errors"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// The ACK policy, in one place: ackCode decides the code, the builders
// below write the reply. What a frame is owed:
//
//   - accepted and stored: AA (CA in enhanced mode when MSH-15 asks for an
//     accept acknowledgement on success; nothing when it does not);
//   - accepted, the store failed for a transient reason, or accept
//     panicked (it is not known whether the record was stored): AE (CE in
//     enhanced mode when MSH-15 asks for one on error), resend;
//   - refused (unparseable, MSH-9/10/12 missing, a stray MSA, several
//     messages without an envelope, bad batch counts, too large for a
//     record or for the interface): AR, CR in enhanced mode, whatever
//     MSH-15 says: the sender must learn that resending the same bytes
//     cannot help;
//   - failing the profile with ack.on_profile_error: error: AE with ERR
//     (original mode, or enhanced mode when MSH-16 asks for an application
//     acknowledgement on error); otherwise the accept acknowledgement
//     MSH-15 asks for (CA);
//   - an acknowledgement (MSH-9.1 ACK): nothing, ever.
//
// A batch is answered with an acknowledgement batch: one ACK per message,
// AA (CA for a message in enhanced mode), or AE (CE) for every message
// when the batch could not be stored (batch.go).
//
// Every builder answers from examined.head, the message or, when it does
// not parse whole, its first MSH parsed alone: a message whose later
// segments are broken still deserves an answer naming its MSH-10. Without
// a usable MSH, replyWithoutMSH answers from a stub.

// ackCode is the MSA-1 a frame is owed given what examine decided (a),
// whether its record was stored, and the acknowledgement mode it asked
// for; "" when nothing is owed.
func ackCode(a answer, stored bool, plan hl7v2.AckPlan) string {
	switch {
	case a == answerNone:
		return ""
	case a == answerReject:
		if plan.Enhanced {
			return hl7v2.AckCommitReject
		}
		return hl7v2.AckReject
	case !stored:
		if !plan.Enhanced {
			return hl7v2.AckError
		}
		if plan.WantAccept(false) {
			return hl7v2.AckCommitError
		}
		return ""
	case a == answerProfileError:
		// An application error, known at once.
		if plan.WantApplication(false) {
			return hl7v2.AckError
		}
		if plan.WantAccept(true) {
			return hl7v2.AckCommitAccept
		}
		return ""
	}
	if !plan.Enhanced {
		return hl7v2.AckAccept
	}
	if plan.WantAccept(true) {
		return hl7v2.AckCommitAccept
	}
	return ""
}

// notStoredText tells a sender its message was not stored and resending
// the same bytes may work.
const notStoredText = "message could not be stored; resend it"

// internalErrorText answers a frame accept panicked on: whether it was
// stored is unknown, and resending is what a sender does with an AE.
const internalErrorText = "internal error while accepting the message; resend it"

// enhanced maps an original-mode code to its enhanced-mode (accept
// acknowledgement) counterpart, for the messages of an acknowledgement
// batch.
func enhanced(code string) string {
	switch code {
	case hl7v2.AckAccept:
		return hl7v2.AckCommitAccept
	case hl7v2.AckError:
		return hl7v2.AckCommitError
	case hl7v2.AckReject:
		return hl7v2.AckCommitReject
	}
	return code
}

// buildAck builds the ACK of m from its MSH alone.
func buildAck(m *hl7v2.Message, spec hl7v2.AckSpec) (*hl7v2.Message, error) {
	head, err := hl7v2.Parse(m.MSH().Raw())
	if err != nil {
		return nil, err
	}
	return hl7v2.BuildACK(head, spec)
}

// rejectReply builds the AR (CR when the message asked for enhanced mode)
// of a refused frame and returns it with the code sent. Pre-2.5 messages
// get the reason in MSA-3 (BuildACK puts Text there), v2.5+ in ERR-8.
func (s *Service) rejectReply(ex *examined, id string, at time.Time) ([]byte, string) {
	spec := hl7v2.AckSpec{Code: ackCode(answerReject, false, hl7v2.AckPlan{}), ControlID: id, Time: at,
		Text: ex.rejection.Reason, Issues: ex.issues}
	if ex.head != nil {
		spec.Code = ackCode(answerReject, false, hl7v2.PlanAck(ex.head))
		ack, err := hl7v2.BuildACK(ex.head, spec)
		if err == nil {
			if ex.batch {
				// The whole batch is rejected: MSA-2 names the batch, not
				// the first message.
				_ = ack.Set("MSA-2", ex.batchID)
			}
			return ack.Bytes(), spec.Code
		}
		if !errors.Is(err, hl7v2.ErrAckForAck) {
			s.log.Error("building AR; answering from a stub header", logattr.Error(err))
		}
		spec.Code = hl7v2.AckReject
	}
	msa2 := ex.batchID
	if msa2 == "" {
		msa2 = ex.peekedID
	}
	return replyWithoutMSH(spec, msa2), spec.Code
}

// acceptReply builds the answer to a frame that was not refused: AA/CA
// when stored (the acknowledgement batch for a batch), AE/CE when the
// store failed, AE with the profile's errors for a profile error. It
// returns nil and "none" when nothing is owed.
func (s *Service) acceptReply(ex *examined, stored bool, id string, at time.Time) ([]byte, string) {
	if ex.file != nil {
		code, text := hl7v2.AckAccept, ""
		if !stored {
			code, text = hl7v2.AckError, notStoredText
		}
		reply, sent, err := batchAck(ex.file, code, text, id, at)
		if err != nil {
			s.log.Error("building the acknowledgement batch", logattr.Error(err))
			return nil, "none"
		}
		return reply, sent
	}
	m := ex.head
	if m == nil {
		return nil, "none"
	}
	spec := hl7v2.AckSpec{Code: ackCode(ex.answer, stored, hl7v2.PlanAck(m)), ControlID: id, Time: at}
	switch {
	case spec.Code == "":
		return nil, "none"
	case !stored:
		spec.Text = notStoredText
	case spec.Code == hl7v2.AckError:
		// The profile error: its reason and its issues as ERR segments.
		spec.Text, spec.Issues = ex.rejection.Reason, ex.issues
	}
	ack, err := hl7v2.BuildACK(m, spec)
	if err != nil {
		s.log.Error("building ACK", logattr.Error(err))
		return nil, "none"
	}
	return ack.Bytes(), spec.Code
}

// panicReply is interface it's mllp.WithPanicReply: the answer to a frame
// accept panicked on, built from the frame's MSH read alone (which must
// not be what panicked; if it is, the server closes the connection). The
// store may or may not have happened, so the answer is the not-stored one:
// AE (CE in enhanced mode) with an ERR naming an internal error, and the
// sender resends. An acknowledgement still gets nothing, and a frame
// without a usable MSH gets an AE from the stub header. It counts the
// message in hl7bus_ingress_messages_total, which accept did not.
func (s *Service) panicReply(it Interface) func(frame []byte) []byte {
	return func(frame []byte) []byte {
		at := time.Now()
		spec := hl7v2.AckSpec{ControlID: s.newID(at), Time: at, Text: internalErrorText,
			Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: hl7v2.CodeInternalError, Rule: "ingress", Text: internalErrorText}}}
		var reply []byte
		msgType, sent := "unknown", "none"
		defer func() { s.messages.WithLabelValues(it.Name, msgType, sent).Inc() }()
		if head := firstHeader(s.parser, frame); head != nil {
			code, trigger, _ := head.Type()
			msgType = metricType(code, trigger)
			if hl7v2.IsAck(head) {
				return nil
			}
			if spec.Code = ackCode(answerAccept, false, hl7v2.PlanAck(head)); spec.Code == "" {
				return nil
			}
			if ack, err := hl7v2.BuildACK(head, spec); err == nil {
				reply = ack.Bytes()
			}
		}
		if reply == nil {
			msa2 := ""
			if p, ok := hl7v2.PeekHeader(frame); ok {
				msa2 = p.ControlID
			}
			spec.Code = hl7v2.AckError
			reply = replyWithoutMSH(spec, msa2)
		}
		sent = spec.Code
		s.log.Error("accept panicked; answered for a resend", logattr.Interface(it.Name), logattr.Ack(spec.Code))
		return reply
	}
}

// stubMSH stands in for the sender's MSH when there is none: the default
// delimiters, processing ID P, v2.5, and an empty MSH-10 (so MSA-2 is
// empty unless set) and MSH-9 (so the ACK's MSH-9 is ACK alone).
const stubMSH = "MSH|^~\\&|||||||||P|2.5\r"

// replyWithoutMSH builds spec's acknowledgement of a frame without a
// usable MSH, against stubMSH, with MSA-2 msa2 (empty, the control ID of a
// rejected batch, or MSH-10 as PeekHeader read it); nil if it cannot.
func replyWithoutMSH(spec hl7v2.AckSpec, msa2 string) []byte {
	m, err := hl7v2.Parse([]byte(stubMSH))
	if err != nil {
		return nil
	}
	ack, err := hl7v2.BuildACK(m, spec)
	if err != nil {
		return nil
	}
	if msa2 != "" {
		if err := ack.Set("MSA-2", msa2); err != nil {
			return nil
		}
	}
	return ack.Bytes()
}
