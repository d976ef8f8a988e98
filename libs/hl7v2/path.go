package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Path addresses a value in a message; see the package documentation for the
// grammar. Zero Occurrence or Repetition means "not given" (read as 1); zero
// Component or Subcomponent means the path stops above that level.
//
// A path with a wildcard ([*] on the segment occurrence or the field
// repetition) addresses every match: read it with Values, enumerate its
// concrete paths with Expand. Occurrence (or Repetition) is 0 when its
// wildcard is set.
type Path struct {
	Segment      string
	Occurrence   int
	Field        int
	Repetition   int
	Component    int
	Subcomponent int
	// WildcardOccurrence is [*] after the segment: every occurrence.
	WildcardOccurrence bool
	// WildcardRepetition is [*] after the field: every repetition.
	WildcardRepetition bool
}

// IsWildcard reports whether p addresses every match of a wildcard rather
// than one value.
func (p Path) IsWildcard() bool { return p.WildcardOccurrence || p.WildcardRepetition }

// ParsePath parses a path such as PID-3[2].1, OBX[3]-5 or OBX[*]-3[*].1.
func ParsePath(s string) (Path, error) {
	var p Path
	// s is consumed as parsing goes; the error quotes the whole path as
	// given, so a caller (a rule's key, a CLI flag) sees what it wrote.
	path := s
	bad := func(why string) (Path, error) {
		return Path{}, fmt.Errorf("%w %q: %s", ErrPath, path, why)
	}
	if len(s) < 5 {
		return bad("too short; expected e.g. PID-3")
	}
	if !validSegmentName([]byte(s[:3])) {
		return bad("segment must be 3 upper-case letters or digits")
	}
	p.Segment, s = s[:3], s[3:]
	var err error
	if strings.HasPrefix(s, "[*]") {
		p.WildcardOccurrence, s = true, s[3:]
	} else if strings.HasPrefix(s, "[") {
		if p.Occurrence, s, err = bracket(s); err != nil {
			return bad("segment occurrence: " + err.Error())
		}
	}
	if !strings.HasPrefix(s, "-") {
		return bad("expected - and a field number after the segment")
	}
	if p.Field, s, err = number(s[1:]); err != nil {
		return bad("field: " + err.Error())
	}
	if strings.HasPrefix(s, "[*]") {
		p.WildcardRepetition, s = true, s[3:]
	} else if strings.HasPrefix(s, "[") {
		if p.Repetition, s, err = bracket(s); err != nil {
			return bad("repetition: " + err.Error())
		}
	}
	if strings.HasPrefix(s, ".") {
		if p.Component, s, err = number(s[1:]); err != nil {
			return bad("component: " + err.Error())
		}
		if strings.HasPrefix(s, ".") {
			if p.Subcomponent, s, err = number(s[1:]); err != nil {
				return bad("subcomponent: " + err.Error())
			}
		}
	}
	if s != "" {
		return bad(fmt.Sprintf("unexpected %q", s))
	}
	return p, nil
}

func bracket(s string) (int, string, error) {
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0, s, fmt.Errorf("missing ]")
	}
	n, rest, err := number(s[1:end])
	if err == nil && rest != "" {
		err = fmt.Errorf("not a number")
	}
	return n, s[end+1:], err
}

// number reads a positive decimal integer at the start of s.
func number(s string) (int, string, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, fmt.Errorf("expected a number")
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 1 || n > 1<<20 {
		return 0, s, fmt.Errorf("%q is not a positive index", s[:i])
	}
	return n, s[i:], nil
}

// String formats the path in the canonical grammar, leaving out defaults.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.WildcardOccurrence {
		b.WriteString("[*]")
	} else if p.Occurrence > 1 {
		fmt.Fprintf(&b, "[%d]", p.Occurrence)
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.WildcardRepetition {
		b.WriteString("[*]")
	} else if p.Repetition > 1 {
		fmt.Fprintf(&b, "[%d]", p.Repetition)
	}
	if p.Component > 0 {
		fmt.Fprintf(&b, ".%d", p.Component)
		if p.Subcomponent > 0 {
			fmt.Fprintf(&b, ".%d", p.Subcomponent)
		}
	}
	return b.String()
}

func atLeast1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// Value returns the value p addresses (absent when the message does not
// reach it). For a wildcard path it is the first present match, the first
// of Values.
func (m *Message) Value(p Path) Value {
	if p.IsWildcard() {
		return m.firstMatch(p)
	}
	seg, ok := m.Segment(p.Segment, atLeast1(p.Occurrence))
	if !ok {
		return Value{c: m.c}
	}
	v := seg.Field(p.Field)
	if v.depth == depthLiteral {
		if p.Repetition > 1 || p.Component > 1 || p.Subcomponent > 1 {
			return Value{c: m.c}
		}
		return v
	}
	v = v.Rep(atLeast1(p.Repetition))
	if p.Component > 0 {
		v = v.Comp(p.Component)
		if p.Subcomponent > 0 {
			v = v.Sub(p.Subcomponent)
		}
	}
	return v
}

// Get returns the decoded value at path (see Value.String), "" when absent.
// A wildcard path is an error: it addresses several values (use Values).
func (m *Message) Get(path string) (string, error) {
	p, err := ParsePath(path)
	if err != nil {
		return "", err
	}
	if p.IsWildcard() {
		return "", wildcardError(p)
	}
	return m.Value(p).String(), nil
}

// Set stores value, escaped and encoded in the message's character set, at
// path. A path that stops at a field without a repetition index replaces the
// whole field, every repetition included. Missing fields, repetitions and
// components are created empty; a segment occurrence one past the last is
// appended after the last segment of that name (or at the end). A wildcard
// path is an error: Expand it and set each concrete path.
func (m *Message) Set(path, value string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.SetValue(p, value)
}

// SetValue is Set with a parsed path.
func (m *Message) SetValue(p Path, value string) error {
	if m.c.charset.enc == nil && !needsEscape(value, m.c.d) {
		// UTF-8 text without delimiters is its own wire form: store it
		// as it is, without the copy encode and Escape would make.
		return setRaw(m, p, value)
	}
	enc, err := m.c.charset.encode(value)
	if err != nil {
		return err
	}
	return m.setRaw(p, Escape(enc, m.c.d))
}

// SetRaw stores wire bytes at path without escaping them, for callers that
// build composite values or formatted text themselves.
func (m *Message) SetRaw(path string, raw []byte) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.SetRawValue(p, raw)
}

// SetRawValue is SetRaw with a parsed path: raw must be in the message's
// own delimiters and character set (a value read from the same message).
func (m *Message) SetRawValue(p Path, raw []byte) error {
	if bytes.ContainsAny(raw, "\r\n") || bytes.IndexByte(raw, m.c.d.Field) >= 0 {
		return fmt.Errorf("%w: raw value for %s contains a segment terminator or field separator", ErrNotSettable, p)
	}
	return m.setRaw(p, raw)
}

func wildcardError(p Path) error {
	return fmt.Errorf("%w %q: a wildcard addresses several values; expand it first", ErrPath, p.String())
}

// setRaw stores val at p (see setRaw).
func (m *Message) setRaw(p Path, val []byte) error { return setRaw(m, p, val) }

// setRaw stores val at p. It never changes a segment's bytes in place: it
// builds the new segment in a fresh buffer and replaces the Segment in
// m.segs, which is what makes Clone cheap. val is a string or bytes so a
// plain string value is copied once, into the new segment.
func setRaw[T string | []byte](m *Message, p Path, val T) error {
	if p.IsWildcard() {
		return wildcardError(p)
	}
	occ := atLeast1(p.Occurrence)
	idx := m.segmentIndex(p.Segment, occ)
	if idx < 0 {
		if occ != m.Count(p.Segment)+1 {
			return fmt.Errorf("%w: %s occurrence %d (message has %d)", ErrNoSegment, p.Segment, occ, occ-1)
		}
		idx = m.insertSegment(p.Segment)
	}
	seg := m.segs[idx]
	elem := p.Field
	if seg.isHeader() {
		if p.Field <= 2 {
			return fmt.Errorf("%w: %s defines the delimiters", ErrNotSettable, p)
		}
		elem--
	}
	d := m.c.d
	rep, comp, sub := p.Repetition, p.Component, p.Subcomponent
	if rep == 0 && comp > 0 {
		rep = 1
	}
	// Find the byte range the value replaces and the separators to add
	// before it where the segment stops short, then build the new segment
	// in one allocation: a rule engine sets many values per message, and
	// splitting and re-joining the whole segment each time costs more
	// than the rest of the work.
	raw := seg.raw
	var lo, hi int
	var pad [4]padding
	npad := 0
	if elements := len(seg.b) - 1; elem < elements {
		lo, hi = int(seg.b[elem]), int(seg.b[elem+1])-1
	} else {
		lo, hi = len(raw), len(raw)
		pad[0] = padding{d.Field, elem - elements + 1}
		npad = 1
	}
	seps := [3]byte{d.Repetition, d.Component, d.Subcomponent}
	idxs := [3]int{rep, comp, sub}
	for k := 0; k < 3 && idxs[k] > 0; k++ {
		if npad > 0 {
			// The part does not exist: every level below starts empty.
			pad[npad].sep, pad[npad].n = seps[k], idxs[k]-1
			npad++
			continue
		}
		plo, phi, n := partRange(raw, lo, hi, seps[k], idxs[k])
		if n > 0 {
			lo = hi
			pad[npad].sep, pad[npad].n = seps[k], n
			npad++
			continue
		}
		lo, hi = plo, phi
	}
	if npad == 0 && equal(raw[lo:hi], val) {
		// Already there (OBX-11 set to the F it holds, a code mapped to
		// itself): nothing to build.
		return nil
	}
	size := len(raw) - (hi - lo) + len(val)
	for i := 0; i < npad; i++ {
		size += pad[i].n
	}
	out := make([]byte, 0, size)
	out = append(out, raw[:lo]...)
	for i := 0; i < npad; i++ {
		for j := 0; j < pad[i].n; j++ {
			out = append(out, pad[i].sep)
		}
	}
	out = append(out, val...)
	out = append(out, raw[hi:]...)
	nb := seg.b
	if len(out) != len(raw) || npad > 0 {
		nb = reindex(seg.b, elem, len(raw), len(out), pad[0])
	} // else every boundary stays: share the index, which is never written
	m.segs[idx] = Segment{c: m.c, raw: out, b: nb}
	return nil
}

// equal reports whether a holds the bytes of b.
func equal[T string | []byte](a []byte, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reindex returns the field index of a segment whose element elem was
// replaced (the value never holds a field separator: SetValue escapes it
// and SetRawValue refuses it), so only the later boundaries move; or,
// when the segment stopped short (pad of field separators), the old
// boundaries and one per added element. oldLen and newLen are the
// segment's lengths before and after.
func reindex(b []int32, elem, oldLen, newLen int, pad padding) []int32 {
	elements := len(b) - 1
	if elem < elements {
		nb := make([]int32, len(b))
		copy(nb, b)
		delta := int32(newLen - oldLen)
		for i := elem + 1; i < len(nb); i++ {
			nb[i] += delta
		}
		return nb
	}
	nb := make([]int32, 0, elements+pad.n+1)
	nb = append(nb, b[:elements]...)
	for j := 0; j < pad.n; j++ {
		// The j-th added separator sits at oldLen+j; its element starts
		// after it.
		nb = append(nb, int32(oldLen+j+1))
	}
	return append(nb, int32(newLen+1))
}

// padding is n separators sep that setRaw adds where a segment stops short
// of the position it writes.
type padding struct {
	sep byte
	n   int
}

// partRange finds part i (1-based) of raw[lo:hi] split on sep and returns
// its range; when the region has fewer parts, missing is how many
// separators must be added at hi to make part i exist (an empty region is
// one empty part).
func partRange(raw []byte, lo, hi int, sep byte, i int) (plo, phi, missing int) {
	start := lo
	for k := 1; ; k++ {
		j := bytes.IndexByte(raw[start:hi], sep)
		if k == i {
			if j < 0 {
				return start, hi, 0
			}
			return start, start + j, 0
		}
		if j < 0 {
			return 0, 0, i - k
		}
		start += j + 1
	}
}

func (m *Message) insertSegment(name string) int {
	at := len(m.segs)
	for i := len(m.segs) - 1; i >= 0; i-- {
		if m.segs[i].Is(name) {
			at = i + 1
			break
		}
	}
	raw := []byte(name)
	seg, _ := indexSegment(raw, m.c.d.Field, m.c, make([]int32, 0, 2))
	m.segs = append(m.segs, Segment{})
	copy(m.segs[at+1:], m.segs[at:])
	m.segs[at] = seg
	return at
}
