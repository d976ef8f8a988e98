package ingress

import (
	"strings"
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
	}
	for _, tt := range tests {
		if got := orderingKey(Interface{Name: "in", Ordering: tt.ordering}, tt.m, "ID1"); got != tt.want {
			t.Errorf("ordering %q: %q, want %q", tt.ordering, got, tt.want)
		}
	}
}

func TestMetricType(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"ADT", "A01"}: "ADT^A01", {"ORU", "R01"}: "ORU^R01", {"ADT", "ZZ9"}: "ADT", {"DOE", "A01"}: "other", {"", ""}: "other",
	} {
		if got := metricType(in[0], in[1]); got != want {
			t.Errorf("metricType(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRejectUnparseable(t *testing.T) {
	_, perr := hl7v2.Parse([]byte("hello"))
	reply := rejectUnparseable(perr, "01ID")
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Code != hl7v2.AckReject || ack.ControlID != "" || len(ack.Errors) != 1 || ack.Errors[0] != hl7v2.CodeSegmentSequence {
		t.Errorf("ack %+v", ack)
	}
	if !strings.Contains(string(reply), "does not start with MSH") {
		t.Errorf("the reason is missing: %q", reply)
	}
	m, _ := hl7v2.Parse(reply)
	if c, _, _ := m.Type(); c != "ACK" || m.ControlID() != "01ID" {
		t.Errorf("MSH-9 %q, MSH-10 %q", c, m.ControlID())
	}
	_, derr := hl7v2.Parse([]byte("MSH|^~|A"))
	if ack, _ := hl7v2.ParseACK(rejectUnparseable(derr, "X")); ack == nil || ack.Errors[0] != hl7v2.CodeDataType {
		t.Errorf("delimiter error: %+v", ack)
	}
}

func TestValidate(t *testing.T) {
	err := Config{Interfaces: []Interface{{Name: "a", Protocol: "mllp", Address: "x"}, {Name: "a", Protocol: "http", Address: "127.0.0.1:1", Ordering: "fifo"}}}.Validate()
	for _, want := range []string{"interfaces[0].address", "interfaces[1].name", "interfaces[1].protocol", "interfaces[1].ordering"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}
