package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs/internal/pack"
)

func TestDiffFields(t *testing.T) {
	cx := field{Name: "Patient ID", Type: "CX", Min: 1, Max: -1, Len: 20}
	tests := []struct {
		name string
		a, b []field
		want []string
	}{
		{"same", []field{cx}, []field{cx}, nil},
		{"added", nil, []field{cx}, []string{"PID-1 added (Patient ID CX [1..*] len 20)"}},
		{"removed", []field{cx}, nil, []string{"PID-1 removed"}},
		{"withdrawn", []field{cx}, []field{withdrawn}, []string{"PID-1 withdrawn"}},
		{"reinstated", []field{withdrawn}, []field{cx}, []string{"PID-1 reinstated (Patient ID CX [1..*] len 20)"}},
		{"type and table", []field{cx}, []field{{Name: "Patient ID", Type: "CWE", Min: 1, Max: -1, Len: 20, Table: 5}},
			[]string{"PID-1 type CX → CWE, table none → 0005"}},
		{"cardinality and len", []field{cx}, []field{{Name: "Patient ID", Type: "CX", Min: 0, Max: 1, Len: 250}},
			[]string{"PID-1 cardinality [1..*] → [0..1], len 20 → 250"}},
		{"renamed only", []field{cx, cx}, []field{{Name: "Patient Identifier", Type: "CX", Min: 1, Max: -1, Len: 20}, cx},
			[]string{"1 name reworded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diffFields("PID", tt.a, tt.b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("diffFields = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVersionsReport(t *testing.T) {
	msh := segment{ID: "MSH", Name: "Message Header", Fields: []field{{Name: "Field Separator", Type: "ST", Min: 1, Max: 1}}}
	pid := segment{ID: "PID", Fields: []field{{Name: "Sex", Type: "IS", Max: 1, Table: 1}}}
	adt := structure{ID: "ADT_A01", Nodes: []node{{Name: "MSH", Min: 1, Max: 1}}}
	adt2 := structure{ID: "ADT_A01", Nodes: []node{{Name: "MSH", Min: 1, Max: 1}, {Name: "PID", Min: 1, Max: 1}}}
	v1 := &version{ID: "2.1", Segments: []segment{msh}, Structures: []structure{adt},
		Events: [][2]string{{"ADT^A01", "ADT_A01"}, {"ADT^A04", "ADT_A01"}}}
	v2 := &version{ID: "2.2", Segments: []segment{msh, pid}, Structures: []structure{adt2},
		Events: [][2]string{{"ADT^A01", "ADT_A01"}}}
	got := string(versionsReport([]*version{v1, v2}, nil, pack.Stats{}, 0))
	for _, want := range []string{
		"| 2.2 | 1 / 0 / 0 | 0 / 0 / 0 | 0 / 0 / 1 | 0 / 1 / 0 | 1 / 0 |",
		"## 2.2 (against 2.1)",
		"### Segments\n\n- added: `PID`\n",
		"  - `ADT_A01`: segments added PID\n",
		"### Events\n\n- removed: `ADT^A04`\n",
		"### Tables referenced\n\n- added: `0001`\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
