package e2e

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// checkTraces asserts that every delivered message has one trace from the
// ingress receive span to the egress deliver span, through every stage,
// and that no span attribute carries record keys (patient identifiers).
func checkTraces(t *testing.T, rec *tracetest.SpanRecorder, kc kafka.Config, messages int) {
	t.Helper()
	var byMessage map[string]map[string]trace.TraceID // message ID -> span name -> trace
	deadline := time.Now().Add(10 * time.Second)
	for {
		byMessage = map[string]map[string]trace.TraceID{}
		for _, s := range rec.Ended() {
			for _, a := range s.Attributes() {
				if strings.Contains(string(a.Key), "message.key") || strings.Contains(a.Value.String(), "^^^") {
					t.Fatalf("span %q carries %s=%s: record keys hold patient identifiers", s.Name(), a.Key, a.Value.String())
				}
				if a.Key == "hl7bus.message_id" && a.Value.AsString() != "" {
					id := a.Value.AsString()
					if byMessage[id] == nil {
						byMessage[id] = map[string]trace.TraceID{}
					}
					byMessage[id][s.Name()] = s.SpanContext().TraceID()
				}
			}
		}
		complete := 0
		for _, spans := range byMessage {
			if len(spans) >= 5 {
				complete++
			}
		}
		if complete >= messages || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// kotel names process spans after the topic.
	want := []string{"ingress receive", kc.Topic("raw") + " process", kc.Topic("parsed") + " process", kc.Topic("transformed") + " process", kc.OutTopic("lis") + " process"}
	checked := 0
	for id, spans := range byMessage {
		if _, ok := spans[kc.OutTopic("lis")+" process"]; !ok {
			continue // the malformed message stops at parse
		}
		checked++
		for _, name := range want {
			tid, ok := spans[name]
			if !ok {
				t.Errorf("message %s has no %q span (has %v)", id, name, spans)
				continue
			}
			if tid != spans["ingress receive"] {
				t.Errorf("message %s: %q is in trace %s, ingress in %s", id, name, tid, spans["ingress receive"])
			}
		}
	}
	if checked < messages {
		t.Errorf("traces of %d messages found, want %d", checked, messages)
	}
}

// checkMetrics reads /metrics and checks the counters the scenario moved.
func checkMetrics(t *testing.T, tel *telemetry.Telemetry, messages int) {
	t.Helper()
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`hl7bus_ingress_messages_total{ack="AA",interface="adt-in",type="ADT^A01"}`,
		`hl7bus_stage_records_total{outcome="ok",stage="parse"}`,
		`hl7bus_egress_attempts_total{destination="lis",outcome="delivered"}`,
		`hl7bus_end_to_end_latency_seconds_count{destination="lis"}`,
		`hl7bus_destination_up{destination="lis"} 1`,
		`hl7bus_kafka_produce_bytes_total{client="ingress"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), "P00") || strings.Contains(string(body), "DOE") {
		t.Errorf("/metrics carries message content")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, err, resp.Status)
		}
		resp.Body.Close()
	}
	_ = messages
}
