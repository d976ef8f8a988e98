package hl7v2

import "fmt"

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
// the delimiters and the length of the encoding characters.
func delimitersFrom(seg []byte) (Delimiters, int, error) {
	if len(seg) < 4 {
		return Delimiters{}, 0, fmt.Errorf("%w: header segment too short", ErrDelimiters)
	}
	d := Delimiters{Field: seg[3]}
	n := 0
	for n < len(seg)-4 && seg[4+n] != d.Field {
		n++
	}
	enc := seg[4 : 4+n]
	// Four characters are the classic set; v2.7 added the truncation
	// character as a fifth. Anything else means we cannot know how the sender
	// delimits components, so guessing would corrupt data.
	if n != 4 && n != 5 {
		return Delimiters{}, 0, fmt.Errorf("%w: encoding characters %q must be 4 or 5 characters", ErrDelimiters, enc)
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	if n == 5 {
		d.Truncation = enc[4]
	}
	all := d.appendTo(nil)
	for i, c := range all {
		if c == '\r' || c == '\n' || isAlnum(c) || c == ' ' {
			return Delimiters{}, 0, fmt.Errorf("%w: %q cannot be a delimiter", ErrDelimiters, c)
		}
		for _, o := range all[:i] {
			if o == c {
				return Delimiters{}, 0, fmt.Errorf("%w: %q is used for two delimiters", ErrDelimiters, c)
			}
		}
	}
	return d, n, nil
}

func isAlnum(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}
