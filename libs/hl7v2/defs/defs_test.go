package defs

import "testing"

func TestLookup(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2.1", "2.1"}, {"2.3.1", "2.3.1"}, {"2.5", "2.5"}, {"2.5.1", "2.5.1"}, {" 2.6 ", "2.6"},
		{"2.7.1", "2.7"}, {"2.8.2", "2.8.2"}, {"2.8.9", "2.8.2"}, {"2.4.1", "2.4"},
	}
	for _, tt := range tests {
		v, ok := Lookup(tt.in)
		if !ok || v.ID != tt.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tt.in, v, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "3.0", "2.9", "2", "abc"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found a version", bad)
		}
	}
	if got := Versions(); len(got) != 12 || got[0] != "2.1" || got[11] != "2.8.2" {
		t.Errorf("Versions() = %v", got)
	}
}

func TestKnownFacts(t *testing.T) {
	v25, _ := Lookup("2.5")
	pid, ok := v25.Segment("PID")
	if !ok || len(pid.Fields) != 39 {
		t.Fatalf("PID in 2.5: %v fields", len(pid.Fields))
	}
	// PID-3 Patient Identifier List: CX, required, repeating, table none.
	if f := pid.Fields[2]; f.Type != "CX" || f.Min != 1 || f.Max != Unbounded {
		t.Errorf("PID-3 = %+v", f)
	}
	// PID-8 Administrative Sex: IS, table 0001.
	if f := pid.Fields[7]; f.Table != 1 {
		t.Errorf("PID-8 = %+v", f)
	}
	msh, _ := v25.Segment("MSH")
	if f := msh.Fields[8]; f.Type != "MSG" || f.Min != 1 {
		t.Errorf("MSH-9 = %+v", f)
	}
	for ev, want := range map[string]string{"ADT^A04": "ADT_A01", "ADT^A08": "ADT_A01", "ORU^R01": "ORU_R01", "ADT^A03": "ADT_A03", "VXU^V04": "VXU_V04"} {
		parts := [2]string{ev[:3], ev[4:]}
		s, ok := v25.StructureFor(parts[0], parts[1])
		if !ok || s.ID != want {
			t.Errorf("StructureFor(%s) = %v, want %s", ev, s, want)
		}
	}
	oru, _ := v25.Structure("ORU_R01")
	if oru.Nodes[0].Name != "MSH" || !oru.Nodes[2].Group || oru.Nodes[2].Max != Unbounded {
		t.Errorf("ORU_R01 = %+v", oru.Nodes[:3])
	}
	cx, _ := v25.DataType("CX")
	if cx.Primitive() || cx.Components[0].Type != "ST" {
		t.Errorf("CX = %+v", cx)
	}
	if st, _ := v25.DataType("ST"); !st.Primitive() {
		t.Errorf("ST is primitive")
	}
	v21, _ := Lookup("2.1")
	if _, ok := v21.StructureFor("ADT", "A04"); !ok {
		t.Errorf("2.1 ADT^A04 has no structure")
	}
	t1, ok := LookupTable(1)
	if !ok || !t1.Has("F") || !t1.Has("M") || t1.Has("Q") {
		t.Errorf("table 0001 = %+v", t1)
	}
	if t8, ok := LookupTable(8); !ok || !t8.Has("AA") || !t8.Has("CR") {
		t.Errorf("table 0008 = %+v", t8)
	}
}
