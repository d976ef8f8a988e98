package canonical

import (
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestOrderingKey(t *testing.T) {
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|HIS|GENHOSP^1.2^ISO|LIS|LAB|20240101||ADT^A01|1|P|2.5\rPID|1||123^^^GENHOSP&1.2&ISO^MR~9^^^X||DOE\r"))
	if err != nil {
		t.Fatal(err)
	}
	noPID, _ := hl7v2.Parse([]byte("MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||MFN^M01|1|P|2.5\r"))
	tests := []struct {
		ordering string
		m        *hl7v2.Message
		want     string
	}{
		{"", m, "GENHOSP|123^GENHOSP"},
		{OrderPatient, m, "GENHOSP|123^GENHOSP"},
		{OrderInterface, m, "interface:in"},
		{OrderNone, m, "ID1"},
		{OrderPatient, noPID, "GENHOSP|"},
		{OrderPatient, nil, "interface:in"},
	}
	for _, tt := range tests {
		if got := OrderingKey(tt.ordering, "in", tt.m, "ID1"); got != tt.want {
			t.Errorf("ordering %q: %q, want %q", tt.ordering, got, tt.want)
		}
	}
}
