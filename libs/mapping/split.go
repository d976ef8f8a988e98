package mapping

import (
	"strconv"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

// splitOp splits a message into one message per group that segment
// starts. A group runs from its segment (and the ORC immediately before
// it, the order the OBR belongs to) to the start of the next group or the
// end of the message; the segments before the first group (MSH, PID, PV1,
// ...) are copied into every child. Child n (1-based) gets MSH-10
// "<control ID>-<n>". A message with fewer than two groups is left as it
// is: there is nothing to split, and its control ID stays the sender's.
//
// In every child the split segment's set ID (field 1) becomes 1 when the
// segment has one (OBR-1, SPM-1: field 1 of type SI in the definitions)
// and the sender filled it: each child holds one such segment, the first
// of its kind, and a receiver checks that set IDs count from 1. The
// segments of a group keep theirs (OBX-1 already counts within its
// order); ORC-1 is the order control code, not a set ID, and Z-segments
// have no definition, so neither is renumbered.
type splitOp struct {
	segment string
	// setID: field 1 of segment is a set ID, renumbered in each child.
	setID bool
}

func (c *compiler) compileSplit(key string, s *SplitOp) op {
	if c.scope == Outbound {
		c.errorf(key, "split is only allowed in interfaces[].rules (inbound): a destination's copy keeps the exchange's message IDs")
	}
	switch {
	case s.Segment == "":
		c.errorf(key+".segment", "required")
	case !validName(s.Segment):
		c.errorf(key+".segment", "%q is not a segment ID (3 upper-case letters or digits)", s.Segment)
	case s.Segment == "MSH":
		c.errorf(key+".segment", "a message cannot be split on its header")
	}
	return &splitOp{segment: s.Segment, setID: hasSetID(s.Segment)}
}

// hasSetID reports whether field 1 of segment is a set ID (type SI) in the
// newest version the definitions have; set IDs have kept their place
// since the segments were introduced.
func hasSetID(segment string) bool {
	vs := defs.Versions()
	if len(vs) == 0 {
		return false
	}
	v, ok := defs.Lookup(vs[len(vs)-1])
	if !ok {
		return false
	}
	seg, ok := v.Segment(segment)
	return ok && len(seg.Fields) > 0 && seg.Fields[0].Type == "SI"
}

// apply is never called: Apply handles split itself, since it changes the
// number of messages.
func (o *splitOp) apply(*run, *hl7v2.Message) error { return nil }

// split returns the children of m, or m alone when it has fewer than two
// groups.
func (o *splitOp) split(r *run, m *hl7v2.Message) ([]*hl7v2.Message, error) {
	segs := m.Segments()
	var starts []int
	for i, s := range segs {
		if !s.Is(o.segment) {
			continue
		}
		start := i
		if i > 0 && segs[i-1].Is("ORC") && o.segment != "ORC" {
			start = i - 1
		}
		starts = append(starts, start)
	}
	if len(starts) < 2 {
		return []*hl7v2.Message{m}, nil
	}
	control := m.ControlID()
	prefix := starts[0]
	kids := make([]*hl7v2.Message, 0, len(starts))
	idx := make([]int, 0, len(segs))
	for k, start := range starts {
		end := len(segs)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		idx = idx[:0]
		for i := 0; i < prefix; i++ {
			idx = append(idx, i)
		}
		for i := start; i < end; i++ {
			idx = append(idx, i)
		}
		kid, err := m.Subset(idx)
		if err != nil {
			return nil, r.fail("split: %v", err)
		}
		if err := kid.SetValue(hl7v2.Path{Segment: "MSH", Field: 10}, control+"-"+strconv.Itoa(k+1)); err != nil {
			return nil, r.fail("MSH-10: %v", err)
		}
		if setID := (hl7v2.Path{Segment: o.segment, Field: 1}); o.setID && !kid.Value(setID).IsEmpty() {
			if err := kid.SetRawValue(setID, []byte("1")); err != nil {
				return nil, r.fail("%s: %v", setID, err)
			}
		}
		kids = append(kids, kid)
	}
	return kids, nil
}
