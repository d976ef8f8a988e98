package hl7v2

import (
	"errors"
	"fmt"
)

// Delimiters are the separators and escape character a message declares in
// MSH-1 and MSH-2.
type Delimiters struct {
	Field        byte
	Component    byte
	Repetition   byte
	Escape       byte
	Subcomponent byte
	// Truncation is the fifth encoding character introduced in v2.7, or 0
	// when MSH-2 has four characters.
	Truncation byte
}

// DefaultDelimiters are the delimiters nearly every sender uses: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// String returns the delimiters as they appear at the start of MSH: the field
// separator followed by the encoding characters.
func (d Delimiters) String() string {
	return string(d.appendTo(nil))
}

// EncodingCharacters returns MSH-2 as the sender wrote it.
func (d Delimiters) EncodingCharacters() string {
	return string(d.appendTo(nil)[1:])
}

func (d Delimiters) appendTo(b []byte) []byte {
	b = append(b, d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent)
	if d.Truncation != 0 {
		b = append(b, d.Truncation)
	}
	return b
}

// delimitersFrom reads the field separator and encoding characters that
// follow a three-letter header segment ID (MSH, FHS, BHS) in seg. It returns
// the delimiters, the length of the encoding characters, and on failure a
// *delimiterError saying which position is wrong.
//
// Errors name positions and lengths, never bytes: with a wrong field
// separator "the encoding characters" run to the next byte equal to it,
// which can be a patient's whole PID, and these errors reach logs, DLQ
// reasons, span status and ACKs.
func delimitersFrom(seg []byte) (Delimiters, int, error) {
	if len(seg) < 4 {
		return Delimiters{}, 0, &delimiterError{field: 1, detail: string(seg[:min(len(seg), 3)]) + " has no field separator"}
	}
	name := string(seg[:3])
	d := Delimiters{Field: seg[3]}
	if !usableDelimiter(d.Field) {
		return Delimiters{}, 0, &delimiterError{field: 1, detail: name + "-1 field separator cannot be a delimiter (a letter, digit, space or line break)"}
	}
	n := 0
	for n < len(seg)-4 && seg[4+n] != d.Field {
		n++
	}
	enc := seg[4 : 4+n]
	// Four characters are the classic set; v2.7 added the truncation
	// character as a fifth. Anything else means we cannot know how the sender
	// delimits components, so guessing would corrupt data.
	if n != 4 && n != 5 {
		return Delimiters{}, 0, &delimiterError{field: 2,
			detail: fmt.Sprintf("%s-2 must be 4 or 5 characters (found %d before the next field separator)", name, n)}
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	if n == 5 {
		d.Truncation = enc[4]
	}
	for i, c := range enc {
		if !usableDelimiter(c) {
			return Delimiters{}, 0, &delimiterError{field: 2,
				detail: fmt.Sprintf("%s-2 character %d cannot be a delimiter (a letter, digit, space or line break)", name, i+1)}
		}
		for j, o := range enc[:i] {
			if o == c {
				return Delimiters{}, 0, &delimiterError{field: 2,
					detail: fmt.Sprintf("%s-2 character %d repeats character %d: one character cannot stand for two delimiters", name, i+1, j+1)}
			}
		}
	}
	return d, n, nil
}

// usableDelimiter reports whether c may separate values: not a segment
// terminator, not a space and not a character that can be data.
func usableDelimiter(c byte) bool {
	return c != '\r' && c != '\n' && c != ' ' && !isAlnum(c)
}

// delimiterError is what delimitersFrom returns: the header field at fault
// (1 for the field separator, 2 for the encoding characters) and a
// content-free explanation. Callers wrap it in a ParseError with
// ErrDelimiters.
type delimiterError struct {
	field  int
	detail string
}

func (e *delimiterError) Error() string { return e.detail }

// delimiterParseError turns a delimitersFrom failure of the header segment
// named name (the occ-th of its kind) into a ParseError that locates it.
func delimiterParseError(err error, name string, occ, seg, off int) *ParseError {
	pe := &ParseError{Err: ErrDelimiters, Segment: seg, Offset: off, Detail: err.Error(),
		Location: Location{Segment: name, Occurrence: occ, Field: 2}}
	var de *delimiterError
	if errors.As(err, &de) {
		pe.Location.Field = de.field
	}
	return pe
}

func isAlnum(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
