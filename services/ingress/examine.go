package ingress

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// answer is the kind of reply a frame gets.
type answer int

const (
	answerAccept       answer = iota // AA / CA (AE / CE when not stored)
	answerReject                     // AR / CR
	answerProfileError               // AE (ack.on_profile_error: error)
	answerNone                       // an acknowledgement: never answered
)

// examined is what accept learned about a frame before storing it.
type examined struct {
	answer answer
	// rejection is the verdict stored in raw.rejected; nil when accepted.
	rejection *canonical.Rejection
	// issues become the reply's ERR segments.
	issues []hl7v2.Issue
	// msg is the parsed message (nil for a batch or an unparseable frame);
	// head is what the reply answers: msg itself, or for a batch or a
	// message that does not parse whole the frame's first MSH parsed alone
	// (nil when the frame has no usable MSH).
	msg, head *hl7v2.Message
	// file is set for a frame holding an FHS/BHS batch that parsed.
	file *hl7v2.File
	// batch is true for a frame starting with FHS or BHS; batchID is its
	// control ID (BHS-11, else FHS-11), what MSA-2 names when the whole
	// batch is rejected.
	batch   bool
	batchID string
	// peekedID is MSH-10 read by splitting on MSH-1 alone, for answering
	// a message whose MSH-2 is broken (then head is nil): the sender can
	// still match the AR.
	peekedID string
}

// reject sets the verdict and the reply's single ERR.
func (ex *examined) reject(code, reason string, ec hl7v2.ErrorCode, loc hl7v2.Location) {
	ex.answer = answerReject
	ex.rejection = &canonical.Rejection{Code: code, Reason: reason}
	ex.issues = []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: ec, Location: loc, Rule: "ingress", Text: reason}}
}

// examine decides what a frame is and what it is owed. Texts name
// positions and limits only: they reach logs, raw.rejected and dlq.parse.
func (s *Service) examine(it Interface, frame []byte) *examined {
	ex := &examined{}
	switch firstSegmentName(frame) {
	case "FHS", "BHS":
		ex.head = firstHeader(s.parser, frame)
		s.examineBatch(it, frame, ex)
		return ex
	}
	m, err := s.parser.Parse(frame)
	if err != nil && firstSegmentName(frame) == "MSH" {
		// The message does not parse whole; its MSH alone may, and then
		// the reply names MSH-10. When even that fails, MSH-10 read by
		// PeekHeader does.
		ex.head = firstHeader(s.parser, frame)
		if ex.head == nil {
			if p, ok := hl7v2.PeekHeader(frame); ok {
				ex.peekedID = p.ControlID
			}
		}
	}
	switch {
	case errors.Is(err, hl7v2.ErrBatch):
		// Parse refuses a second MSH; without an envelope there are no
		// counts to check that nothing was lost or cut, so the frame is
		// refused whole rather than half acknowledged.
		n := countMSH(frame)
		ex.reject(canonical.RejectSeveralMessages,
			fmt.Sprintf("the frame holds %d messages without a batch envelope (FHS/BHS); it is rejected whole: send one message per frame, or a batch", n),
			hl7v2.CodeSegmentSequence, hl7v2.Location{Segment: "MSH", Occurrence: 2})
		return ex
	case err != nil:
		// ParseIssue gives the table 0357 code and where (MSH-1, MSH-2).
		is := hl7v2.ParseIssue(err)
		ex.reject(canonical.RejectUnparseable, parseReason(err), is.Code, is.Location)
		return ex
	}
	// Parsed whole: the message is its own head (BuildACK reads only the
	// MSH), so a sound message is parsed once at ingress.
	ex.msg, ex.head = m, m
	s.examineMessage(it, m, ex, "")
	return ex
}

// examineMessage applies the per-message checks; where prefixes the texts
// ("message 2 of batch 1: ") for a message of a batch.
func (s *Service) examineMessage(it Interface, m *hl7v2.Message, ex *examined, where string) {
	if hl7v2.IsAck(m) {
		ex.answer = answerNone
		ex.rejection = &canonical.Rejection{Code: canonical.RejectAcknowledgement,
			Reason: where + "an acknowledgement (MSH-9 ACK) sent to an inbound interface; acknowledgements are never acknowledged"}
		return
	}
	if is, ok := hl7v2.StrayMSA(m); ok {
		ex.reject(canonical.RejectUnexpectedMSA,
			where+"MSA segment not allowed: MSH-9 is not ACK, so the message is not an acknowledgement",
			is.Code, is.Location)
		return
	}
	if issues := hl7v2.RequiredHeaderIssues(m); len(issues) > 0 {
		names := make([]string, len(issues))
		for i, is := range issues {
			names[i] = fmt.Sprintf("MSH-%d", is.Location.Field)
			if is.Location.Component > 0 {
				names[i] += fmt.Sprintf(".%d", is.Location.Component)
			}
		}
		ex.answer = answerReject
		ex.rejection = &canonical.Rejection{Code: canonical.RejectMissingHeaderField,
			Reason: where + "required field missing: " + strings.Join(names, ", ")}
		ex.issues = issues
		return
	}
	if v := s.validators[it.Name]; v != nil {
		report := v.Validate(m)
		if !report.Valid() {
			errs := report.Errors()
			ex.answer = answerProfileError
			ex.rejection = &canonical.Rejection{Code: canonical.RejectProfileError,
				Reason: fmt.Sprintf("%sfails the conformance profile of interface %s: %d errors, the first %s at %s",
					where, it.Name, len(errs), errs[0].Rule, errs[0].Location)}
			if len(errs) > canonical.MaxIssues {
				errs = errs[:canonical.MaxIssues]
			}
			ex.issues = errs
		}
	}
}

// parseReason describes a parse error by its kind and position only: the
// detail of some errors quotes the bytes at fault, which may be PHI.
func parseReason(err error) string {
	var pe *hl7v2.ParseError
	if !errors.As(err, &pe) {
		return "the message could not be parsed"
	}
	r := pe.Err.Error()
	if errors.Is(pe.Err, hl7v2.ErrSegmentName) {
		r += ": a segment must start with a 3-character ID of upper-case letters and digits"
	}
	if pe.Segment > 0 {
		r += fmt.Sprintf(" (segment %d, byte %d)", pe.Segment, pe.Offset)
	}
	return r
}

// firstSegmentName returns the name of the frame's first non-blank segment.
func firstSegmentName(frame []byte) string {
	frame = bytes.TrimPrefix(frame, []byte{0xEF, 0xBB, 0xBF})
	frame = bytes.TrimLeft(frame, "\r\n \t")
	if len(frame) < 3 {
		return ""
	}
	return string(frame[:3])
}

// segmentsOf splits a frame into its segments (CR, LF or CRLF ended).
func segmentsOf(frame []byte) [][]byte {
	return bytes.FieldsFunc(frame, func(r rune) bool { return r == '\r' || r == '\n' })
}

// countMSH counts the segments that start a message.
func countMSH(frame []byte) int {
	n := 0
	for _, seg := range segmentsOf(frame) {
		if bytes.HasPrefix(seg, []byte("MSH")) {
			n++
		}
	}
	return n
}

// firstHeader parses the frame's first MSH segment alone (the frame's first
// segment, or the first after a batch header), for answering a
// message whose MSH is sound when the rest is not (or holds an MSA, which
// would make hl7v2.BuildACK refuse the whole message); nil when there is
// no usable MSH.
func firstHeader(p *hl7v2.Parser, frame []byte) *hl7v2.Message {
	for _, seg := range segmentsOf(frame) {
		if bytes.HasPrefix(seg, []byte("MSH")) {
			m, err := p.Parse(seg)
			if err != nil {
				return nil
			}
			return m
		}
	}
	return nil
}

// loadValidators prepares the validator of every interface that asks for
// validation at ingress, from the profile it names (the standard alone
// without one, as parse does).
func (s *Service) loadValidators() error {
	s.validators = map[string]*hl7v2.Validator{}
	for i, it := range s.cfg.Interfaces {
		if it.Ack.OnProfileError != OnProfileErrorError {
			continue
		}
		var p *hl7v2.Profile
		if it.Profile != "" {
			var err error
			if p, err = hl7v2.LoadProfile(it.Profile); err != nil {
				return fmt.Errorf("ingress: interfaces[%d].profile: %w", i, err)
			}
		}
		s.validators[it.Name] = hl7v2.NewValidator(p)
	}
	return nil
}
