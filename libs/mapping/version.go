package mapping

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

// versionOp changes MSH-12 where the standard allows it.
//
// HL7 v2 is backward compatible by construction: a later version adds
// segments, fields at the end of segments and components at the end of
// data types, and retains what it deprecates. So:
//
//   - An upgrade (2.3 to 2.5.1) sets MSH-12.1 and, from 2.3.1 on (where
//     MSH-9.3 appeared), fills MSH-9.3 with the message structure the
//     target version gives the message's type and event, when the sender
//     left it out. A segment that the source version defines and the
//     target removed (2.6 dropped a few) refuses the upgrade.
//   - A downgrade is allowed only when every segment the message has
//     exists in the target version and every non-empty field is one the
//     target's segment defines; otherwise the rule fails naming the
//     segment or field. Z-segments are local and always allowed. Below
//     2.3.1, MSH-9.3 is dropped, since the target's MSH-9 has no third
//     component.
//   - The same version is left as it is.
type versionOp struct {
	to  string
	def *defs.Version
	// removed are the segments some version defines and to does not:
	// only a segment among them can refuse an upgrade, so the others
	// are passed over without a definition lookup.
	removed map[string]bool
}

func (c *compiler) compileVersion(key string, s *VersionOp) op {
	if s.To == "" {
		c.errorf(key+".to", "required")
		return &versionOp{}
	}
	if !slices.Contains(defs.Versions(), s.To) {
		c.errorf(key+".to", "%q is not an HL7 v2 version (one of %s)", s.To, strings.Join(defs.Versions(), ", "))
		return &versionOp{}
	}
	def, _ := defs.Lookup(s.To)
	removed := map[string]bool{}
	for _, id := range defs.Versions() {
		if v, ok := defs.Lookup(id); ok {
			for _, seg := range v.SegmentIDs() {
				if _, in := def.Segment(seg); !in {
					removed[seg] = true
				}
			}
		}
	}
	return &versionOp{to: s.To, def: def, removed: removed}
}

func (o *versionOp) apply(r *run, m *hl7v2.Message) error {
	from := strings.TrimSpace(m.Version())
	src, ok := defs.Lookup(from)
	if !ok {
		return r.fail("MSH-12 does not name an HL7 v2 version this engine knows")
	}
	cmp := compareVersion(o.to, from)
	if cmp == 0 {
		return nil
	}
	if cmp < 0 {
		if err := o.checkDowngrade(r, m); err != nil {
			return err
		}
	} else {
		for _, s := range m.Segments() {
			if !o.removed[string(s.Raw()[:3])] {
				continue
			}
			name := s.Name()
			if _, inSrc := src.Segment(name); inSrc {
				if _, inDst := o.def.Segment(name); !inDst {
					return r.fail("segment %s was removed by %s", name, o.to)
				}
			}
		}
	}
	if err := m.SetValue(hl7v2.Path{Segment: "MSH", Field: 12, Component: 1}, o.to); err != nil {
		return r.fail("MSH-12: %v", err)
	}
	return o.fixStructure(r, m)
}

// checkDowngrade fails on the first segment or field the message uses that
// the target version lacks.
func (o *versionOp) checkDowngrade(r *run, m *hl7v2.Message) error {
	for _, s := range m.Segments() {
		name := s.Name()
		if name[0] == 'Z' {
			continue
		}
		def, ok := o.def.Segment(name)
		if !ok {
			return r.fail("segment %s does not exist in %s", name, o.to)
		}
		for n := s.NumFields(); n > len(def.Fields); n-- {
			if !s.Field(n).IsEmpty() {
				return r.fail("%s-%d does not exist in %s", name, n, o.to)
			}
		}
	}
	return nil
}

// fixStructure makes MSH-9.3 what the target version has: filled from the
// definitions when it has a third component and the sender gave none,
// dropped when it has no third component.
func (o *versionOp) fixStructure(r *run, m *hl7v2.Message) error {
	code, event, structure := m.Type()
	if comps := o.msh9Components(); comps >= 3 {
		if structure != "" || code == "" || event == "" {
			return nil
		}
		st, ok := o.def.StructureFor(code, event)
		if !ok {
			return nil // an event the version does not define: nothing to fill in
		}
		if err := m.SetValue(hl7v2.Path{Segment: "MSH", Field: 9, Component: 3}, st.ID); err != nil {
			return r.fail("MSH-9.3: %v", err)
		}
		return nil
	} else if comps == 0 {
		return nil
	}
	raw := m.MSH().Field(9).Rep(1).Raw()
	sep := m.Delimiters().Component
	if i := bytes.IndexByte(raw, sep); i >= 0 {
		if j := bytes.IndexByte(raw[i+1:], sep); j >= 0 {
			if err := m.SetRawValue(hl7v2.Path{Segment: "MSH", Field: 9}, raw[:i+1+j]); err != nil {
				return r.fail("MSH-9: %v", err)
			}
		}
	}
	return nil
}

// msh9Components is the number of components MSH-9's data type has in the
// target version (0 when the definitions do not say).
func (o *versionOp) msh9Components() int {
	msh, ok := o.def.Segment("MSH")
	if !ok || len(msh.Fields) < 9 {
		return 0
	}
	dt, ok := o.def.DataType(msh.Fields[8].Type)
	if !ok {
		return 0
	}
	return len(dt.Components)
}

// compareVersion compares dotted numeric versions (2.5.1 > 2.5 > 2.4).
// A missing or non-numeric part reads as 0.
func compareVersion(a, b string) int {
	for a != "" || b != "" {
		var x, y int
		x, a = versionPart(a)
		y, b = versionPart(b)
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionPart splits the first dotted part off s and reads it as a
// number (0 when it is not one).
func versionPart(s string) (int, string) {
	part, rest, _ := strings.Cut(s, ".")
	n, err := strconv.Atoi(part)
	if err != nil {
		n = 0
	}
	return n, rest
}
