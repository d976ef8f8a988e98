package ingress

import (
	"errors"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/logattr"
)

// Replies. Every builder answers from the frame's first MSH parsed alone
// (examined.head): hl7v2.BuildACK refuses a message holding an MSA, and a
// message whose later segments are broken still deserves an answer naming
// its MSH-10.

// notStoredText tells a sender its message was not stored and resending
// the same bytes may work.
const notStoredText = "message could not be stored; resend it"

// enhanced maps an original-mode code to its enhanced-mode (accept
// acknowledgement) counterpart.
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
	reason := ex.rejection.Reason
	code := hl7v2.AckReject
	if ex.head != nil {
		if hl7v2.PlanAck(ex.head).Enhanced {
			code = hl7v2.AckCommitReject
		}
		ack, err := hl7v2.BuildACK(ex.head, hl7v2.AckSpec{Code: code, ControlID: id, Time: at, Text: reason, Issues: ex.issues})
		if err == nil {
			if ex.batch {
				// The whole batch is rejected: MSA-2 names the batch, not
				// the first message.
				_ = ack.Set("MSA-2", ex.batchID)
			}
			return ack.Bytes(), code
		}
		if !errors.Is(err, hl7v2.ErrAckForAck) {
			s.log.Error("building AR; answering from a stub header", logattr.Error(err))
		}
	}
	msa2 := ex.batchID
	if msa2 == "" {
		msa2 = ex.peekedID
	}
	return rejectUnparseable(ex.issues, reason, id, msa2, at), code
}

// acceptReply builds the answer to a frame that was not refused: AA/CA
// when stored (the acknowledgement batch for a batch), AE/CE when the
// store failed, AE with the profile's errors for a profile error. In
// enhanced mode MSH-15 decides whether an accept acknowledgement is sent
// at all, and for a profile error MSH-16 whether the application
// acknowledgement (AE) is; it returns nil and "none" when nothing is owed.
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
	plan := hl7v2.PlanAck(m)
	spec := hl7v2.AckSpec{ControlID: id, Time: at}
	switch {
	case !stored:
		spec.Code, spec.Text = hl7v2.AckError, notStoredText
		if plan.Enhanced {
			if !plan.WantAccept(false) {
				return nil, "none"
			}
			spec.Code = hl7v2.AckCommitError
		}
	case ex.answer == answerProfileError:
		// An application error, known at once: the application ACK AE
		// (original mode, or enhanced mode when MSH-16 asks for it on
		// error); otherwise the accept ACK the sender asked for.
		spec.Code, spec.Text, spec.Issues = hl7v2.AckError, ex.rejection.Reason, ex.issues
		if plan.Enhanced && !plan.WantApplication(false) {
			if !plan.WantAccept(true) {
				return nil, "none"
			}
			spec.Code, spec.Text, spec.Issues = hl7v2.AckCommitAccept, "", nil
		}
	default:
		spec.Code = hl7v2.AckAccept
		if plan.Enhanced {
			if !plan.WantAccept(true) {
				return nil, "none"
			}
			spec.Code = hl7v2.AckCommitAccept
		}
	}
	ack, err := hl7v2.BuildACK(m, spec)
	if err != nil {
		s.log.Error("building ACK", logattr.Error(err))
		return nil, "none"
	}
	return ack.Bytes(), spec.Code
}

// rejectUnparseable builds an AR for a frame without a usable MSH. With no
// MSH to answer, it uses the default delimiters, v2.5, and MSA-2 msa2
// (empty, or the control ID of a rejected batch).
func rejectUnparseable(issues []hl7v2.Issue, text, id, msa2 string, at time.Time) []byte {
	stub := "MSH|^~\\&|||||" + at.Format("20060102150405") + "||XXX^X00|" + id + "|P|2.5\r"
	m, perr := hl7v2.Parse([]byte(stub))
	if perr != nil {
		return nil
	}
	ack, aerr := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: hl7v2.AckReject, ControlID: id, Time: at, Text: text, Issues: issues})
	if aerr != nil {
		return nil
	}
	// The stub's control ID is ours, not the sender's: set MSA-2 and clear
	// MSH-9's placeholder event.
	_ = ack.Set("MSA-2", msa2)
	_ = ack.Set("MSH-9", "ACK")
	return ack.Bytes()
}
