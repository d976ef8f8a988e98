package hl7v2

import (
	"bytes"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

// HeaderPeek holds the MSH fields a receiver needs to answer a message it
// cannot parse: enough to put the sender's control ID in MSA-2 and to pick
// AR or CR, when MSH-1 is sound but MSH-2 is not (probe cases 1.3-1.5).
// Values are in wire form (escapes not decoded: the escape character is
// what may be broken) and "" when the header does not reach them.
type HeaderPeek struct {
	FieldSeparator byte
	MessageType    string // MSH-9, components not split
	ControlID      string // MSH-10
	ProcessingID   string // MSH-11
	Version        string // MSH-12, components not split
	AcceptAck      string // MSH-15
	ApplicationAck string // MSH-16
}

// maxPeekEncoding bounds the MSH-2 PeekHeader accepts. Real encoding
// characters are 4 or 5 bytes; a broken MSH-2 is seldom much longer. A long
// one means the byte after "MSH" is not the sender's field separator at all,
// and splitting on it would hand out pieces of the message body (a PID, a
// name) as "MSH-10".
const maxPeekEncoding = 8

// PeekHeader reads MSH-9, MSH-10, MSH-11, MSH-12, MSH-15 and MSH-16 from
// the first segment of frame by splitting on the field separator alone,
// without the encoding characters. It is for answering a frame Parse
// refused (ErrDelimiters); a frame that parses should be read with Parse.
// ok is false when the frame does not start with MSH (after a byte-order
// mark and blank lines), when the byte after "MSH" cannot be a field
// separator, or when MSH-2 runs longer than a broken encoding-characters
// field plausibly does, that is when MSH-1 itself is not sound.
func PeekHeader(frame []byte) (HeaderPeek, bool) {
	data := bytes.TrimPrefix(frame, bom)
	sc := scanner{data: data, term: terminator(data)}
	seg, _, found := sc.next()
	if !found || len(seg) < 4 || !bytes.HasPrefix(seg, []byte("MSH")) || !usableDelimiter(seg[3]) {
		return HeaderPeek{}, false
	}
	fs := seg[3]
	// fields[0] is MSH-2, fields[k] is MSH-(k+2).
	fields := bytes.Split(seg[4:], []byte{fs})
	if len(fields[0]) > maxPeekEncoding {
		return HeaderPeek{}, false
	}
	at := func(n int) string {
		if i := n - 2; i < len(fields) {
			return string(fields[i])
		}
		return ""
	}
	return HeaderPeek{FieldSeparator: fs, MessageType: at(9), ControlID: at(10), ProcessingID: at(11),
		Version: at(12), AcceptAck: at(15), ApplicationAck: at(16)}, true
}

// RequiredHeaderIssues returns an error Issue (table 0357 code 101,
// Rule "required") for each header field without which a message cannot be
// identified, acknowledged or interpreted: MSH-9 (or its message code,
// MSH-9.1; and its trigger event, MSH-9.2, in versions that require one:
// 2.6 on), MSH-10 and MSH-12. A value of spaces or the explicit null "" counts as missing.
// Validate reports the same findings (with the severity a profile gives
// RuleRequired); this function always says error, for a receiver that
// rejects such messages whatever the profile (hl7bus ingress answers AR).
func RequiredHeaderIssues(m *Message) []Issue {
	var out []Issue
	headerRequired(m, func(loc Location, text string) {
		out = append(out, Issue{Severity: SeverityError, Code: CodeRequiredFieldMissing, Location: loc, Rule: RuleRequired, Text: text})
	})
	return out
}

// headerRequired calls add for each missing required header field, in
// field order.
func headerRequired(m *Message, add func(loc Location, text string)) {
	msh := Location{Segment: "MSH", Occurrence: 1}
	at := func(f, c int) Location { l := msh; l.Field, l.Component = f, c; return l }
	f9 := m.MSH().Field(9)
	switch {
	case missing(f9):
		add(at(9, 0), "MSH-9 message type is required")
	case missing(f9.Comp(1)):
		add(at(9, 1), "MSH-9.1 message code is required")
	case missing(f9.Comp(2)) && triggerRequired(m.Version()):
		add(at(9, 2), "MSH-9.2 trigger event is required in this version")
	}
	if missing(m.MSH().Field(10)) {
		add(at(10, 0), "MSH-10 message control ID is required")
	}
	if missing(m.MSH().Field(12)) {
		add(at(12, 0), "MSH-12 version ID is required")
	}
}

// missing reports a value that is absent, empty, only spaces or the
// explicit null: none of them identifies anything.
func missing(v Value) bool {
	raw := bytes.TrimSpace(v.Raw())
	return len(raw) == 0 || len(raw) == 2 && raw[0] == '"' && raw[1] == '"'
}

// triggerRequired reports whether the definitions of version ver make
// MSH-9.2 required (they do from 2.6 on). An unknown version requires
// nothing: it is reported on its own.
func triggerRequired(ver string) bool {
	if !versionAtLeast(ver, 2, 1) || versionAtLeast(ver, 2, 9) {
		return false
	}
	vd, ok := defs.Lookup(ver)
	if !ok {
		return false
	}
	msh, ok := vd.Segment("MSH")
	if !ok || len(msh.Fields) < 9 {
		return false
	}
	dt, ok := vd.DataType(msh.Fields[8].Type)
	return ok && len(dt.Components) > 1 && dt.Components[1].Min > 0
}

// StrayMSA reports an MSA segment in a message that is not an
// acknowledgement (see IsAck), as the error Issue (table 0357 code 100,
// located at the first MSA) a receiver answers it with: such a message is
// neither an ACK to leave unanswered nor a well-formed message of its type
// (probe case 1.17b). It returns false when m has no MSA or is an ACK.
func StrayMSA(m *Message) (Issue, bool) {
	if IsAck(m) || m.Count("MSA") == 0 {
		return Issue{}, false
	}
	return Issue{Severity: SeverityError, Code: CodeSegmentSequence, Location: Location{Segment: "MSA", Occurrence: 1},
		Rule: RuleUnexpectedSegment, Text: "MSA belongs in acknowledgements; this message's MSH-9.1 is not ACK"}, true
}
