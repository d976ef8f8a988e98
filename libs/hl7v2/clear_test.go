package hl7v2

import (
	"bytes"
	"fmt"
	"testing"
)

func TestClearValue(t *testing.T) {
	base := msg(mshLine, `PID|1||A~B^^^H~||X^Y&Z||f7|+15550100~+15550199`, `OBX|1|ST|||a^b|u`)
	tests := []struct {
		path string
		want string // the segment after the clear
	}{
		{"PID-8[2]", `PID|1||A~B^^^H~||X^Y&Z||f7|+15550100`},            // last repetition of the last field
		{"PID-8[1]", `PID|1||A~B^^^H~||X^Y&Z||f7|~+15550199`},           // first one keeps its place
		{"PID-8", `PID|1||A~B^^^H~||X^Y&Z||f7`},                         // the last field: its separator goes
		{"PID-7", `PID|1||A~B^^^H~||X^Y&Z|||+15550100~+15550199`},       // a middle field keeps its place
		{"PID-3[2].4", `PID|1||A~B~||X^Y&Z||f7|+15550100~+15550199`},    // B^^^H: trailing components go
		{"PID-3[2].1", `PID|1||A~^^^H~||X^Y&Z||f7|+15550100~+15550199`}, // the first component stays as a place
		{"PID-3[3]", `PID|1||A~B^^^H||X^Y&Z||f7|+15550100~+15550199`},   // an empty trailing repetition goes
		{"PID-5.2.2", `PID|1||A~B^^^H~||X^Y||f7|+15550100~+15550199`},   // subcomponent, then its separator
		{"PID-5.2", `PID|1||A~B^^^H~||X||f7|+15550100~+15550199`},       // component
		{"PID-5.1", `PID|1||A~B^^^H~||^Y&Z||f7|+15550100~+15550199`},    // a first component keeps its place
		{"PID-9", `PID|1||A~B^^^H~||X^Y&Z||f7|+15550100~+15550199`},     // absent: nothing to clear
		{"PID-8[3]", `PID|1||A~B^^^H~||X^Y&Z||f7|+15550100~+15550199`},  // absent repetition
		{"PID-5.2.3", `PID|1||A~B^^^H~||X^Y&Z||f7|+15550100~+15550199`}, // absent subcomponent
		{"OBX-6", `OBX|1|ST|||a^b`},                                     // the other segment
		{"OBX-5.2", `OBX|1|ST|||a|u`},
		{"ZZZ-1", ``},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			m := mustParse(t, base)
			p, err := ParsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.ClearValue(p); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if !bytes.Equal(m.Bytes(), base) {
					t.Errorf("changed the message: %q", m.Bytes())
				}
				return
			}
			seg, _ := m.Segment(p.Segment, 1)
			if got := string(seg.Raw()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			// The index must be the one a parse builds.
			again := mustParse(t, m.Bytes())
			s2, _ := again.Segment(p.Segment, 1)
			if fmt.Sprint(s2.b) != fmt.Sprint(seg.b) {
				t.Errorf("index %v, a parse gives %v", seg.b, s2.b)
			}
		})
	}
}

func TestClearValueHeader(t *testing.T) {
	m := mustParse(t, msg(`MSH|^~\&|||||||ADT^A01|X1|P|2.5|||||X`, `PID|1`))
	for _, path := range []string{"MSH-17", "MSH-12", "MSH-11", "MSH-10", "MSH-9", "MSH-3"} {
		if err := m.ClearValue(mustPath(t, path)); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(m.MSH().Raw()); got != `MSH|^~\&` {
		t.Errorf("MSH after clearing every field: %q", got)
	}
	if err := m.ClearValue(mustPath(t, "MSH-2")); err == nil {
		t.Error("MSH-2 cleared")
	}
	if err := m.ClearValue(mustPath(t, "PID-1")); err != nil || string(m.segs[1].Raw()) != "PID" {
		t.Errorf("PID after clearing PID-1: %q, %v", m.segs[1].Raw(), err)
	}
	if err := m.ClearValue(mustPath(t, "PID-1")); err != nil {
		t.Errorf("clearing an absent field: %v", err)
	}
	if _, err := Parse(m.Bytes()); err != nil {
		t.Errorf("the result does not parse: %v", err)
	}
}

func mustPath(t *testing.T, s string) Path {
	t.Helper()
	p, err := ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clearReference is the straightforward ClearValue: split the segment
// into its levels, empty the part, drop the trailing empty parts of each
// level the cleared part ends, join.
func (m *Message) clearReference(p Path) error {
	idx := m.segmentIndex(p.Segment, atLeast1(p.Occurrence))
	if idx < 0 {
		return nil
	}
	seg := m.segs[idx]
	elem, keep := p.Field, 1
	if seg.isHeader() {
		if p.Field <= 2 {
			return fmt.Errorf("%w: %s defines the delimiters", ErrNotSettable, p)
		}
		elem, keep = elem-1, 2
	}
	d := m.c.d
	parts := bytes.Split(seg.raw, []byte{d.Field})
	if elem >= len(parts) {
		return nil
	}
	rep, comp, sub := p.Repetition, p.Component, p.Subcomponent
	if rep == 0 && comp > 0 {
		rep = 1
	}
	var idxs []int
	for _, i := range []int{rep, comp, sub} {
		if i == 0 {
			break
		}
		idxs = append(idxs, i)
	}
	v, found := clearLevel(parts[elem], []byte{d.Repetition, d.Component, d.Subcomponent}, idxs)
	if !found {
		return nil
	}
	parts[elem] = v
	if elem == len(parts)-1 {
		for len(parts) > keep && len(parts[len(parts)-1]) == 0 {
			parts = parts[:len(parts)-1]
		}
	}
	raw := bytes.Join(parts, []byte{d.Field})
	ns, err := indexSegment(raw, d.Field, m.c, nil)
	if err != nil {
		return err
	}
	m.segs[idx] = ns
	return nil
}

func clearLevel(raw, seps []byte, idxs []int) ([]byte, bool) {
	if len(idxs) == 0 {
		return nil, true
	}
	parts := bytes.Split(raw, seps[:1])
	i := idxs[0]
	if i > len(parts) {
		return raw, false
	}
	v, found := clearLevel(parts[i-1], seps[1:], idxs[1:])
	if !found {
		return raw, false
	}
	parts[i-1] = v
	if i == len(parts) {
		for len(parts) > 1 && len(parts[len(parts)-1]) == 0 {
			parts = parts[:len(parts)-1]
		}
	}
	return bytes.Join(parts, seps[:1]), true
}

// FuzzClearValue checks ClearValue against clearReference for any path on
// a message with repeated, composite, empty and trailing-empty fields.
func FuzzClearValue(f *testing.F) {
	for _, s := range []string{"PID-3", "PID-3[2].4", "PID-3[3]", "PID-5.2.2", "PID-8[2]", "MSH-12", "MSH-3", "OBX[2]-1", "PID-9"} {
		f.Add(s)
	}
	base := msg(`MSH|^~\&|A||C|D|20240101||ADT^A01|X1|P|2.5||`, `PID|1||123^^^H&ISO~456^^^~||DOE^JANE&X^||f|||~+1~`, `OBX|1|ST|||a`, `OBX|2`, `OBX|||`)
	f.Fuzz(func(t *testing.T, path string) {
		p, err := ParsePath(path)
		if err != nil || p.IsWildcard() || max(p.Occurrence, p.Field, p.Repetition, p.Component, p.Subcomponent) > 50 {
			return
		}
		a, b := mustParse(t, base), mustParse(t, base)
		errA, errB := a.ClearValue(p), b.clearReference(p)
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("%s: errors differ: %v / %v", p, errA, errB)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("%s:\n got %q\nwant %q", p, a.Bytes(), b.Bytes())
		}
		for i := range a.segs {
			if fmt.Sprint(a.segs[i].b) != fmt.Sprint(b.segs[i].b) {
				t.Fatalf("%s: index of segment %d: %v, want %v", p, i, a.segs[i].b, b.segs[i].b)
			}
		}
	})
}
