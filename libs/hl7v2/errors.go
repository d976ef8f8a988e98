package hl7v2

import (
	"errors"
	"fmt"
)

var (
	// ErrNoMSH is returned by Parse when the input does not start with an MSH
	// segment (after an optional byte-order mark and empty lines).
	ErrNoMSH = errors.New("hl7v2: message does not start with MSH")

	// ErrDelimiters is returned by Parse and ParseBatch when MSH-1/MSH-2 (or
	// FHS/BHS-1/2) do not declare a usable set of delimiters.
	ErrDelimiters = errors.New("hl7v2: invalid delimiters")

	// ErrSegmentName is returned by Parse when a segment does not start with a
	// three-character upper-case alphanumeric segment ID.
	ErrSegmentName = errors.New("hl7v2: invalid segment name")

	// ErrPath is returned by ParsePath, Get and Set for a path that does not
	// follow the documented grammar.
	ErrPath = errors.New("hl7v2: invalid path")

	// ErrNotSettable is returned by Set for MSH-1 and MSH-2 (and FHS/BHS-1/2),
	// which define the delimiters and cannot be changed value by value.
	ErrNotSettable = errors.New("hl7v2: value cannot be set")

	// ErrNoSegment is returned by Set when the path names a segment occurrence
	// more than one past the last existing one.
	ErrNoSegment = errors.New("hl7v2: no such segment")

	// ErrBatch is returned by ParseBatch for a batch or file whose structure
	// is wrong: segments outside a message, nested headers, trailers without
	// headers, counts that disagree with the content.
	ErrBatch = errors.New("hl7v2: invalid batch")

	// ErrAckForAck is returned by BuildACK when asked to acknowledge an
	// acknowledgement: the standard forbids it and doing it makes two
	// systems ACK each other forever.
	ErrAckForAck = errors.New("hl7v2: an acknowledgement is never acknowledged")

	// ErrNotAck is returned by ParseACK when the message has no MSA segment.
	ErrNotAck = errors.New("hl7v2: message is not an acknowledgement")

	// ErrCharset is returned by Encoder lookups, LookupCharset and
	// ParserConfig.Options for a character set name the package cannot
	// decode.
	ErrCharset = errors.New("hl7v2: unsupported character set")
)

// ParseError locates a parse failure in the input. It wraps one of the
// sentinel errors above, so errors.Is works on it. Its text names positions
// and lengths only, never input bytes, so it may be logged, dead-lettered
// and sent back in an ACK.
type ParseError struct {
	Err     error // the sentinel
	Segment int   // 1-based index of the segment in the input, 0 if not known
	Offset  int   // byte offset of the problem in the input
	Detail  string
	// Location is the header field or segment at fault where one can be
	// named (MSH-1 or MSH-2 for ErrDelimiters, the second MSH for
	// ErrBatch); zero when the segment at fault has no usable ID.
	Location Location
}

// Error puts the position before the detail, so a reader (or an MSA-3 cut
// to its 80 characters) sees where the problem is first.
func (e *ParseError) Error() string {
	msg := e.Err.Error()
	if e.Segment > 0 {
		msg += fmt.Sprintf(" (segment %d, byte %d)", e.Segment, e.Offset)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *ParseError) Unwrap() error { return e.Err }

// RuleParse is the Issue.Rule of issues made by ParseIssue.
const RuleParse = "parse"

// ParseIssue turns an error from Parse or ParseBatch into the Issue an AR
// carries in ERR: table 0357 code 102 (data type error) for unusable
// delimiters, 100 (segment sequence error) for a missing MSH, a bad segment
// ID or a second message, 207 for anything else; the location where the
// error has one (see ParseError.Location); the error's text, which quotes no
// content.
func ParseIssue(err error) Issue {
	is := Issue{Severity: SeverityError, Code: CodeInternalError, Rule: RuleParse}
	if err == nil {
		return is
	}
	is.Text = err.Error()
	switch {
	case errors.Is(err, ErrDelimiters):
		is.Code = CodeDataType
	case errors.Is(err, ErrNoMSH), errors.Is(err, ErrSegmentName), errors.Is(err, ErrBatch):
		is.Code = CodeSegmentSequence
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		is.Location = pe.Location
	}
	return is
}
