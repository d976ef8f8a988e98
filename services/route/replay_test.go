package route

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestHandleReplayDestinations: a record replayed with the replay
// destinations header goes only to those of its selected destinations;
// the routes' verdicts stay whole in the decision, which lists only the
// destinations written.
func TestHandleReplayDestinations(t *testing.T) {
	rules := compile(t, "v1", nil, nil,
		Rule{Name: "labs", MessageTypes: []string{"ORU"}, Destinations: []string{"lis", "registry", "archive"}})
	tests := []struct {
		name    string
		only    []string
		replay  bool
		outs    string
		dests   string
		outcome string
	}{
		{name: "no header: every destination", outs: "lis registry archive", dests: "lis=routed registry=routed archive=routed", outcome: "routed"},
		{name: "one", only: []string{"registry"}, replay: true, outs: "registry", dests: "registry=routed", outcome: "routed"},
		{name: "two, in the routes' order", only: []string{"archive", "lis"}, replay: true, outs: "lis archive", dests: "lis=routed archive=routed", outcome: "routed"},
		{name: "a destination no longer routed gets nothing", only: []string{"ehr", "lis"}, replay: true, outs: "lis", dests: "lis=routed", outcome: "routed"},
		{name: "none routed any more", only: []string{"ehr"}, replay: true, outs: "", dests: "", outcome: "routed"},
		{name: "an empty header writes nothing", replay: true, outs: "", dests: "", outcome: "routed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(rules)
			outs, err := s.handle(transformed("ORU", "R01", "LAB", []byte("not parsed")), tt.only, tt.replay)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var d *canonical.Decision
			for _, o := range outs {
				switch r := o.Record.(type) {
				case *canonical.Out:
					got = append(got, r.Destination)
				case *canonical.Decision:
					d = r
				default:
					t.Errorf("unexpected output %+v", o)
				}
			}
			if g := strings.Join(got, " "); g != tt.outs {
				t.Errorf("outs %q, want %q", g, tt.outs)
			}
			if d == nil {
				t.Fatal("no decision")
			}
			if g := destinationsOf(d); g != tt.dests {
				t.Errorf("decision destinations %q, want %q", g, tt.dests)
			}
			if d.Outcome != tt.outcome || routesOf(d) != "labs+lis&registry&archive" {
				t.Errorf("decision %s %s", d.Outcome, routesOf(d))
			}
		})
	}
}

// TestReplayHeaderThroughTyped: the header reaches Handle through the
// driver's Typed (the input record's headers in its context).
func TestReplayHeaderThroughTyped(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	for topic, sc := range map[string]string{env.Kafka.Topic(kafka.TopicTransformed): schemas.Transformed,
		env.Kafka.Topic(kafka.TopicDecisions): schemas.Decisions, env.Kafka.OutTopic("lis"): schemas.Out, env.Kafka.OutTopic("registry"): schemas.Out} {
		if _, err := env.Serde.Register(ctx, topic, sc); err != nil {
			t.Fatal(err)
		}
	}
	rules := compile(t, "v1", nil, nil, Rule{Name: "labs", MessageTypes: []string{"ORU"}, Destinations: []string{"lis", "registry"}})
	s := New(Config{Rules: rules}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	v, err := env.Serde.Encode(transformed("ORU", "R01", "LAB", []byte("MSH|")))
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Key: []byte("k"), Value: v,
		Headers: []kgo.RecordHeader{{Key: kafka.HeaderReplayJob, Value: []byte("J1")}, {Key: kafka.HeaderReplayDestinations, Value: []byte("registry")}}})
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, r := range recs {
		topics = append(topics, r.Topic)
	}
	if want := env.Kafka.OutTopic("registry") + " " + env.Kafka.Topic(kafka.TopicDecisions); strings.Join(topics, " ") != want {
		t.Errorf("topics %v, want %s", topics, want)
	}
}
