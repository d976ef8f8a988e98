package mapping

import (
	"errors"
	"strconv"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Segment operations: delete_segment and add_segment.

// segmentRef is NAME, NAME[n] or NAME[*] as a rule writes it; occ 0 is
// "every one" for a delete and "the last one" for add_segment.after.
type segmentRef struct {
	name string
	occ  int
}

// parseSegmentRef reads NAME, NAME[n] or, when wildcard is allowed,
// NAME[*] (the same as NAME).
func (c *compiler) parseSegmentRef(key, s string, wildcard bool) (segmentRef, bool) {
	if s == "" {
		c.errorf(key, "required")
		return segmentRef{}, false
	}
	name, idx, hasIdx := strings.Cut(s, "[")
	if !validName(name) {
		c.errorf(key, "%q is not a segment: expected 3 upper-case letters or digits, optionally [n]", s)
		return segmentRef{}, false
	}
	ref := segmentRef{name: name}
	if !hasIdx {
		return ref, true
	}
	idx, closed := strings.CutSuffix(idx, "]")
	if closed && idx == "*" && wildcard {
		return ref, true
	}
	n, err := strconv.Atoi(idx)
	if !closed || err != nil || idx[0] < '1' || idx[0] > '9' || n > 1<<20 {
		c.errorf(key, "%q: the index must be a positive number in brackets", s)
		return segmentRef{}, false
	}
	ref.occ = n
	return ref, true
}

// validName accepts a segment ID: 3 upper-case letters or digits.
func validName(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

// index returns the message index of the segment ref names (the last of
// its name when occ is 0), -1 when the message has none.
func (ref segmentRef) index(m *hl7v2.Message) int {
	found, n := -1, 0
	for i, s := range m.Segments() {
		if s.Is(ref.name) {
			n++
			found = i
			if n == ref.occ {
				return i
			}
		}
	}
	if ref.occ == 0 {
		return found
	}
	return -1
}

// deleteSegmentOp removes the segments ref names; deleting what the
// message does not have is not an error (there is nothing to remove).
type deleteSegmentOp struct {
	ref segmentRef
}

func (c *compiler) compileDeleteSegment(key string, s *SegmentOp) op {
	ref, ok := c.parseSegmentRef(key+".segment", s.Segment, true)
	if ok && ref.name == "MSH" {
		c.errorf(key+".segment", "the message header cannot be deleted")
	}
	return &deleteSegmentOp{ref: ref}
}

func (o *deleteSegmentOp) apply(r *run, m *hl7v2.Message) error {
	err := m.DeleteSegment(o.ref.name, o.ref.occ)
	if err != nil && !errors.Is(err, hl7v2.ErrNoSegment) {
		return r.fail("%s: %v", o.ref.name, err)
	}
	return nil
}

// addSegmentOp inserts a configured segment after the segment ref names,
// or at the end.
type addSegmentOp struct {
	// seg is the segment, checked and indexed at compile time.
	seg      *hl7v2.SegmentTemplate
	after    segmentRef
	hasAfter bool
}

func (c *compiler) compileAddSegment(key string, s *AddSegmentOp) op {
	o := &addSegmentOp{}
	if s.Segment == "" {
		c.errorf(key+".segment", "required")
	} else if seg, err := hl7v2.NewSegmentTemplate(s.Segment); err != nil {
		c.errorf(key+".segment", "%v", err)
	} else {
		o.seg = seg
	}
	if s.After != "" {
		o.after, _ = c.parseSegmentRef(key+".after", s.After, false)
		o.hasAfter = true
	}
	return o
}

func (o *addSegmentOp) apply(r *run, m *hl7v2.Message) error {
	at := -1
	if o.hasAfter {
		if at = o.after.index(m); at < 0 {
			if o.after.occ > 0 {
				return r.fail("no %s[%d] segment to add after", o.after.name, o.after.occ)
			}
			return r.fail("no %s segment to add after", o.after.name)
		}
	}
	if err := m.InsertTemplate(at, o.seg); err != nil {
		return r.fail("%v", err)
	}
	return nil
}
