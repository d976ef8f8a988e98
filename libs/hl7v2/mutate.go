package hl7v2

import (
	"bytes"
	"fmt"
	"slices"
)

// Wildcard paths, segment edits and cloning: what a rule engine needs
// beyond Get and Set.
//
// Segments are immutable once built: Set, SetRaw and the other writers
// build a new segment (new bytes, new index) and replace the entry in the
// message's segment slice; nothing writes into a segment's bytes. A clone
// therefore only copies the slice of segments (one allocation), and a
// change to the clone or to the original never shows in the other. Both
// still refer to the parsed input, which must stay unmodified while
// either is in use.

// Clone returns a copy of m that can be changed without changing m. It
// shares m's segment bytes, which are never written in place.
func (m *Message) Clone() *Message {
	// Room for two more segments: a rule set adding a segment to the
	// clone would otherwise copy the slice again.
	segs := make([]Segment, len(m.segs), len(m.segs)+2)
	copy(segs, m.segs)
	return &Message{c: m.c, segs: segs}
}

// Expand returns the concrete paths (no wildcard) a path addresses, in
// message order: for [*] on the occurrence, one per segment of that name;
// for [*] on the repetition, one per repetition the field has in that
// segment (none when the field is absent). A path without a wildcard is
// returned as it is, whether or not the message reaches it (Set may
// create it).
func (m *Message) Expand(p Path) []Path {
	return m.AppendExpand(nil, p)
}

// AppendExpand appends the concrete paths of p (see Expand) to dst, so a
// caller applying many paths can reuse one buffer.
func (m *Message) AppendExpand(dst []Path, p Path) []Path {
	if !p.IsWildcard() {
		return append(dst, p)
	}
	occ := 0
	for i := range m.segs {
		if !m.segs[i].Is(p.Segment) {
			continue
		}
		occ++
		if !p.WildcardOccurrence && occ != atLeast1(p.Occurrence) {
			continue
		}
		q := p
		q.WildcardOccurrence, q.Occurrence = false, occ
		if !p.WildcardRepetition {
			dst = append(dst, q)
		} else {
			q.WildcardRepetition = false
			n := m.segs[i].Field(p.Field).NumReps()
			for r := 1; r <= n; r++ {
				q.Repetition = r
				dst = append(dst, q)
			}
		}
		if !p.WildcardOccurrence {
			break
		}
	}
	return dst
}

// Values returns every value p addresses that the message has, in message
// order: the present values at the concrete paths of Expand. Without a
// wildcard it is the one value when present, else nothing.
func (m *Message) Values(p Path) []Value {
	if !p.IsWildcard() {
		if v := m.Value(p); v.Present() {
			return []Value{v}
		}
		return nil
	}
	var out []Value
	for _, q := range m.Expand(p) {
		if v := m.Value(q); v.Present() {
			out = append(out, v)
		}
	}
	return out
}

// firstMatch is the first present value of a wildcard path, found without
// allocating.
func (m *Message) firstMatch(p Path) Value {
	occ := 0
	for i := range m.segs {
		if !m.segs[i].Is(p.Segment) {
			continue
		}
		occ++
		if !p.WildcardOccurrence && occ != atLeast1(p.Occurrence) {
			continue
		}
		q := p
		q.WildcardOccurrence, q.Occurrence = false, occ
		q.WildcardRepetition = false
		n := 1
		if p.WildcardRepetition {
			n = m.segs[i].Field(p.Field).NumReps()
		}
		for r := 1; r <= n; r++ {
			if p.WildcardRepetition {
				q.Repetition = r
			}
			if v := m.Value(q); v.Present() {
				return v
			}
		}
		if !p.WildcardOccurrence {
			break
		}
	}
	return Value{c: m.c}
}

// DeleteSegment removes the occ-th (1-based) segment named name, or every
// one of them when occ is 0 (none is not an error then). The header (MSH)
// cannot be deleted; a missing occurrence is ErrNoSegment.
func (m *Message) DeleteSegment(name string, occ int) error {
	if name == "MSH" {
		return fmt.Errorf("%w: the message header cannot be deleted", ErrNotSettable)
	}
	if occ < 0 {
		return fmt.Errorf("%w: %s occurrence %d", ErrNoSegment, name, occ)
	}
	if occ == 0 {
		m.segs = slices.DeleteFunc(m.segs, func(s Segment) bool { return s.Is(name) })
		return nil
	}
	i := m.segmentIndex(name, occ)
	if i < 0 {
		return fmt.Errorf("%w: %s occurrence %d (message has %d)", ErrNoSegment, name, occ, m.Count(name))
	}
	m.segs = slices.Delete(m.segs, i, i+1)
	return nil
}

// CheckSegmentER7 reports whether er7 is a segment InsertSegment accepts:
// one segment in the standard delimiters |^~\& with a valid segment ID
// that is not a header (MSH, FHS, BHS), no segment terminator. A rule
// compiler checks a configured segment with it once, at load.
func CheckSegmentER7(er7 string) error {
	if bytes.ContainsAny([]byte(er7), "\r\n") {
		return fmt.Errorf("%w: a segment to insert holds a line break", ErrSegmentName)
	}
	name := er7
	if i := bytes.IndexByte([]byte(er7), DefaultDelimiters.Field); i >= 0 {
		name = er7[:i]
	}
	if !validSegmentName([]byte(name)) {
		return fmt.Errorf("%w: a segment to insert must start with 3 upper-case letters or digits and |", ErrSegmentName)
	}
	switch name {
	case "MSH", "FHS", "BHS":
		return fmt.Errorf("%w: %s cannot be inserted", ErrNotSettable, name)
	}
	return nil
}

// InsertSegment inserts the segment er7, written with the standard
// delimiters |^~\& (escapes such as \F\ included), after the segment at
// index after (0 is the MSH; -1 appends at the end). It is re-encoded in
// the message's own delimiters and character set, so a configured segment
// fits a sender that uses other ones.
func (m *Message) InsertSegment(after int, er7 string) error {
	if err := CheckSegmentER7(er7); err != nil {
		return err
	}
	if after < -1 || after >= len(m.segs) {
		return fmt.Errorf("%w: no segment at index %d to insert after (message has %d)", ErrNoSegment, after, len(m.segs))
	}
	raw, err := m.reencode(er7)
	if err != nil {
		return err
	}
	seg, err := indexSegment(raw, m.c.d.Field, m.c, make([]int32, 0, bytes.Count(raw, []byte{m.c.d.Field})+2))
	if err != nil {
		return err
	}
	at := len(m.segs)
	if after >= 0 {
		at = after + 1
	}
	m.segs = slices.Insert(m.segs, at, seg)
	return nil
}

// reencode turns er7 in the standard delimiters into the message's
// delimiters and character set. With the standard delimiters only the
// character set changes; otherwise each leaf is unescaped in the standard
// delimiters and escaped again in the message's, so a literal ^ in the
// message's component separator's place stays a literal.
func (m *Message) reencode(er7 string) ([]byte, error) {
	std, d := DefaultDelimiters, m.c.d
	if d.Field == std.Field && d.Component == std.Component && d.Repetition == std.Repetition &&
		d.Escape == std.Escape && d.Subcomponent == std.Subcomponent {
		return m.c.charset.encode(er7)
	}
	src := []byte(er7)
	out := make([]byte, 0, len(src)+8)
	mapSep := func(ch byte) (byte, bool) {
		switch ch {
		case std.Field:
			return d.Field, true
		case std.Component:
			return d.Component, true
		case std.Repetition:
			return d.Repetition, true
		case std.Subcomponent:
			return d.Subcomponent, true
		}
		return 0, false
	}
	flush := func(leaf []byte) error {
		if len(leaf) == 0 {
			return nil
		}
		enc, err := m.c.charset.encode(string(Unescape(leaf, std)))
		if err != nil {
			return err
		}
		out = append(out, Escape(enc, d)...)
		return nil
	}
	start := 0
	for i := 0; i < len(src); i++ {
		sep, ok := mapSep(src[i])
		if !ok {
			continue
		}
		if err := flush(src[start:i]); err != nil {
			return nil, err
		}
		out = append(out, sep)
		start = i + 1
	}
	if err := flush(src[start:]); err != nil {
		return nil, err
	}
	return out, nil
}

// Subset returns a new message made of the segments of m at the given
// indices, in the order given, sharing m's delimiters, character set and
// segment bytes (see Clone). The first index must be that of the MSH (0),
// so the result is a message. A split makes one message per group with it.
func (m *Message) Subset(indices []int) (*Message, error) {
	if len(indices) == 0 || indices[0] != 0 {
		return nil, fmt.Errorf("%w: a message starts with its MSH (index 0)", ErrNoSegment)
	}
	segs := make([]Segment, len(indices))
	for i, ix := range indices {
		if ix < 0 || ix >= len(m.segs) {
			return nil, fmt.Errorf("%w: no segment at index %d (message has %d)", ErrNoSegment, ix, len(m.segs))
		}
		segs[i] = m.segs[ix]
	}
	return &Message{c: m.c, segs: segs}, nil
}

// ClearValue empties the value at p without creating anything: a position
// the message does not reach is left absent. Unlike SetRawValue(p, nil) it
// drops the delimiters the clear leaves trailing (HL7 encoding rules let a
// sender leave out trailing delimiters, and a receiver reads them as
// absent): clearing PID-13[2] of "+15550100~+15550199" leaves
// "+15550100", not "+15550100~"; clearing the last field of a segment
// drops its field separator too. A part in the middle keeps its place, so
// the positions after it do not move. Trimming goes up the levels only
// while the part that holds the cleared one is empty and last in its own
// parent; the segment ID and, in a header, MSH-1 and MSH-2 always stay.
func (m *Message) ClearValue(p Path) error {
	if p.IsWildcard() {
		return wildcardError(p)
	}
	idx := m.segmentIndex(p.Segment, atLeast1(p.Occurrence))
	if idx < 0 {
		return nil
	}
	seg := m.segs[idx]
	elem := p.Field
	floor := int(seg.b[1]) - 1 // the separator after the segment ID
	if seg.isHeader() {
		if p.Field <= 2 {
			return fmt.Errorf("%w: %s defines the delimiters", ErrNotSettable, p)
		}
		elem--
		if len(seg.b) > 2 {
			floor = int(seg.b[2]) - 1 // keep MSH-2
		}
	}
	if elem < 1 || elem >= len(seg.b)-1 {
		return nil
	}
	d := m.c.d
	raw := seg.raw
	rep, comp, sub := p.Repetition, p.Component, p.Subcomponent
	if rep == 0 && comp > 0 {
		rep = 1
	}
	// ranges[k] is the part at level k (0 field, 1 repetition, 2
	// component, 3 subcomponent); ranges[-1] would be the segment's
	// fields, [floor, len(raw)).
	var lo, hi [4]int
	lo[0], hi[0] = int(seg.b[elem]), int(seg.b[elem+1])-1
	depth := 0
	seps := [4]byte{d.Field, d.Repetition, d.Component, d.Subcomponent}
	for k, i := range [3]int{rep, comp, sub} {
		if i == 0 {
			break
		}
		plo, phi, missing := partRange(raw, lo[k], hi[k], seps[k+1], i)
		if missing > 0 {
			return nil
		}
		depth = k + 1
		lo[depth], hi[depth] = plo, phi
	}
	cutLo, cutHi := lo[depth], hi[depth]
	for k := depth; k >= 0; k-- {
		parentLo, parentHi := floor, len(raw)
		if k > 0 {
			parentLo, parentHi = lo[k-1], hi[k-1]
		}
		if cutLo != lo[k] || hi[k] != parentHi {
			break // the part keeps content, or is not last: nothing trails
		}
		for cutLo > parentLo && raw[cutLo-1] == seps[k] {
			cutLo--
		}
	}
	if cutLo == cutHi {
		return nil
	}
	out := make([]byte, 0, len(raw)-(cutHi-cutLo))
	out = append(append(out, raw[:cutLo]...), raw[cutHi:]...)
	var nb []int32
	if cutHi == len(raw) && cutLo < int(seg.b[elem]) {
		// Fields were dropped: keep the elements that start before the cut.
		n := 1
		for n < len(seg.b)-1 && int(seg.b[n])-1 < cutLo {
			n++
		}
		nb = make([]int32, n+1)
		copy(nb, seg.b[:n])
		nb[n] = int32(len(out) + 1)
	} else {
		nb = reindex(seg.b, elem, len(raw), len(out), padding{})
	}
	m.segs[idx] = Segment{c: m.c, raw: out, b: nb}
	return nil
}

// SegmentTemplate is a segment to insert, checked and indexed once (when
// a rule set compiles) so inserting it into a message in the standard
// delimiters copies nothing: the message shares the template's bytes,
// which, like every segment's, are never written in place.
type SegmentTemplate struct {
	er7   string
	raw   []byte
	b     []int32
	ascii bool
}

// NewSegmentTemplate checks er7 as InsertSegment does (CheckSegmentER7)
// and prepares it.
func NewSegmentTemplate(er7 string) (*SegmentTemplate, error) {
	if err := CheckSegmentER7(er7); err != nil {
		return nil, err
	}
	raw := []byte(er7)
	seg, err := indexSegment(raw, DefaultDelimiters.Field, nil, nil)
	if err != nil {
		return nil, err
	}
	ascii := true
	for _, ch := range raw {
		if ch >= 0x80 {
			ascii = false
			break
		}
	}
	return &SegmentTemplate{er7: er7, raw: raw, b: seg.b, ascii: ascii}, nil
}

// InsertTemplate is InsertSegment of the template's segment. In a message
// with the standard delimiters whose character set reads ASCII as ASCII
// (every one this package decodes) an ASCII template is inserted as it
// is; otherwise it is re-encoded as InsertSegment does.
func (m *Message) InsertTemplate(after int, t *SegmentTemplate) error {
	d := m.c.d
	if !t.ascii || d.Field != '|' || d.Component != '^' || d.Repetition != '~' || d.Escape != '\\' || d.Subcomponent != '&' {
		return m.InsertSegment(after, t.er7)
	}
	if after < -1 || after >= len(m.segs) {
		return fmt.Errorf("%w: no segment at index %d to insert after (message has %d)", ErrNoSegment, after, len(m.segs))
	}
	at := len(m.segs)
	if after >= 0 {
		at = after + 1
	}
	m.segs = slices.Insert(m.segs, at, Segment{c: m.c, raw: t.raw, b: t.b})
	return nil
}
