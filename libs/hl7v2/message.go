package hl7v2

import (
	"bytes"
	"io"
)

// Message is one parsed HL7 v2 message. It refers to the bytes it was parsed
// from, which must not be modified while the Message is in use. Reading a
// Message from several goroutines is safe; Set is not safe concurrently with
// anything else.
type Message struct {
	c    *codec
	segs []Segment
}

// codec is what every value of a message needs to decode itself: the
// delimiters and the character set. It is shared by pointer so a Value stays
// small.
type codec struct {
	d       Delimiters
	charset Charset
}

// Segment is one segment of a message.
type Segment struct {
	c   *codec
	raw []byte
	// b[i] is the offset in raw where field element i starts (element 0 is
	// the segment ID); the last entry is len(raw)+1, so element i always
	// spans raw[b[i] : b[i+1]-1].
	b []int32
}

// Delimiters returns the delimiters the message declares in MSH-1 and MSH-2.
func (m *Message) Delimiters() Delimiters { return m.c.d }

// Charset returns the character set used to decode values: the one MSH-18
// names or, when it names none or one that cannot be used, the parser's
// fallback.
func (m *Message) Charset() Charset { return m.c.charset }

// Segments returns the message's segments in order. The slice must not be
// modified.
func (m *Message) Segments() []Segment { return m.segs }

// Len returns the number of segments.
func (m *Message) Len() int { return len(m.segs) }

// Segment returns the occ-th (1-based) segment named name and whether it
// exists.
func (m *Message) Segment(name string, occ int) (Segment, bool) {
	i := m.segmentIndex(name, occ)
	if i < 0 {
		return Segment{}, false
	}
	return m.segs[i], true
}

// Count returns how many segments named name the message has.
func (m *Message) Count(name string) int {
	n := 0
	for i := range m.segs {
		if m.segs[i].Is(name) {
			n++
		}
	}
	return n
}

func (m *Message) segmentIndex(name string, occ int) int {
	for i := range m.segs {
		if m.segs[i].Is(name) {
			occ--
			if occ == 0 {
				return i
			}
		}
	}
	return -1
}

// MSH returns the header segment, which every parsed message has.
func (m *Message) MSH() Segment { return m.segs[0] }

// Header returns MSH field n (1-based, MSH-1 being the field separator)
// decoded, or "" when it is absent. It is a shorthand for the header fields
// every stage reads (MSH-9, MSH-10, MSH-12, ...).
func (m *Message) Header(n int) string { return m.segs[0].Field(n).String() }

// Type returns MSH-9.1 (message code), MSH-9.2 (trigger event) and MSH-9.3
// (message structure), each "" when absent.
func (m *Message) Type() (code, trigger, structure string) {
	f := m.segs[0].Field(9)
	return f.Comp(1).String(), f.Comp(2).String(), f.Comp(3).String()
}

// ControlID returns MSH-10, the sender's message control ID.
func (m *Message) ControlID() string { return m.Header(10) }

// Version returns MSH-12.1, the version ID the sender declares.
func (m *Message) Version() string { return m.segs[0].Field(12).Comp(1).String() }

// Bytes returns the message in wire form: segments joined and terminated by
// CR. For a message that was only parsed it equals the input without a
// byte-order mark, with every terminator made CR and empty lines dropped.
func (m *Message) Bytes() []byte {
	n := 0
	for i := range m.segs {
		n += len(m.segs[i].raw) + 1
	}
	return m.AppendTo(make([]byte, 0, n))
}

// AppendTo appends the message in wire form to b.
func (m *Message) AppendTo(b []byte) []byte {
	for i := range m.segs {
		b = append(b, m.segs[i].raw...)
		b = append(b, '\r')
	}
	return b
}

// WriteTo writes the message in wire form to w.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(m.Bytes())
	return int64(n), err
}

// Name returns the segment ID.
func (s Segment) Name() string { return string(s.nameBytes()) }

func (s Segment) nameBytes() []byte { return s.raw[:s.b[1]-1] }

// Is reports whether the segment's ID is name, without allocating. Every
// segment's ID is its first three bytes (the parser and the writers accept
// no other), which makes this the comparison of three bytes that the
// rule engine's many lookups by name need.
func (s Segment) Is(name string) bool {
	return len(name) == 3 && len(s.raw) >= 3 && string(s.raw[:3]) == name
}

// Raw returns the segment's bytes without its terminator.
func (s Segment) Raw() []byte { return s.raw }

// isHeader reports whether the segment declares delimiters in its first two
// fields, which shifts its field numbering by one.
func (s Segment) isHeader() bool {
	switch string(s.nameBytes()) {
	case "MSH", "FHS", "BHS":
		return true
	}
	return false
}

// NumFields returns the number of the last field present in the segment.
func (s Segment) NumFields() int {
	if s.isHeader() {
		return len(s.b) - 1
	}
	return len(s.b) - 2
}

// element returns element i as split on the field separator (0 is the ID).
func (s Segment) element(i int) ([]byte, bool) {
	if i < 0 || i >= len(s.b)-1 {
		return nil, false
	}
	return s.raw[s.b[i] : s.b[i+1]-1], true
}

// Field returns field n (1-based) of the segment.
func (s Segment) Field(n int) Value {
	if n < 1 {
		return Value{c: s.c}
	}
	if s.isHeader() {
		switch n {
		case 1:
			return Value{raw: s.raw[3:4], c: s.c, present: true, depth: depthLiteral}
		case 2:
			raw, ok := s.element(1)
			return Value{raw: raw, c: s.c, present: ok, depth: depthLiteral}
		}
		n--
	}
	raw, ok := s.element(n)
	return Value{raw: raw, c: s.c, present: ok, depth: depthField}
}

// Fields returns every field of the segment, Fields()[0] being field 1.
func (s Segment) Fields() []Value {
	out := make([]Value, s.NumFields())
	for i := range out {
		out[i] = s.Field(i + 1)
	}
	return out
}

// Value depths: which delimiter splits the next level down.
const (
	depthField   uint8 = iota // split by repetition
	depthRep                  // split by component
	depthComp                 // split by subcomponent
	depthSub                  // leaf
	depthLiteral              // MSH-1 and MSH-2: never split, never unescaped
)

// Value is a field, repetition, component or subcomponent of a message.
// The zero Value is absent.
type Value struct {
	raw     []byte
	c       *codec
	present bool
	depth   uint8
}

// Present reports whether the message reaches this position at all.
func (v Value) Present() bool { return v.present }

// IsEmpty reports whether the value is absent or present with no content.
func (v Value) IsEmpty() bool { return len(v.raw) == 0 }

// IsNull reports whether the value is the explicit null "", which asks the
// receiver to delete what it holds.
func (v Value) IsNull() bool { return len(v.raw) == 2 && v.raw[0] == '"' && v.raw[1] == '"' }

// Raw returns the value's wire bytes: escapes not decoded, character set not
// converted.
func (v Value) Raw() []byte { return v.raw }

// sep returns the delimiter that splits this value into its children, or 0
// for a leaf.
func (v Value) sep() byte {
	if v.c == nil {
		return 0
	}
	switch v.depth {
	case depthField:
		return v.c.d.Repetition
	case depthRep:
		return v.c.d.Component
	case depthComp:
		return v.c.d.Subcomponent
	}
	return 0
}

// HasStructure reports whether the value contains delimiters of a lower
// level (repetitions, components or subcomponents).
func (v Value) HasStructure() bool {
	if v.c == nil || v.depth >= depthSub {
		return false
	}
	d := v.c.d
	for _, ch := range v.raw {
		switch {
		case ch == d.Subcomponent:
			return true
		case ch == d.Component && v.depth <= depthRep:
			return true
		case ch == d.Repetition && v.depth == depthField:
			return true
		}
	}
	return false
}

// String returns the value as text. A leaf (a value with no lower-level
// delimiters) is unescaped and decoded from the message's character set.
// A value with structure below it is returned in its wire form with escapes
// kept, so PID-5 reads "DOE^JOHN" and the components stay distinguishable.
// The explicit null reads as the two characters "" (see IsNull); an absent
// value reads as "".
func (v Value) String() string {
	if !v.present || len(v.raw) == 0 {
		return ""
	}
	if v.depth == depthLiteral || v.HasStructure() {
		return v.c.charset.decode(v.raw)
	}
	if bytes.IndexByte(v.raw, v.c.d.Escape) < 0 {
		return v.c.charset.decode(v.raw)
	}
	return v.c.charset.decode(Unescape(v.raw, v.c.d))
}

// child returns the i-th (1-based) part of v split on sep, at depth next.
func (v Value) child(i int, next uint8) Value {
	out := Value{c: v.c, depth: next}
	if !v.present || i < 1 {
		return out
	}
	sep := v.sep()
	raw := v.raw
	for k := 1; ; k++ {
		j := bytes.IndexByte(raw, sep)
		if k == i {
			if j >= 0 {
				raw = raw[:j]
			}
			out.raw, out.present = raw, true
			return out
		}
		if j < 0 {
			return out
		}
		raw = raw[j+1:]
	}
}

func (v Value) count() int {
	if !v.present {
		return 0
	}
	return bytes.Count(v.raw, []byte{v.sep()}) + 1
}

// Rep returns repetition i (1-based) of a field. On anything but a field it
// returns v itself for i == 1 and an absent value otherwise.
func (v Value) Rep(i int) Value {
	if v.depth != depthField {
		if i == 1 {
			return v
		}
		return Value{c: v.c, depth: v.depth}
	}
	return v.child(i, depthRep)
}

// NumReps returns the number of repetitions of a field (0 when absent).
func (v Value) NumReps() int {
	if v.depth != depthField {
		if v.present {
			return 1
		}
		return 0
	}
	return v.count()
}

// Reps returns every repetition of a field, empty ones included.
func (v Value) Reps() []Value {
	out := make([]Value, v.NumReps())
	for i := range out {
		out[i] = v.Rep(i + 1)
	}
	return out
}

// Comp returns component i (1-based). On a field it reads the first
// repetition.
func (v Value) Comp(i int) Value {
	switch v.depth {
	case depthField:
		return v.Rep(1).Comp(i)
	case depthRep:
		return v.child(i, depthComp)
	}
	if i == 1 {
		return v
	}
	return Value{c: v.c, depth: depthSub}
}

// NumComps returns the number of components (of the first repetition, on a
// field).
func (v Value) NumComps() int {
	switch v.depth {
	case depthField:
		return v.Rep(1).NumComps()
	case depthRep:
		return v.count()
	}
	if v.present {
		return 1
	}
	return 0
}

// Sub returns subcomponent i (1-based). On a field or repetition it reads
// the first component.
func (v Value) Sub(i int) Value {
	switch v.depth {
	case depthField, depthRep:
		return v.Comp(1).Sub(i)
	case depthComp:
		return v.child(i, depthSub)
	}
	if i == 1 {
		return v
	}
	return Value{c: v.c, depth: depthSub}
}

// NumSubs returns the number of subcomponents of a component.
func (v Value) NumSubs() int {
	switch v.depth {
	case depthField, depthRep:
		return v.Comp(1).NumSubs()
	case depthComp:
		return v.count()
	}
	if v.present {
		return 1
	}
	return 0
}
