package canonical

import (
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestPatientOf(t *testing.T) {
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|A|F|B|G|20240101||ADT^A01|1|P|2.5\r" +
		"PID|1|| 123 ^^^GENHOSP&1.2.3&ISO^MR~\"\"~~NG-9^^^NIMC^NI||DOE^JANE^Q||19800101|F\r"))
	if err != nil {
		t.Fatal(err)
	}
	p := PatientOf(m)
	if p == nil || p.FamilyName != "DOE" || p.GivenName != "JANE" || p.BirthDate != "1980-01-01" || p.Sex != "F" {
		t.Fatalf("patient %+v", p)
	}
	if len(p.Identifiers) != 2 || p.Identifiers[0].Value != "123" || p.Identifiers[0].Authority != "GENHOSP" ||
		p.Identifiers[0].Type != "MR" || p.Identifiers[1].Value != "NG-9" {
		t.Errorf("identifiers %+v (trimmed, null and empty repetitions skipped)", p.Identifiers)
	}
	noPID, _ := hl7v2.Parse([]byte("MSH|^~\\&|A|F|B|G|20240101||MFN^M01|1|P|2.5\r"))
	if PatientOf(noPID) != nil {
		t.Error("no PID, no patient")
	}
}

func TestPatientOfBirthDate(t *testing.T) {
	tests := []struct{ pid7, want string }{
		{"19800101", "1980-01-01"},
		{" 19800101 ", "1980-01-01"},
		// With a time and an offset the date stays the one written: in
		// UTC the first is still 31 December 1979, the second already
		// 2 January.
		{"198001010030+0100", "1980-01-01"},
		{"198001012330-0500", "1980-01-01"},
		// Partial dates keep their precision rather than gain a day.
		{"1980", "1980"},
		{"198007", "1980-07"},
		{"19800230", ""},
		{"unknown", ""},
		{"", ""},
	}
	for _, tt := range tests {
		m, err := hl7v2.Parse([]byte("MSH|^~\\&|A|F|B|G|20240101||ADT^A01|1|P|2.5\rPID|1||123^^^H^MR||DOE^JANE||" + tt.pid7 + "|F\r"))
		if err != nil {
			t.Fatal(err)
		}
		if got := PatientOf(m).BirthDate; got != tt.want {
			t.Errorf("PID-7 %q: birth date %q, want %q", tt.pid7, got, tt.want)
		}
	}
}

func TestMessageTimeOf(t *testing.T) {
	tests := []struct {
		msh7, utc, offset string
		ok                bool
	}{
		{"20240301101500+0545", "2024-03-01T04:30:00Z", "+05:45", true},
		{"20240301101500", "2024-03-01T10:15:00Z", "", true},
		{"", "", "", false},
		{"2024-03-01", "", "", false},
	}
	for _, tt := range tests {
		m, err := hl7v2.Parse([]byte("MSH|^~\\&|A|F|B|G|" + tt.msh7 + "||ADT^A01|1|P|2.5\r"))
		if err != nil {
			t.Fatal(err)
		}
		utc, off, ok := MessageTimeOf(m)
		if utc != tt.utc || off != tt.offset || ok != tt.ok {
			t.Errorf("MSH-7 %q: %q %q %v, want %q %q %v", tt.msh7, utc, off, ok, tt.utc, tt.offset, tt.ok)
		}
	}
}
