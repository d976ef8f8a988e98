package hl7v2

import (
	"bytes"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

// controls reports C0 control characters inside values: NUL, ESC, SUB and
// the rest as RuleControlCharacter, and TAB or LF, which are text in TX and
// FT, as RuleControlLayout where the field's type is known and is neither.
// Delimiters are exempt (a sender may pick a control character as one). At
// most one issue per field and rule, located down to the component (and
// subcomponent) where the first such byte sits; the byte's code is named,
// never the text around it.
func (c *check) controls() {
	d := c.m.c.d
	for i, s := range c.m.segs {
		if !hasControl(s.raw) {
			continue
		}
		var def *defs.Segment
		if c.ver != nil {
			def, _ = c.ver.Segment(string(s.nameBytes()))
		}
		occ := 0
		for e := 1; e < len(s.b)-1; e++ {
			n := e
			if s.isHeader() {
				if e == 1 {
					continue // MSH-2: the encoding characters themselves
				}
				n = e + 1
			}
			raw := s.raw[s.b[e] : s.b[e+1]-1]
			hard, layout := -1, -1
			for k, ch := range raw {
				if ch >= 0x20 || d.isDelimiter(ch) {
					continue
				}
				if ch == '\t' || ch == '\n' {
					if layout < 0 {
						layout = k
					}
				} else if hard < 0 {
					hard = k
				}
			}
			if hard < 0 && layout < 0 {
				continue
			}
			if occ == 0 {
				occ = c.occurrence(i)
			}
			if hard >= 0 {
				loc := valueLocation(s.Name(), occ, n, raw, hard, d)
				c.add(RuleControlCharacter, CodeDataType, loc, "%s holds a control character (0x%02X), which no HL7 data type allows", loc, raw[hard])
			}
			if layout >= 0 && def != nil && !textField(def, n, s) {
				loc := valueLocation(s.Name(), occ, n, raw, layout, d)
				c.add(RuleControlLayout, CodeDataType, loc, "%s holds a tab or line feed, which only TX and FT values carry as text", loc)
			}
		}
	}
}

// hasControl is the fast path: most segments hold no byte below 0x20.
func hasControl(b []byte) bool {
	for _, ch := range b {
		if ch < 0x20 {
			return true
		}
	}
	return false
}

// isDelimiter reports whether ch is one of the delimiters inside a field.
func (d Delimiters) isDelimiter(ch byte) bool {
	return ch == d.Component || ch == d.Repetition || ch == d.Escape || ch == d.Subcomponent ||
		d.Truncation != 0 && ch == d.Truncation
}

// textField reports whether field n of segment s (defined by def) may carry
// TAB and LF as text, or is of a type nothing can be said about: TX, FT and
// CF (whose text is FT), an OBX-5 whose OBX-2 says one of those, an OBX-5
// of unknown type, a withdrawn field or one past the definition.
func textField(def *defs.Segment, n int, s Segment) bool {
	if n > len(def.Fields) {
		return true
	}
	fd := def.Fields[n-1]
	typ := fd.Type
	if typ == "varies" || typ == "Varies" || typ == "*" {
		if !s.Is("OBX") || n != 5 {
			return true
		}
		typ = string(bytes.TrimSpace(s.Field(2).Comp(1).Raw()))
	}
	switch typ {
	case "TX", "FT", "CF", "":
		return true
	}
	return fd.Max == 0
}

// valueLocation locates byte k of field n's raw value: repetition and
// component always, subcomponent when the component has several.
func valueLocation(seg string, occ, n int, raw []byte, k int, d Delimiters) Location {
	l := Location{Segment: seg, Occurrence: occ, Field: n}
	part, idx := raw, k
	l.Repetition, part, idx = splitAt(part, idx, d.Repetition)
	l.Component, part, idx = splitAt(part, idx, d.Component)
	if bytes.IndexByte(part, d.Subcomponent) >= 0 {
		l.Subcomponent, _, _ = splitAt(part, idx, d.Subcomponent)
	}
	return l
}

// splitAt returns which sep-separated part of b holds byte k (1-based),
// that part, and k's offset in it.
func splitAt(b []byte, k int, sep byte) (int, []byte, int) {
	start := bytes.LastIndexByte(b[:k], sep) + 1
	end := bytes.IndexByte(b[k:], sep)
	if end < 0 {
		end = len(b)
	} else {
		end += k
	}
	return bytes.Count(b[:start], []byte{sep}) + 1, b[start:end], k - start
}
