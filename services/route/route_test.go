package route

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// handle runs s's handler on the transformed record value v as the
// driver does (pipeline.Typed: decode, handle, encode) and decodes what it
// wrote, checking each out record went to its destination's topic.
func handle(ctx context.Context, s *Service, v []byte) ([]*canonical.Out, pipeline.Ident, error) {
	recs, id, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Value: v})
	if err != nil {
		return nil, id, err
	}
	var outs []*canonical.Out
	for _, r := range recs {
		rec, err := s.serde.Decode(ctx, r.Value)
		if err != nil {
			return nil, id, err
		}
		o := rec.(*canonical.Out)
		if r.Topic != s.kc.OutTopic(o.Destination) {
			return nil, id, fmt.Errorf("out record for %s written to %s", o.Destination, r.Topic)
		}
		outs = append(outs, o)
	}
	return outs, id, nil
}

func TestHandle(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	if _, err := env.Serde.Register(ctx, "hl7bus.transformed", schemas.Transformed); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Rules: []Rule{
		{Name: "labs", MessageTypes: []string{"ORU^R01", "OML"}, Destinations: []string{"lis", "registry"}},
		{Name: "adt-genhosp", MessageTypes: []string{"ADT"}, SendingFacilities: []string{"GENHOSP"}, Destinations: []string{"ehr"}},
		{Name: "also-lis", MessageTypes: []string{"ORU"}, Destinations: []string{"lis"}},
	}}
	s := New(cfg, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	for _, d := range cfg.Destinations() {
		if _, err := env.Serde.Register(ctx, env.Kafka.OutTopic(d), schemas.Out); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		code, event, facility string
		want                  []string // destination/route
		unroutable            bool
	}{
		{"ORU", "R01", "NATLAB", []string{"lis/labs", "registry/labs"}, false},
		{"OML", "O21", "X", []string{"lis/labs", "registry/labs"}, false},
		{"ADT", "A01", "GENHOSP^1.2.3^ISO", []string{"ehr/adt-genhosp"}, false},
		{"ADT", "A01", "OTHER", nil, true},
		{"VXU", "V04", "GENHOSP", nil, true},
	}
	for _, tt := range tests {
		v, err := env.Serde.Encode(&canonical.Transformed{MessageID: "M", Interface: "i", OrderingKey: "k",
			Header: canonical.Header{MessageCode: tt.code, TriggerEvent: tt.event, SendingFacility: tt.facility, ControlID: "C1"}, Message: []byte("MSH|")})
		if err != nil {
			t.Fatal(err)
		}
		outs, id, err := handle(ctx, s, v)
		if tt.unroutable {
			if !pipeline.IsPermanent(err) || id.MessageID != "M" || id.ControlID != "C1" || !strings.Contains(err.Error(), "no route matches "+tt.code+"^"+tt.event) {
				t.Errorf("%s^%s from %s: want a permanent 'no route' error, got %v", tt.code, tt.event, tt.facility, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range outs {
			got = append(got, o.Destination+"/"+o.Route)
			if o.ControlID != "C1" || string(o.Payload) != "MSH|" || o.ContentType != canonical.ContentTypeV2 {
				t.Errorf("out record %+v", o)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s^%s from %s: %v, want %v", tt.code, tt.event, tt.facility, got, tt.want)
		}
	}
	if _, _, err := handle(ctx, s, []byte("not avro")); !pipeline.IsPermanent(err) {
		t.Errorf("garbage input: %v", err)
	}
	if got := cfg.Destinations(); strings.Join(got, ",") != "ehr,lis,registry" {
		t.Errorf("Destinations() = %v", got)
	}
}

func TestValidate(t *testing.T) {
	known := map[string]bool{"lis": true}
	err := Config{Rules: []Rule{{Name: "a", Destinations: []string{"lis"}}, {Name: "a", Destinations: []string{"nope"}},
		{MessageTypes: []string{"ORU_R01"}}}}.Validate(known)
	for _, want := range []string{"routes[1].name", "routes[1].destinations[0]", "routes[2].name", "routes[2].destinations", "routes[2].message_types[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if err := (Config{Rules: []Rule{{Name: "ok", Destinations: []string{"lis"}}}}).Validate(known); err != nil {
		t.Error(err)
	}
}
