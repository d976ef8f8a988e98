package hl7v2

import (
	"errors"
	"testing"
)

func TestParsePath(t *testing.T) {
	good := map[string]Path{
		"PID-3":         {Segment: "PID", Field: 3},
		"PID-3[2].1":    {Segment: "PID", Field: 3, Repetition: 2, Component: 1},
		"PID-5.1":       {Segment: "PID", Field: 5, Component: 1},
		"OBX[3]-5":      {Segment: "OBX", Occurrence: 3, Field: 5},
		"MSH-9.2":       {Segment: "MSH", Field: 9, Component: 2},
		"PID-11[1].2.1": {Segment: "PID", Field: 11, Repetition: 1, Component: 2, Subcomponent: 1},
		"ZP1-1":         {Segment: "ZP1", Field: 1},
	}
	for s, want := range good {
		got, err := ParsePath(s)
		if err != nil || got != want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "PID", "PID-", "pid-3", "PID-0", "PID-3[0]", "PID-3[x]", "PID-3[1", "PID3",
		"PID-3.", "PID-3.1.2.3", "PID-3..1", "OBX[]-5", "PID-3 ", "PIDX-1", "PID-99999999999"} {
		if _, err := ParsePath(s); !errors.Is(err, ErrPath) {
			t.Errorf("ParsePath(%q) err = %v, want ErrPath", s, err)
		}
	}
}

func TestPathStringRoundTrip(t *testing.T) {
	for _, s := range []string{"PID-3", "PID-3[2].1", "OBX[3]-5", "PID-11[2].2.1", "MSH-9.2"} {
		p, err := ParsePath(s)
		if err != nil || p.String() != s {
			t.Errorf("%q -> %q, %v", s, p.String(), err)
		}
	}
}

func TestGet(t *testing.T) {
	m := mustParse(t, msg(mshLine,
		`PID|1||123^^^H^MR~456^^^N^NI||DOE^JANE||||||1 A ST^FLAT 2&REAR^CITY`,
		`OBX|1|NM|A||1`, `OBX|2|NM|B||2`, `OBX|3|ST|C||x\F\y`))
	tests := map[string]string{
		"PID-3":        "123^^^H^MR",
		"PID-3[2]":     "456^^^N^NI",
		"PID-3[2].1":   "456",
		"PID-3[2].4":   "N",
		"PID-3[3].1":   "",
		"PID-5":        "DOE^JANE",
		"PID-5.1":      "DOE",
		"PID-5.2":      "JANE",
		"PID-11.2":     "FLAT 2&REAR",
		"PID-11.2.2":   "REAR",
		"PID-11.2.3":   "",
		"OBX[3]-5":     "x|y",
		"OBX[2]-5":     "2",
		"OBX-5":        "1",
		"OBX[4]-5":     "",
		"PID-5.1.1":    "DOE",
		"PID-5.1.2":    "",
		"PID-3[2].1.1": "456",
		"MSH-9.1":      "ADT",
	}
	for path, want := range tests {
		if got, err := m.Get(path); err != nil || got != want {
			t.Errorf("Get(%s) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := m.Get("bad"); !errors.Is(err, ErrPath) {
		t.Errorf("Get(bad) err = %v", err)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name, path, value string
		wantSeg           string // the segment after Set (PID unless the path says otherwise)
	}{
		{"replace field", "PID-5", "ROE^RICH", `PID|1||123^^^H~456||ROE\S\RICH`},
		{"component", "PID-5.2", "RICH", `PID|1||123^^^H~456||DOE^RICH`},
		{"new component", "PID-5.4", "JR", `PID|1||123^^^H~456||DOE^JANE^^JR`},
		{"repetition component", "PID-3[2].4", "N", `PID|1||123^^^H~456^^^N||DOE^JANE`},
		{"new repetition", "PID-3[3]", "789", `PID|1||123^^^H~456~789||DOE^JANE`},
		{"subcomponent", "PID-3[1].4.2", "ISO", `PID|1||123^^^H&ISO~456||DOE^JANE`},
		{"new field", "PID-8", "F", `PID|1||123^^^H~456||DOE^JANE|||F`},
		{"escaping", "PID-5.1", `O|B^R~I&E\N`, `PID|1||123^^^H~456||O\F\B\S\R\R\I\T\E\E\N^JANE`},
		{"line breaks", "PID-5.1", "A\rB\nC", `PID|1||123^^^H~456||A\X0D\B\X0A\C^JANE`},
		{"empty", "PID-5", "", `PID|1||123^^^H~456||`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, msg(mshLine, `PID|1||123^^^H~456||DOE^JANE`, `PV1|1`))
			if err := m.Set(tt.path, tt.value); err != nil {
				t.Fatal(err)
			}
			seg, _ := m.Segment("PID", 1)
			if string(seg.Raw()) != tt.wantSeg {
				t.Errorf("PID = %q, want %q", seg.Raw(), tt.wantSeg)
			}
			if got, _ := m.Get(tt.path); tt.value != "" && got != tt.value && !containsDelimiter(tt.value, m.Delimiters()) {
				t.Errorf("Get after Set = %q, want %q", got, tt.value)
			}
			// The message must still parse to the same thing.
			again := mustParse(t, m.Bytes())
			if string(again.Bytes()) != string(m.Bytes()) {
				t.Errorf("re-parse differs")
			}
		})
	}
}

// containsDelimiter reports whether s holds a delimiter, in which case Get returns
// the wire form of a composite and cannot equal the value set.
func containsDelimiter(s string, d Delimiters) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == d.Component || s[i] == d.Repetition || s[i] == d.Subcomponent {
			return true
		}
	}
	return false
}

func TestSetReadsBack(t *testing.T) {
	m := mustParse(t, msg(mshLine, `PID|1`))
	val := `tricky | ^ ~ & \ value`
	if err := m.Set("PID-5.1", val); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("PID-5.1"); got != val {
		t.Errorf("got %q want %q", got, val)
	}
}

func TestSetSegments(t *testing.T) {
	m := mustParse(t, msg(mshLine, `PID|1`, `OBX|1|ST|||a`, `PV1|1`))
	if err := m.Set("OBX[2]-5", "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("ZPI-1", "z"); err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5\rPID|1\rOBX|1|ST|||a\rOBX|||||b\rPV1|1\rZPI|z\r"
	if got := string(m.Bytes()); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if err := m.Set("OBX[4]-5", "x"); !errors.Is(err, ErrNoSegment) {
		t.Errorf("skipping an occurrence: err = %v", err)
	}
	for _, p := range []string{"MSH-1", "MSH-2"} {
		if err := m.Set(p, "x"); !errors.Is(err, ErrNotSettable) {
			t.Errorf("Set(%s) err = %v", p, err)
		}
	}
	if err := m.Set("MSH-10", "NEW1"); err != nil || m.ControlID() != "NEW1" {
		t.Errorf("Set(MSH-10): %v, %q", err, m.ControlID())
	}
	if err := m.SetRaw("PID-5", []byte("DOE^JOHN")); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("PID-5.2"); got != "JOHN" {
		t.Errorf("SetRaw: %q", got)
	}
	if err := m.SetRaw("PID-5", []byte("A|B")); !errors.Is(err, ErrNotSettable) {
		t.Errorf("SetRaw with a field separator: %v", err)
	}
}

func TestSetCharset(t *testing.T) {
	m := mustParse(t, msg(`MSH|^~\&|A|B|C|D|20240101||ADT^A08|X1|P|2.5|||||FR|8859/1`, `PID|1`))
	if err := m.Set("PID-5.1", "Bérangère"); err != nil {
		t.Fatal(err)
	}
	seg, _ := m.Segment("PID", 1)
	if string(seg.Raw()) != "PID|1||||B\xe9rang\xe8re" {
		t.Errorf("raw = %q, want Latin-1 bytes", seg.Raw())
	}
	if got, _ := m.Get("PID-5.1"); got != "Bérangère" {
		t.Errorf("read back %q", got)
	}
	if err := m.Set("PID-5.1", "漢字"); err == nil {
		t.Errorf("a value the charset cannot hold must be refused")
	}
}

// TestParsePathErrorText checks the whole path is quoted, whichever part
// of it is wrong: the parser consumes the string as it goes, and an error
// quoting what was left ("" after PID-19[x]) does not say which path of a
// configuration is meant.
func TestParsePathErrorText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"PID3", `hl7v2: invalid path "PID3": too short; expected e.g. PID-3`},
		{"pid-3", `hl7v2: invalid path "pid-3": segment must be 3 upper-case letters or digits`},
		{"OBX[x]-5", `hl7v2: invalid path "OBX[x]-5": segment occurrence: expected a number`},
		{"OBX[2-5", `hl7v2: invalid path "OBX[2-5": segment occurrence: missing ]`},
		{"PIDX-1", `hl7v2: invalid path "PIDX-1": expected - and a field number after the segment`},
		{"PID-0", `hl7v2: invalid path "PID-0": field: "0" is not a positive index`},
		{"PID-19[x]", `hl7v2: invalid path "PID-19[x]": repetition: expected a number`},
		{"PID-3[1", `hl7v2: invalid path "PID-3[1": repetition: missing ]`},
		{"PID-3[2x]", `hl7v2: invalid path "PID-3[2x]": repetition: not a number`},
		{"PID-3.", `hl7v2: invalid path "PID-3.": component: expected a number`},
		{"PID-3.1.x", `hl7v2: invalid path "PID-3.1.x": subcomponent: expected a number`},
		{"PID-3.1.2.3", `hl7v2: invalid path "PID-3.1.2.3": unexpected ".3"`},
		{"OBX[*]-5[*]x", `hl7v2: invalid path "OBX[*]-5[*]x": unexpected "x"`},
	} {
		_, err := ParsePath(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParsePath(%q) err = %v\nwant %s", tt.in, err, tt.want)
		}
	}
}
