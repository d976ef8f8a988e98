package defs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs/internal/pack"
)

// TestEveryVersionDecodes decodes each version of the embedded file and
// checks its counts against CROSSCHECK.md, which the generator writes from
// its own model, not from the file.
func TestEveryVersionDecodes(t *testing.T) {
	want := crossCheckCounts(t)
	if len(want) != len(Versions()) {
		t.Fatalf("CROSSCHECK.md lists %d versions, the data file %d", len(want), len(Versions()))
	}
	for _, id := range Versions() {
		v, ok := Lookup(id)
		if !ok {
			t.Fatalf("Lookup(%q) failed", id)
		}
		got := [4]int{len(v.segments), len(v.dataTypes), len(v.structures), len(v.events)}
		if got != want[id] {
			t.Errorf("%s: segments, data types, structures, events = %v; CROSSCHECK.md says %v", id, got, want[id])
		}
		for _, sid := range v.SegmentIDs() {
			s, _ := v.Segment(sid)
			for i, f := range s.Fields {
				if f.Type != "" {
					if _, ok := v.DataType(f.Type); !ok {
						t.Errorf("%s %s-%d: data type %q not defined", id, sid, i+1, f.Type)
					}
				}
			}
		}
		for ev, st := range v.events {
			if _, ok := v.Structure(st); !ok {
				t.Errorf("%s: event %s maps to undefined structure %s", id, ev, st)
			}
		}
	}
	n := 0
	for i := 0; i < 10000; i++ {
		if _, ok := LookupTable(i); ok {
			n++
		}
	}
	if n != 392 {
		t.Errorf("%d tables decoded, CROSSCHECK.md says 392", n)
	}
}

// crossCheckCounts reads the per-version count table of CROSSCHECK.md.
func crossCheckCounts(t *testing.T) map[string][4]int {
	t.Helper()
	f, err := os.Open("CROSSCHECK.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][4]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "## ") {
			break // the cross-check table follows, with other columns
		}
		cells := strings.Split(strings.Trim(sc.Text(), "| "), " | ")
		if len(cells) != 5 || !strings.HasPrefix(cells[0], "2.") {
			continue
		}
		var row [4]int
		for i := range row {
			if row[i], err = strconv.Atoi(cells[i+1]); err != nil {
				t.Fatalf("CROSSCHECK.md row %q: %v", sc.Text(), err)
			}
		}
		out[cells[0]] = row
	}
	return out
}

// TestSharedItemsDecodeOnce checks the dedup from the reader's side: a
// segment identical in two versions is one value in memory.
func TestSharedItemsDecodeOnce(t *testing.T) {
	a, _ := Lookup("2.5")
	b, _ := Lookup("2.5.1")
	// EVN is unchanged from 2.5 to 2.5.1 (VERSIONS.md lists no change).
	ea, _ := a.Segment("EVN")
	eb, _ := b.Segment("EVN")
	if ea != eb {
		t.Errorf("EVN of 2.5 and 2.5.1 are two values, want one shared")
	}
	// OBR gained OBR-50 in 2.5.1, so it must not be shared.
	oa, _ := a.Segment("OBR")
	ob, _ := b.Segment("OBR")
	if oa == ob || len(oa.Fields) == len(ob.Fields) {
		t.Errorf("OBR of 2.5 (%d fields) and 2.5.1 (%d fields) should differ", len(oa.Fields), len(ob.Fields))
	}
}

func sample() ([]pack.Version, []pack.Table) {
	pid := pack.Segment{ID: "PID", Name: "Patient Identification", Fields: []pack.Field{
		{Name: "Set ID", Type: "SI", Min: 0, Max: 1, Len: 4},
		{Name: "Patient ID", Type: "CX", Min: 1, Max: Unbounded, Len: 250},
		{Name: "Withdrawn"},
		{Name: "Sex", Type: "IS", Max: 1, Len: 1, Table: 1},
	}}
	msh := pack.Segment{ID: "MSH", Name: "Message Header", Fields: []pack.Field{{Name: "Field Separator", Type: "ST", Min: 1, Max: 1, Len: 1}}}
	empty := pack.Segment{ID: "QRD", Name: "Withdrawn segment", Fields: nil}
	cx := pack.DataType{ID: "CX", Components: []pack.Field{{Name: "ID", Type: "ST", Max: 1, Len: 15}}}
	st := pack.DataType{ID: "ST"}
	adt := pack.Structure{ID: "ADT_A01", Nodes: []pack.Node{
		{Name: "MSH", Min: 1, Max: 1},
		{Name: "PATIENT", Group: true, Min: 0, Max: Unbounded, Children: []pack.Node{
			{Name: "PID", Min: 1, Max: 1},
			{Name: "CHOICE", Group: true, Choice: true, Min: 1, Max: 1, Children: []pack.Node{{Name: "QRD", Max: 1}}},
		}},
	}}
	v1 := pack.Version{ID: "2.1", Segments: []pack.Segment{msh, pid, empty}, DataTypes: []pack.DataType{cx, st},
		Structures: []pack.Structure{adt}, Events: [][2]string{{"ADT^A01", "ADT_A01"}, {"ADT^A04", "ADT_A01"}}}
	pid2 := pid
	pid2.Fields = append(append([]pack.Field(nil), pid.Fields...), pack.Field{Name: "Race", Type: "CE", Max: Unbounded, Table: 5})
	v2 := pack.Version{ID: "2.2", Segments: []pack.Segment{msh, pid2}, DataTypes: []pack.DataType{cx, st},
		Structures: []pack.Structure{adt}, Events: [][2]string{{"ADT^A01", "ADT_A01"}}}
	tables := []pack.Table{{ID: 1, Name: "Administrative Sex", Codes: []string{"F", "M"}}, {ID: 5, Name: "Race", Codes: []string{}}}
	return []pack.Version{v1, v2}, tables
}

func encodeSample(t *testing.T) ([]byte, pack.Stats) {
	t.Helper()
	vs, ts := sample()
	gz, st, err := pack.Encode(vs, ts)
	if err != nil {
		t.Fatal(err)
	}
	return gz, st
}

// TestRoundTrip encodes data with the generator's writer and checks that
// the reader gives back exactly that data, as the defs types.
func TestRoundTrip(t *testing.T) {
	gz, _ := encodeSample(t)
	c, err := openCatalog(string(gz))
	if err != nil {
		t.Fatal(err)
	}
	vs, ts := sample()
	if !reflect.DeepEqual(c.versionIDs, []string{"2.1", "2.2"}) {
		t.Fatalf("version IDs = %v", c.versionIDs)
	}
	for i, want := range vs {
		got, err := c.version(i)
		if err != nil {
			t.Fatalf("version %s: %v", want.ID, err)
		}
		if got.ID != want.ID || len(got.segments) != len(want.Segments) || len(got.dataTypes) != len(want.DataTypes) ||
			len(got.structures) != len(want.Structures) || len(got.events) != len(want.Events) {
			t.Fatalf("version %s: counts differ: %+v", want.ID, got)
		}
		for _, s := range want.Segments {
			g, ok := got.Segment(s.ID)
			wantFields := convFields(s.Fields)
			if wantFields == nil {
				wantFields = []Field{} // a segment always has a field list, as before
			}
			if !ok || g.Name != s.Name || !reflect.DeepEqual(g.Fields, wantFields) {
				t.Errorf("%s %s = %+v, want %+v", want.ID, s.ID, g, s)
			}
		}
		for _, d := range want.DataTypes {
			g, ok := got.DataType(d.ID)
			if !ok || !reflect.DeepEqual(g.Components, convFields(d.Components)) || g.Primitive() != (len(d.Components) == 0) {
				t.Errorf("%s %s = %+v, want %+v", want.ID, d.ID, g, d)
			}
		}
		for _, s := range want.Structures {
			g, ok := got.Structure(s.ID)
			if !ok || !reflect.DeepEqual(g.Nodes, convNodes(s.Nodes)) {
				t.Errorf("%s %s = %+v, want %+v", want.ID, s.ID, g, s)
			}
			if !got.Mentions(g, "QRD") || got.Mentions(g, "OBX") {
				t.Errorf("%s %s: Mentions wrong", want.ID, s.ID)
			}
		}
		for _, e := range want.Events {
			if got.events[e[0]] != e[1] {
				t.Errorf("%s event %s = %q, want %s", want.ID, e[0], got.events[e[0]], e[1])
			}
		}
	}
	gotTables, err := c.allTables()
	if err != nil {
		t.Fatal(err)
	}
	if len(gotTables) != len(ts) {
		t.Fatalf("tables = %+v", gotTables)
	}
	for i, w := range ts {
		g := gotTables[i]
		if g.ID != w.ID || g.Name != w.Name || !reflect.DeepEqual(g.Codes, w.Codes) {
			t.Errorf("table %d = %+v, want %+v", w.ID, g, w)
		}
	}
}

// TestDedup checks that what two versions share is stored once and decoded
// once, and what differs is stored per version.
func TestDedup(t *testing.T) {
	gz, st := encodeSample(t)
	// MSH, PID, QRD in 2.1; MSH again and a longer PID in 2.2.
	want := pack.Stats{SegmentRefs: 5, Segments: 4, DataTypeRefs: 4, DataTypes: 2, StructureRefs: 2, Structures: 1}
	if st.SegmentRefs != want.SegmentRefs || st.Segments != want.Segments || st.DataTypeRefs != want.DataTypeRefs ||
		st.DataTypes != want.DataTypes || st.StructureRefs != want.StructureRefs || st.Structures != want.Structures {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	// The four PID fields of 2.1 are shared by the PID of 2.2, which adds
	// one: MSH-1 1 + PID 4 + 1 + CX.1 1 = 7 distinct fields.
	if st.Fields != 7 {
		t.Errorf("distinct fields = %d, want 7", st.Fields)
	}
	c, err := openCatalog(string(gz))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.segments) != 4 || len(c.dataTypes) != 2 || len(c.structures) != 1 || len(c.fields) != 7 {
		t.Errorf("catalog holds %d segments, %d data types, %d structures, %d fields",
			len(c.segments), len(c.dataTypes), len(c.structures), len(c.fields))
	}
	v1, err := c.version(0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.version(1)
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := v1.Segment("MSH")
	m2, _ := v2.Segment("MSH")
	s1, _ := v1.Structure("ADT_A01")
	s2, _ := v2.Structure("ADT_A01")
	p1, _ := v1.Segment("PID")
	p2, _ := v2.Segment("PID")
	if m1 != m2 || s1 != s2 {
		t.Errorf("shared items decoded twice: MSH %p %p, ADT_A01 %p %p", m1, m2, s1, s2)
	}
	if p1 == p2 || len(p1.Fields) != 4 || len(p2.Fields) != 5 {
		t.Errorf("PID of 2.1 and 2.2 = %d, %d fields, want 4, 5 and two values", len(p1.Fields), len(p2.Fields))
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a, _ := encodeSample(t)
	b, _ := encodeSample(t)
	if !bytes.Equal(a, b) {
		t.Error("two encodings of the same data differ")
	}
}

// TestCorrupt feeds the reader broken files: each must fail with
// ErrCorrupt, never panic or decode silently.
func TestCorrupt(t *testing.T) {
	gz, _ := encodeSample(t)
	vs, ts := sample()
	payload, _ := pack.Payload(vs, ts)
	tests := []struct {
		name string
		gz   string
	}{
		{"not gzip", "HL7DEFS1"},
		{"truncated gzip", string(gz[:len(gz)/2])},
		{"bad magic", gzipString(t, append([]byte("HL7DEFS9"), payload[8:]...))},
		{"trailing bytes", gzipString(t, append(append([]byte(nil), payload...), 0))},
	}
	// Every strict prefix of the payload lacks something the format needs.
	for n := 0; n < len(payload); n++ {
		tests = append(tests, struct{ name, gz string }{"prefix " + strconv.Itoa(n), gzipString(t, payload[:n])})
	}
	for _, tt := range tests {
		c, err := openCatalog(tt.gz)
		if err == nil {
			// The index may hold while an item is broken: decoding it must fail.
			for i := range c.versions {
				if _, err = c.version(i); err != nil {
					break
				}
			}
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tt.name, err)
		}
	}
}

// TestBadReference flips one reference of a version to point past its
// table: the index still holds, decoding the version must fail.
func TestBadReference(t *testing.T) {
	vs, ts := sample()
	payload, _ := pack.Payload(vs[:1], ts)
	c, err := openCatalog(gzipString(t, payload))
	if err != nil {
		t.Fatal(err)
	}
	// The version entry starts with its ID and then its segment count (3)
	// and first segment reference (0): make that reference 127.
	off := int(c.versions[0])
	r := &reader{c: c, off: off}
	r.str()
	if r.count() != 3 {
		t.Fatal("unexpected layout")
	}
	broken := []byte(c.payload)
	broken[r.off] = 127
	c2, err := openCatalog(gzipString(t, broken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.version(0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v, want ErrCorrupt", err)
	}
}

func gzipString(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func convFields(fs []pack.Field) []Field {
	if fs == nil {
		return nil
	}
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{Name: f.Name, Type: f.Type, Min: f.Min, Max: f.Max, Len: f.Len, Table: f.Table}
	}
	return out
}

func convNodes(ns []pack.Node) []Node {
	if ns == nil {
		return nil
	}
	out := make([]Node, len(ns))
	for i, n := range ns {
		out[i] = Node{Name: n.Name, Group: n.Group, Choice: n.Choice, Min: n.Min, Max: n.Max, Children: convNodes(n.Children)}
	}
	return out
}
