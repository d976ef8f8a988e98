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

func TestRejectParsedAnswersTheMessage(t *testing.T) {
	frame := []byte("MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||MDM^T01|CTL-9|P|2.5\rEVN|T01\rCON_|1|x\r")
	_, perr := hl7v2.Parse(frame)
	if perr == nil {
		t.Fatal("CON_ is not a valid segment ID; the parser must reject it")
	}
	m := mshOnly(hl7v2.NewParser(), frame)
	if m == nil {
		t.Fatal("the MSH alone parses")
	}
	ack, err := hl7v2.ParseACK(rejectParsed(m, perr, "ID9"))
	if err != nil || ack.Code != hl7v2.AckReject || !ack.Matches("CTL-9") || len(ack.Errors) != 1 {
		t.Errorf("AR %+v %v", ack, err)
	}
	enhanced := mshOnly(hl7v2.NewParser(), []byte("MSH|^~\\&|A|B|C|D|1||ADT^A01|C2|P|2.5|||AL|NE\rbad segment"))
	if ack, _ := hl7v2.ParseACK(rejectParsed(enhanced, perr, "X")); ack == nil || ack.Code != hl7v2.AckCommitReject || !ack.Matches("C2") {
		t.Errorf("enhanced mode: %+v", ack)
	}
	if mshOnly(hl7v2.NewParser(), []byte("EVN|1\rMSH|^~\\&|A")) != nil {
		t.Error("a frame not starting with MSH has no usable MSH")
	}
}
