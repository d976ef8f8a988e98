package hl7v2

import "bytes"

// Unescape decodes the escape sequences of one leaf value (see the package
// documentation for which are decoded and which are kept). It returns v
// itself when there is nothing to decode.
func Unescape(v []byte, d Delimiters) []byte {
	esc := d.Escape
	i := bytes.IndexByte(v, esc)
	if i < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i >= 0 {
		out = append(out, v[:i]...)
		v = v[i:]
		j := bytes.IndexByte(v[1:], esc)
		if j < 0 {
			// No closing escape character: keep the rest as text.
			return append(out, v...)
		}
		seq := v[1 : 1+j]
		whole := v[:j+2]
		v = v[j+2:]
		out = appendEscape(out, seq, whole, d)
		i = bytes.IndexByte(v, esc)
	}
	return append(out, v...)
}

// appendEscape appends what one escape sequence (seq, between the escape
// characters; whole includes them) decodes to.
func appendEscape(out, seq, whole []byte, d Delimiters) []byte {
	if len(seq) == 1 {
		switch seq[0] {
		case 'F':
			return append(out, d.Field)
		case 'S':
			return append(out, d.Component)
		case 'T':
			return append(out, d.Subcomponent)
		case 'R':
			return append(out, d.Repetition)
		case 'E':
			return append(out, d.Escape)
		case 'P':
			if d.Truncation != 0 {
				return append(out, d.Truncation)
			}
		}
		return append(out, whole...)
	}
	if len(seq) > 1 && seq[0] == 'X' {
		if b, ok := decodeHex(seq[1:]); ok {
			return append(out, b...)
		}
	}
	// Formatting (\H\, \.br\...), character set (\C..\, \M..\), local (\Z..\)
	// and malformed sequences are kept as the sender wrote them.
	return append(out, whole...)
}

func decodeHex(h []byte) ([]byte, bool) {
	if len(h)%2 != 0 || len(h) == 0 {
		return nil, false
	}
	out := make([]byte, len(h)/2)
	for i := range out {
		hi, ok1 := hexVal(h[2*i])
		lo, ok2 := hexVal(h[2*i+1])
		if !ok1 || !ok2 {
			return nil, false
		}
		out[i] = hi<<4 | lo
	}
	return out, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Escape returns v with every delimiter (and the escape character itself)
// replaced by its escape sequence, ready to stand as one leaf value. CR and
// LF, which would end the segment, become \X0D\ and \X0A\.
func Escape(v []byte, d Delimiters) []byte {
	if !needsEscape(v, d) {
		return v
	}
	out := make([]byte, 0, len(v)+8)
	for _, ch := range v {
		var code string
		switch {
		case ch == d.Escape:
			code = "E"
		case ch == d.Field:
			code = "F"
		case ch == d.Component:
			code = "S"
		case ch == d.Subcomponent:
			code = "T"
		case ch == d.Repetition:
			code = "R"
		case ch == d.Truncation && d.Truncation != 0:
			code = "P"
		case ch == '\r':
			code = "X0D"
		case ch == '\n':
			code = "X0A"
		default:
			out = append(out, ch)
			continue
		}
		out = append(out, d.Escape)
		out = append(out, code...)
		out = append(out, d.Escape)
	}
	return out
}

func needsEscape[T string | []byte](v T, d Delimiters) bool {
	for i := range len(v) {
		ch := v[i]
		if ch == d.Escape || ch == d.Field || ch == d.Component || ch == d.Subcomponent ||
			ch == d.Repetition || ch == '\r' || ch == '\n' || (ch == d.Truncation && d.Truncation != 0) {
			return true
		}
	}
	return false
}

// MalformedEscape reports the first escape sequence in v that Unescape keeps
// verbatim because it is malformed, or "" when there is none. Formatting and
// character-set escapes are well formed and not reported. The result is
// message content: test it, never log it or put it in an error.
func MalformedEscape(v []byte, d Delimiters) string {
	esc := d.Escape
	for {
		i := bytes.IndexByte(v, esc)
		if i < 0 {
			return ""
		}
		j := bytes.IndexByte(v[i+1:], esc)
		if j < 0 {
			return string(v[i:])
		}
		seq := v[i+1 : i+1+j]
		if !wellFormedEscape(seq, d) {
			return string(v[i : i+j+2])
		}
		v = v[i+j+2:]
	}
}

func wellFormedEscape(seq []byte, d Delimiters) bool {
	if len(seq) == 0 {
		return false
	}
	switch seq[0] {
	case 'F', 'S', 'T', 'R', 'E', 'H', 'N':
		return len(seq) == 1
	case 'P':
		return len(seq) == 1 && d.Truncation != 0
	case 'X':
		_, ok := decodeHex(seq[1:])
		return ok
	case 'C', 'M':
		_, ok := decodeHex(seq[1:])
		return ok && (len(seq) == 5 || len(seq) == 7)
	case 'Z':
		return len(seq) > 1
	case '.':
		return len(seq) >= 3
	}
	return false
}
