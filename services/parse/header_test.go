package parse

import (
	"context"
	"log/slog"
	"testing"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// TestHandleCarriesTheIngressHeader: the header is computed once, at
// ingress, and parse passes it on rather than deriving its own; only a
// record without one gets it derived.
func TestHandleCarriesTheIngressHeader(t *testing.T) {
	s, env := newStage(t, nil)
	msg := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||ADT^A01^ADT_A01|C1|P|2.5\rEVN|A01|20240101\rPID|1||1^^^H^MR||DOE\rPV1|1|I\r"
	// A header that differs from what this parse would derive, so the
	// test tells carrying from recomputing.
	fromIngress := canonical.Header{SendingApplication: "HIS", SendingFacility: "GENHOSP", MessageCode: "ADT", TriggerEvent: "A01",
		ControlID: "C1", Version: "2.5", Charset: "INGRESS"}
	tests := []struct {
		name   string
		header canonical.Header
		want   canonical.Header
	}{
		{"carried", fromIngress, fromIngress},
		{"derived when absent", canonical.Header{}, canonical.Header{SendingApplication: "HIS", SendingFacility: "GENHOSP",
			ReceivingApplication: "LIS", ReceivingFacility: "LAB", MessageCode: "ADT", TriggerEvent: "A01", MessageStructure: "ADT_A01",
			ControlID: "C1", ProcessingID: "P", Version: "2.5", Charset: "UTF-8"}},
	}
	for _, tt := range tests {
		v := encodeRaw(t, env, &canonical.Raw{MessageID: "M1", Interface: "in", OrderingKey: "k", Header: tt.header, Payload: []byte(msg)})
		ps, id, err := handle(context.Background(), s, v)
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v, %d records", tt.name, err, len(ps))
		}
		if ps[0].Header != tt.want || id.ControlID != "C1" {
			t.Errorf("%s: header %+v (ident %+v), want %+v", tt.name, ps[0].Header, id, tt.want)
		}
	}
}

// TestHandleUsesTheConfiguredParser: the parser of Config decodes the
// message (here with no fallback, so a stray byte reads as U+FFFD in the
// derived header), not a parser of parse's own.
func TestHandleUsesTheConfiguredParser(t *testing.T) {
	_, env := newStage(t, nil)
	p, err := hl7v2.ParserConfig{FallbackCharset: hl7v2.FallbackNone}.NewParser()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Parser: p}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	msg := "MSH|^~\\&|HIS\x8A|GENHOSP|LIS|LAB|20240101||ADT^A01^ADT_A01|C1|P|2.5\rEVN|A01|20240101\rPID|1||1^^^H^MR||DOE\rPV1|1|I\r"
	ps, _, err := handle(context.Background(), s, encodeRaw(t, env, &canonical.Raw{MessageID: "M1", Interface: "in", Payload: []byte(msg)}))
	if err != nil {
		t.Fatal(err)
	}
	if got := ps[0].Header.SendingApplication; got != "HIS\uFFFD" {
		t.Errorf("MSH-3 %q, want the configured parser's U+FFFD (the default would give Š)", got)
	}
}
