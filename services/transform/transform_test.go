package transform

import (
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestToUTC(t *testing.T) {
	tests := []struct {
		in, utc, offset string
		ok              bool
	}{
		{"20240301101500+0100", "2024-03-01T09:15:00Z", "+01:00", true},
		{"20240301101500-0500", "2024-03-01T15:15:00Z", "-05:00", true},
		{"20240301101500", "2024-03-01T10:15:00Z", "", true},
		{"20240301101500.123+0000", "2024-03-01T10:15:00.123Z", "+00:00", true},
		{"202403011015", "2024-03-01T10:15:00Z", "", true},
		{"20240301", "2024-03-01T00:00:00Z", "", true},
		{"2024", "2024-01-01T00:00:00Z", "", true},
		{" 20240301 ", "2024-03-01T00:00:00Z", "", true},
		{"", "", "", false},
		{"2024-03-01", "", "", false},
		{"20241301", "", "", false},
		{"20240301101500+01", "", "", false},
		{"20240301101500+9900", "", "", false},
		{"yesterday", "", "", false},
	}
	for _, tt := range tests {
		utc, off, ok := ToUTC(tt.in)
		if utc != tt.utc || off != tt.offset || ok != tt.ok {
			t.Errorf("ToUTC(%q) = %q %q %v, want %q %q %v", tt.in, utc, off, ok, tt.utc, tt.offset, tt.ok)
		}
	}
}

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
