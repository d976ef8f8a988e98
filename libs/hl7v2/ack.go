package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Acknowledgement codes (HL7 table 0008).
const (
	AckAccept       = "AA" // original mode / application ACK: accepted
	AckError        = "AE" // application error: the sender may retry or fix
	AckReject       = "AR" // rejected: do not resend unchanged
	AckCommitAccept = "CA" // enhanced mode accept ACK: committed to safe storage
	AckCommitError  = "CE" // enhanced mode: could not commit, retry
	AckCommitReject = "CR" // enhanced mode: will never accept this message
)

// Acknowledgement conditions of MSH-15 and MSH-16 (HL7 table 0155).
const (
	AckAlways  = "AL"
	AckNever   = "NE"
	AckOnError = "ER"
	AckSuccess = "SU"
)

// AckPlan says which acknowledgements a message asks for.
type AckPlan struct {
	// Enhanced is true when MSH-15 or MSH-16 is valued; otherwise original
	// mode rules apply and exactly one ACK (AA/AE/AR) is owed.
	Enhanced bool
	// Accept and Application are MSH-15 and MSH-16. In enhanced mode an
	// empty one reads as AL: a sender that asked for enhanced mode but left
	// one condition out is better served by an ACK it did not need than by
	// silence it cannot tell from a lost message.
	Accept, Application string
}

// PlanAck reads MSH-15 and MSH-16 of m.
func PlanAck(m *Message) AckPlan {
	p := AckPlan{Accept: strings.ToUpper(m.Header(15)), Application: strings.ToUpper(m.Header(16))}
	p.Enhanced = p.Accept != "" || p.Application != ""
	return p
}

// WantAccept reports whether an accept ACK (CA/CE/CR) is owed, given whether
// the message was committed.
func (p AckPlan) WantAccept(ok bool) bool {
	return p.Enhanced && want(p.Accept, ok)
}

// WantApplication reports whether an application ACK (AA/AE/AR) is owed in
// enhanced mode, given whether processing succeeded. In original mode the
// application ACK is always owed.
func (p AckPlan) WantApplication(ok bool) bool {
	return !p.Enhanced || want(p.Application, ok)
}

func want(cond string, ok bool) bool {
	switch cond {
	case AckNever:
		return false
	case AckOnError:
		return !ok
	case AckSuccess:
		return ok
	}
	return true
}

// IsAck reports whether m is itself an acknowledgement, which must never be
// acknowledged: MSH-9.1 is ACK (or MCF, v2.1's delayed acknowledgement).
// The message type decides, not an MSA segment: a message of another type
// that carries a stray MSA is a malformed message its sender waits to have
// answered (probe case 1.17b), not an ACK to swallow. ParseACK, which reads
// replies, still matches on MSA alone.
func IsAck(m *Message) bool {
	code, _, _ := m.Type()
	return code == "ACK" || code == "MCF"
}

// AckSpec describes an ACK to build.
type AckSpec struct {
	// Code is MSA-1: AA, AE, AR, CA, CE or CR.
	Code string
	// ControlID is the ACK's own MSH-10; it should be unique (hl7bus uses
	// the message ULID).
	ControlID string
	// Time is MSH-7; zero means now.
	Time time.Time
	// Text is a short human explanation, sent as MSA-3 before v2.5 and as
	// ERR-8 from v2.5 on (when there are no Issues, whose own texts go to
	// ERR-8 then). Before v2.5 an empty Text is filled from the Issues, since
	// ERR has no text field there: MSA-3 carries the first error's text
	// (with a count of the others), so an AR or AE explains itself.
	Text string
	// Issues become ERR segments (or ERR-1 repetitions before v2.5, each
	// segment ID ^ sequence ^ field position ^ code&text&HL70357 as the ELD
	// type of 2.2-2.4 defines it).
	Issues []Issue
}

// BuildACK builds the acknowledgement of in: sender and receiver swapped,
// MSA-2 = in's MSH-10, MSH-9 ACK^<trigger> (with ^ACK from v2.5), the same
// delimiters, processing ID, version and character set. It refuses to
// acknowledge an acknowledgement.
func BuildACK(in *Message, spec AckSpec) (*Message, error) {
	if IsAck(in) {
		return nil, ErrAckForAck
	}
	switch spec.Code {
	case AckAccept, AckError, AckReject, AckCommitAccept, AckCommitError, AckCommitReject:
	default:
		return nil, fmt.Errorf("hl7v2: unknown acknowledgement code %q", spec.Code)
	}
	d := in.c.d
	ver := in.Version()
	w := ackWriter{d: d}
	msh := in.MSH()
	raw := func(n int) []byte { return msh.Field(n).Raw() }
	t := spec.Time
	if t.IsZero() {
		t = time.Now()
	}
	ctl := spec.ControlID
	if ctl == "" {
		ctl = "ACK" + strconv.FormatInt(t.UnixNano(), 36)
	}
	_, trigger, _ := in.Type()
	msgType := "ACK"
	if trigger != "" && versionAtLeast(ver, 2, 2) {
		msgType += string(d.Component) + escapeString(trigger, d)
		if versionAtLeast(ver, 2, 5) {
			msgType += string(d.Component) + "ACK"
		}
	}
	// MSH: field separator and encoding characters are written by hand, the
	// other fields go through the escaping writer.
	w.buf = append(w.buf, "MSH"...)
	w.buf = d.appendTo(w.buf)
	w.fields(raw(5), raw(6), raw(3), raw(4), []byte(t.Format("20060102150405.000-0700")), nil,
		[]byte(msgType), []byte(escapeString(ctl, d)), raw(11), raw(12))
	if cs := raw(18); len(cs) > 0 {
		w.fields(nil, nil, nil, nil, nil, cs)
	}
	w.end()

	w.seg("MSA")
	w.fields([]byte(spec.Code), raw(10))
	old := !versionAtLeast(ver, 2, 5)
	if text := spec.Text; old {
		if text == "" {
			text = issueSummary(spec.Issues)
		}
		if text != "" {
			w.fields([]byte(escapeString(fitText(text, maxMSAText), d)))
		}
	}
	w.end()

	if len(spec.Issues) > 0 && old {
		// Before v2.5 one ERR carries every error as a repetition of ERR-1
		// (ELD: segment ^ sequence ^ field ^ code & text & table).
		w.seg("ERR")
		w.buf = append(w.buf, d.Field)
		for i, is := range spec.Issues {
			if i > 0 {
				w.buf = append(w.buf, d.Repetition)
			}
			l := is.Location
			w.buf = append(w.buf, escapeString(l.Segment, d)...)
			w.buf = append(w.buf, d.Component)
			w.buf = appendInt(w.buf, l.Occurrence)
			w.buf = append(w.buf, d.Component)
			w.buf = appendInt(w.buf, l.Field)
			w.buf = append(w.buf, d.Component)
			w.buf = strconv.AppendInt(w.buf, int64(is.Code), 10)
			w.buf = append(w.buf, d.Subcomponent)
			w.buf = append(w.buf, escapeString(is.Code.Text(), d)...)
			w.buf = append(w.buf, d.Subcomponent)
			w.buf = append(w.buf, "HL70357"...)
		}
		w.end()
	}
	if !old {
		for _, is := range spec.Issues {
			l := is.Location
			loc := joinLevel(d.Component, escapeString(l.Segment, d), itoa0(l.Occurrence), itoa0(l.Field),
				itoa0(l.Repetition), itoa0(l.Component), itoa0(l.Subcomponent))
			code := joinLevel(d.Component, strconv.Itoa(int(is.Code)), escapeString(is.Code.Text(), d), "HL70357")
			sev := is.Severity
			if sev == "" {
				sev = SeverityError
			}
			w.seg("ERR")
			w.fields(nil, []byte(loc), []byte(code), []byte(sev), nil, nil, nil, []byte(escapeString(is.Text, d)))
			w.end()
		}
		if spec.Text != "" && len(spec.Issues) == 0 {
			sev := SeverityError
			code := CodeInternalError
			if spec.Code == AckAccept || spec.Code == AckCommitAccept {
				sev, code = SeverityInfo, CodeAccepted
			}
			w.seg("ERR")
			w.fields(nil, nil, []byte(joinLevel(d.Component, strconv.Itoa(int(code)), escapeString(code.Text(), d), "HL70357")),
				[]byte(sev), nil, nil, nil, []byte(escapeString(spec.Text, d)))
			w.end()
		}
	}
	return Parse(w.buf)
}

// maxMSAText is the length of MSA-3 (ST) in every version that uses it
// (2.1-2.6, withdrawn in 2.7). A receiver may enforce it, so a longer text is
// cut rather than risk an ACK that is itself rejected; parse errors put
// their position first so the cut keeps it.
const maxMSAText = 80

// issueSummary is the MSA-3 text for issues before v2.5: the first error's
// text (or the first issue's), and how many more ERR-1 lists.
func issueSummary(issues []Issue) string {
	if len(issues) == 0 {
		return ""
	}
	first := issues[0]
	for _, is := range issues {
		if is.Severity == SeverityError || is.Severity == "" {
			first = is
			break
		}
	}
	text := first.Text
	if text == "" {
		text = first.Code.Text()
	}
	if len(issues) > 1 {
		text += fmt.Sprintf(" (%d more in ERR)", len(issues)-1)
	}
	return text
}

// fitText cuts s to at most n bytes, on a character boundary, marking the
// cut with "...".
func fitText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

type ackWriter struct {
	d   Delimiters
	buf []byte
}

func (w *ackWriter) seg(name string) { w.buf = append(w.buf, name...) }

// fields appends each value preceded by a field separator, then drops
// trailing empty fields so the segment ends at its last valued field.
func (w *ackWriter) fields(vals ...[]byte) {
	for _, v := range vals {
		w.buf = append(w.buf, w.d.Field)
		w.buf = append(w.buf, v...)
	}
}

func (w *ackWriter) end() {
	for len(w.buf) > 0 && w.buf[len(w.buf)-1] == w.d.Field {
		w.buf = w.buf[:len(w.buf)-1]
	}
	w.buf = append(w.buf, '\r')
}

func escapeString(s string, d Delimiters) string { return string(Escape([]byte(s), d)) }

func appendInt(b []byte, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(b, int64(n), 10)
}

func itoa0(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// joinLevel joins parts with sep and drops trailing empty parts.
func joinLevel(sep byte, parts ...string) string {
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, string(sep))
}

// versionAtLeast compares a version ID such as "2.5.1" with major.minor.
// An empty or unreadable version counts as the newest, because modern
// structure is the better guess for a sender that does not say.
func versionAtLeast(v string, major, minor int) bool {
	ma, mi, ok := splitVersion(v)
	if !ok {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

func splitVersion(v string) (int, int, bool) {
	parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	return ma, mi, err1 == nil && err2 == nil
}

// Ack is a received acknowledgement.
type Ack struct {
	// Code is MSA-1 (AA, AE, AR, CA, CE, CR), upper-cased.
	Code string
	// ControlID is MSA-2: the MSH-10 of the message acknowledged.
	ControlID string
	// Text is MSA-3 (older versions) or the first ERR-8.
	Text string
	// Errors are the error codes the ACK reports (ERR-3.1, or ERR-1.4.1).
	Errors []ErrorCode
	// Message is the whole parsed ACK.
	Message *Message
}

// ParseACK reads an acknowledgement. It matches on MSA only: peers that put
// a wrong version in MSH-12, reuse MSH-10 or send MSH-9 "ACK" without a
// trigger are common and still tell us what we need.
func ParseACK(data []byte) (*Ack, error) {
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parsing acknowledgement: %w", err)
	}
	msa, ok := m.Segment("MSA", 1)
	if !ok {
		return nil, ErrNotAck
	}
	a := &Ack{
		Code:      strings.ToUpper(strings.TrimSpace(msa.Field(1).String())),
		ControlID: strings.TrimSpace(msa.Field(2).String()),
		Text:      msa.Field(3).String(),
		Message:   m,
	}
	for i := 1; i <= m.Count("ERR"); i++ {
		e, _ := m.Segment("ERR", i)
		if c := e.Field(3).Comp(1); !c.IsEmpty() {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(c.Raw()))); err == nil {
				a.Errors = append(a.Errors, ErrorCode(n))
			}
			if a.Text == "" {
				a.Text = e.Field(8).String()
			}
			continue
		}
		for _, r := range e.Field(1).Reps() {
			if n, err := strconv.Atoi(string(bytes.TrimSpace(r.Comp(4).Sub(1).Raw()))); err == nil {
				a.Errors = append(a.Errors, ErrorCode(n))
			}
		}
	}
	return a, nil
}

// Matches reports whether the ACK acknowledges the message with MSH-10
// controlID.
func (a *Ack) Matches(controlID string) bool { return a.ControlID == strings.TrimSpace(controlID) }

// Accepted reports AA or CA.
func (a *Ack) Accepted() bool { return a.Code == AckAccept || a.Code == AckCommitAccept }

// Rejected reports AR or CR: the receiver will not take this message as it
// is, so resending it unchanged is pointless.
func (a *Ack) Rejected() bool { return a.Code == AckReject || a.Code == AckCommitReject }
