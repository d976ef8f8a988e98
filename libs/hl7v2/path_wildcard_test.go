package hl7v2

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParsePathWildcard(t *testing.T) {
	good := map[string]Path{
		"OBX[*]-5":        {Segment: "OBX", Field: 5, WildcardOccurrence: true},
		"PID-3[*].1":      {Segment: "PID", Field: 3, Component: 1, WildcardRepetition: true},
		"OBX[*]-3[*].1":   {Segment: "OBX", Field: 3, Component: 1, WildcardOccurrence: true, WildcardRepetition: true},
		"OBX[2]-3[*].1.2": {Segment: "OBX", Occurrence: 2, Field: 3, Component: 1, Subcomponent: 2, WildcardRepetition: true},
	}
	for s, want := range good {
		got, err := ParsePath(s)
		if err != nil || got != want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if !got.IsWildcard() {
			t.Errorf("%q: IsWildcard false", s)
		}
		if got.String() != s {
			t.Errorf("%q formats as %q", s, got.String())
		}
	}
	for _, s := range []string{"OBX[**]-5", "OBX[*-5", "OBX-5[*", "OBX-*", "OBX-5.*", "OBX[*]", "OBX[ *]-5", "*"} {
		if _, err := ParsePath(s); !errors.Is(err, ErrPath) {
			t.Errorf("ParsePath(%q) err = %v, want ErrPath", s, err)
		}
	}
	if p, _ := ParsePath("PID-3[2].1"); p.IsWildcard() {
		t.Error("a concrete path reports a wildcard")
	}
}

func wildMsg(t *testing.T) *Message {
	return mustParse(t, msg(mshLine,
		`PID|1||A1^^^H^MR~B2^^^N^NI~C3`,
		`OBR|1`,
		`OBX|1|CE|X1^One~X2^Two||v1`,
		`NTE|1||n1`,
		`OBX|2|CE|Y1^Uno||v2`,
		`OBX|3|CE`,
	))
}

func strs(vs []Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func pathStrs(ps []Path) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestValuesAndExpand(t *testing.T) {
	m := wildMsg(t)
	tests := []struct {
		path   string
		values []string
		paths  []string
	}{
		{"OBX[*]-5", []string{"v1", "v2"}, []string{"OBX-5", "OBX[2]-5", "OBX[3]-5"}},
		{"OBX[*]-3[*].1", []string{"X1", "X2", "Y1"}, []string{"OBX-3.1", "OBX-3[2].1", "OBX[2]-3.1"}},
		{"OBX[*]-3.2", []string{"One", "Uno"}, []string{"OBX-3.2", "OBX[2]-3.2", "OBX[3]-3.2"}},
		{"PID-3[*].1", []string{"A1", "B2", "C3"}, []string{"PID-3.1", "PID-3[2].1", "PID-3[3].1"}},
		{"PID-3[*].4", []string{"H", "N"}, []string{"PID-3.4", "PID-3[2].4", "PID-3[3].4"}},
		{"OBX[2]-3[*]", []string{"Y1^Uno"}, []string{"OBX[2]-3"}},
		{"PID-9[*]", nil, nil},
		{"ZZZ[*]-1", nil, nil},
		{"OBX[9]-3[*]", nil, nil},
		// Without a wildcard: the one value if present; Expand returns
		// the path even where the message does not reach it.
		{"PID-3[2].1", []string{"B2"}, []string{"PID-3[2].1"}},
		{"PID-30", nil, []string{"PID-30"}},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := strs(m.Values(p)); !slices.Equal(got, tt.values) {
			t.Errorf("Values(%s) = %q, want %q", tt.path, got, tt.values)
		}
		if got := pathStrs(m.Expand(p)); !slices.Equal(got, tt.paths) {
			t.Errorf("Expand(%s) = %q, want %q", tt.path, got, tt.paths)
		}
		first := ""
		if len(tt.values) > 0 {
			first = tt.values[0]
		}
		if got := m.Value(p).String(); got != first {
			t.Errorf("Value(%s) = %q, want the first match %q", tt.path, got, first)
		}
	}
}

func TestWildcardGetSetRefused(t *testing.T) {
	m := wildMsg(t)
	before := string(m.Bytes())
	if _, err := m.Get("OBX[*]-5"); !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), "OBX[*]-5") {
		t.Errorf("Get(wildcard) err = %v; want ErrPath naming the path", err)
	}
	for _, set := range []func() error{
		func() error { return m.Set("PID-3[*].1", "x") },
		func() error { return m.SetRaw("OBX[*]-5", []byte("x")) },
	} {
		if err := set(); !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), "[*]") {
			t.Errorf("Set(wildcard) err = %v; want ErrPath naming the path", err)
		}
	}
	if string(m.Bytes()) != before {
		t.Error("a refused Set changed the message")
	}
	// Setting each expanded path is the way to write every match.
	p, _ := ParsePath("OBX[*]-5")
	for _, q := range m.Expand(p) {
		if err := m.SetValue(q, "z"); err != nil {
			t.Fatal(err)
		}
	}
	if got := strs(m.Values(p)); !slices.Equal(got, []string{"z", "z", "z"}) {
		t.Errorf("after setting each match: %q", got)
	}
}

func TestClone(t *testing.T) {
	m := wildMsg(t)
	orig := string(m.Bytes())
	c := m.Clone()
	if err := c.Set("PID-3[2].1", "CHANGED"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSegment("NTE", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.InsertSegment(0, "ZHB|1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("ZZZ-1", "appended"); err != nil {
		t.Fatal(err)
	}
	if string(m.Bytes()) != orig {
		t.Errorf("changing the clone changed the original:\n%q\n%q", m.Bytes(), orig)
	}
	// And the other way round: the original's changes stay out of the clone.
	cb := string(c.Bytes())
	if err := m.Set("OBX[2]-5", "orig-change"); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("ZYY-1", "x"); err != nil {
		t.Fatal(err)
	}
	if string(c.Bytes()) != cb {
		t.Error("changing the original changed the clone")
	}
	if got, _ := c.Get("PID-3[2].1"); got != "CHANGED" {
		t.Errorf("clone lost its change: %q", got)
	}
}

func TestDeleteSegment(t *testing.T) {
	tests := []struct {
		name    string
		seg     string
		occ     int
		want    string // segment IDs after
		wantErr error
	}{
		{"all", "OBX", 0, "MSH PID OBR NTE", nil},
		{"second", "OBX", 2, "MSH PID OBR OBX NTE OBX", nil},
		{"none is fine for all", "ZZZ", 0, "MSH PID OBR OBX NTE OBX OBX", nil},
		{"missing occurrence", "OBX", 4, "MSH PID OBR OBX NTE OBX OBX", ErrNoSegment},
		{"header", "MSH", 0, "MSH PID OBR OBX NTE OBX OBX", ErrNotSettable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := wildMsg(t)
			err := m.DeleteSegment(tt.seg, tt.occ)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got := segIDs(m); got != tt.want {
				t.Errorf("segments %q, want %q", got, tt.want)
			}
		})
	}
}

func segIDs(m *Message) string {
	var ids []string
	for _, s := range m.Segments() {
		ids = append(ids, s.Name())
	}
	return strings.Join(ids, " ")
}

func TestInsertSegment(t *testing.T) {
	m := mustParse(t, msg(mshLine, `PID|1`))
	if err := m.InsertSegment(0, `ZHB|1|NATIONAL^HUB|a\F\b`); err != nil {
		t.Fatal(err)
	}
	if err := m.InsertSegment(-1, `ZZZ|end`); err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5\rZHB|1|NATIONAL^HUB|a\\F\\b\rPID|1\rZZZ|end\r"
	if got := string(m.Bytes()); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if got, _ := m.Get("ZHB-3"); got != "a|b" {
		t.Errorf("ZHB-3 = %q", got)
	}
	for _, bad := range []string{"MSH|^~\\&|X", "zhb|1", "ZH|1", "ZHB|1\rPID|2", "BHS|x", ""} {
		if err := m.InsertSegment(0, bad); err == nil {
			t.Errorf("InsertSegment(%q) accepted", bad)
		}
	}
	if err := m.InsertSegment(9, "ZHB|1"); !errors.Is(err, ErrNoSegment) {
		t.Errorf("insert after a missing index: %v", err)
	}
}

func TestInsertSegmentReencodes(t *testing.T) {
	// The sender uses # for components and ! for the field separator; the
	// configured segment is written with the standard ones.
	m := mustParse(t, []byte("MSH!#~\\&!A!B!C!D!20240101!!ADT#A01!X1!P!2.5\rPID!1\r"))
	if err := m.InsertSegment(0, `ZHB|1|NATIONAL^HUB|a#b\S\c|x~y&z`); err != nil {
		t.Fatal(err)
	}
	seg, _ := m.Segment("ZHB", 1)
	if got, want := string(seg.Raw()), `ZHB!1!NATIONAL#HUB!a\S\b^c!x~y&z`; got != want {
		t.Errorf("raw %q, want %q", got, want)
	}
	if got, _ := m.Get("ZHB-2.2"); got != "HUB" {
		t.Errorf("ZHB-2.2 = %q", got)
	}
	if got, _ := m.Get("ZHB-3"); got != "a#b^c" {
		t.Errorf("ZHB-3 = %q", got)
	}
	// And into the message's character set.
	l1 := mustParse(t, msg(`MSH|^~\&|A|B|C|D|20240101||ADT^A08|X1|P|2.5|||||FR|8859/1`, `PID|1`))
	if err := l1.InsertSegment(-1, "ZNM|Bérangère"); err != nil {
		t.Fatal(err)
	}
	seg, _ = l1.Segment("ZNM", 1)
	if string(seg.Raw()) != "ZNM|B\xe9rang\xe8re" {
		t.Errorf("raw %q, want Latin-1", seg.Raw())
	}
}

func TestSubset(t *testing.T) {
	m := wildMsg(t)
	s, err := m.Subset([]int{0, 1, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	if got := segIDs(s); got != "MSH PID OBX OBX" {
		t.Errorf("subset %q", got)
	}
	if err := s.Set("MSH-10", "X1-1"); err != nil {
		t.Fatal(err)
	}
	if m.ControlID() != "X1" {
		t.Error("changing a subset changed the original")
	}
	for _, bad := range [][]int{nil, {1, 2}, {0, 99}} {
		if _, err := m.Subset(bad); err == nil {
			t.Errorf("Subset(%v) accepted", bad)
		}
	}
}
