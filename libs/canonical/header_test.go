package canonical

import (
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func TestHeaderOf(t *testing.T) {
	m, err := hl7v2.Parse([]byte("MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||ORU^R01^ORU_R01|C1|P| 2.5 ||||||8859/1\r"))
	if err != nil {
		t.Fatal(err)
	}
	want := Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", ReceivingApplication: "LIS", ReceivingFacility: "LAB",
		MessageCode: "ORU", TriggerEvent: "R01", MessageStructure: "ORU_R01", ControlID: "C1", ProcessingID: "P", Version: "2.5",
		Charset: "8859/1"}
	if got := HeaderOf(m); got != want {
		t.Errorf("HeaderOf = %+v, want %+v", got, want)
	}
}
