package ingress

import (
	"strings"
	"testing"
)

func TestMetricType(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"ADT", "A01"}: "ADT^A01", {"ORU", "R01"}: "ORU^R01", {"ADT", "ZZ9"}: "ADT", {"DOE", "A01"}: "other", {"", ""}: "other",
	} {
		if got := metricType(in[0], in[1]); got != want {
			t.Errorf("metricType(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	err := Config{Interfaces: []Interface{{Name: "a", Protocol: "mllp", Address: "x"}, {Name: "a", Protocol: "http", Address: "127.0.0.1:1", Ordering: "fifo",
		Ack: AckPolicy{OnProfileError: "reject"}}}}.Validate()
	for _, want := range []string{"interfaces[0].address", "interfaces[1].name", "interfaces[1].protocol", "interfaces[1].ordering",
		"interfaces[1].ack.on_profile_error"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}
