package route

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

// compile compiles routes over env (nil: no tables) and dests, every
// destination they name known, at version v.
func compile(t testing.TB, v string, env *mapping.Env, dests map[string]*mapping.RuleSet, routes ...Rule) *Rules {
	t.Helper()
	known := map[string]bool{}
	for _, r := range routes {
		for _, d := range r.Destinations {
			known[d] = true
		}
	}
	rs, err := Compile(routes, env, dests, known)
	if err != nil {
		t.Fatal(err)
	}
	rs.Version = v
	return rs
}

// result is what Handle wrote for one record, by kind.
type result struct {
	outs     []*canonical.Out
	dead     []*pipeline.Scoped
	decision *canonical.Decision
}

// run calls s.Handle on tr and sorts its outputs, checking each went to
// its topic (out records to their destination's, decisions keyed by
// message ID) and that there is exactly one decision.
func run(t *testing.T, s *Service, tr *canonical.Transformed) (result, error) {
	t.Helper()
	outs, err := s.Handle(context.Background(), tr)
	if err != nil {
		return result{}, err
	}
	var r result
	for _, o := range outs {
		switch rec := o.Record.(type) {
		case *canonical.Out:
			if o.Topic != s.kc.OutTopic(rec.Destination) || o.Key != nil {
				t.Errorf("out record for %s written to %s, key %q", rec.Destination, o.Topic, o.Key)
			}
			r.outs = append(r.outs, rec)
		case *canonical.Decision:
			if o.Topic != s.kc.Topic(kafka.TopicDecisions) || string(o.Key) != tr.MessageID || r.decision != nil {
				t.Errorf("decision to %s under %q (one before: %v)", o.Topic, o.Key, r.decision != nil)
			}
			r.decision = rec
		case nil:
			if o.DeadLetter == nil {
				t.Errorf("an output with neither record nor dead letter")
				continue
			}
			r.dead = append(r.dead, o.DeadLetter)
		}
	}
	if r.decision == nil {
		t.Errorf("no decision")
		r.decision = &canonical.Decision{}
	}
	return r, nil
}

// routesOf spells a decision's routes: name+ (matched) or name-(reason).
func routesOf(d *canonical.Decision) string {
	var b []string
	for _, r := range d.Routes {
		if r.Matched {
			b = append(b, r.Route+"+"+strings.Join(r.Destinations, "&"))
		} else {
			b = append(b, r.Route+"-("+r.Reason+")")
		}
	}
	return strings.Join(b, " ")
}

// destinationsOf spells a decision's destinations: dest=outcome[/rule: reason].
func destinationsOf(d *canonical.Decision) string {
	var b []string
	for _, dd := range d.Destinations {
		s := dd.Destination + "=" + dd.Outcome
		if dd.Rule != "" || dd.Reason != "" {
			s += "/" + dd.Rule + ": " + dd.Reason
		}
		b = append(b, s)
	}
	return strings.Join(b, " ")
}

func newService(rules *Rules) *Service {
	s := New(Config{Rules: rules}, kafka.Config{}.WithDefaults(), nil, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC) }
	return s
}

func transformed(code, event, facility string, msg []byte) *canonical.Transformed {
	return &canonical.Transformed{MessageID: "M1", ParentMessageID: "P1", Interface: "lab-in", OrderingKey: "k",
		ReceivedAt: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC),
		Header:     canonical.Header{MessageCode: code, TriggerEvent: event, SendingFacility: facility, ControlID: "C1"}, Message: msg}
}

// TestHandleLists: routes by message type and facility, without when:
// fan-out to the union of the matched routes' destinations (each once, in
// the order first named, with the route that named it first), the
// default only when nothing else matched, default-deny without one, and
// the decision saying which routes matched and why the others did not.
func TestHandleLists(t *testing.T) {
	routes := []Rule{
		{Name: "labs", MessageTypes: []string{"ORU^R01", "OML"}, Destinations: []string{"lis", "registry"}},
		{Name: "adt-genhosp", MessageTypes: []string{"ADT"}, SendingFacilities: []string{"GENHOSP"}, Destinations: []string{"ehr"}},
		{Name: "also-lis", MessageTypes: []string{"ORU"}, Destinations: []string{"archive", "lis"}},
	}
	withDefault := append(append([]Rule{}, routes...), Rule{Name: "rest", Default: true, Destinations: []string{"archive"}})
	tests := []struct {
		name                  string
		routes                []Rule
		code, event, facility string
		outs                  string // destination/route, in order
		decided               string // routesOf
		dests                 string // destinationsOf
		outcome               string
		dead                  string // the whole-message dead letter's reason
	}{
		{name: "fan-out", routes: routes, code: "ORU", event: "R01", facility: "NATLAB",
			outs:    "lis/labs registry/labs archive/also-lis",
			decided: "labs+lis&registry adt-genhosp-(message type ORU^R01 is not in [ADT]) also-lis+archive&lis",
			dests:   "lis=routed registry=routed archive=routed", outcome: "routed"},
		{name: "code only", routes: routes, code: "OML", event: "O21", facility: "X", outs: "lis/labs registry/labs",
			decided: "labs+lis&registry adt-genhosp-(message type OML^O21 is not in [ADT]) also-lis-(message type OML^O21 is not in [ORU])",
			dests:   "lis=routed registry=routed", outcome: "routed"},
		{name: "facility with its OID", routes: routes, code: "ADT", event: "A01", facility: "GENHOSP^1.2.3^ISO", outs: "ehr/adt-genhosp",
			decided: "labs-(message type ADT^A01 is not in [ORU^R01, OML]) adt-genhosp+ehr also-lis-(message type ADT^A01 is not in [ORU])",
			dests:   "ehr=routed", outcome: "routed"},
		{name: "deny", routes: routes, code: "ADT", event: "A01", facility: "OTHER",
			decided: "labs-(message type ADT^A01 is not in [ORU^R01, OML]) adt-genhosp-(sending facility OTHER is not in [GENHOSP]) also-lis-(message type ADT^A01 is not in [ORU])",
			outcome: "dead_lettered",
			dead:    "no route matches ADT^A01 from facility OTHER (3 routes: labs: message type ADT^A01 is not in [ORU^R01, OML]; adt-genhosp: sending facility OTHER is not in [GENHOSP]; also-lis: message type ADT^A01 is not in [ORU])"},
		{name: "no routes", code: "VXU", event: "V04", facility: "F", outcome: "dead_lettered", dead: "no route matches VXU^V04 from facility F (0 routes)"},
		{name: "default taken", routes: withDefault, code: "ADT", event: "A01", facility: "OTHER", outs: "archive/rest",
			decided: "labs-(message type ADT^A01 is not in [ORU^R01, OML]) adt-genhosp-(sending facility OTHER is not in [GENHOSP]) also-lis-(message type ADT^A01 is not in [ORU]) rest+archive",
			dests:   "archive=routed", outcome: "routed"},
		{name: "default not needed", routes: withDefault, code: "ADT", event: "A08", facility: "GENHOSP", outs: "ehr/adt-genhosp",
			decided: "labs-(message type ADT^A08 is not in [ORU^R01, OML]) adt-genhosp+ehr also-lis-(message type ADT^A08 is not in [ORU]) rest-(not needed: another route matched)",
			dests:   "ehr=routed", outcome: "routed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules *Rules
			if tt.routes != nil {
				rules = compile(t, "v1", nil, nil, tt.routes...)
			}
			s := newService(rules)
			// No when, no destination rules: the message is not parsed, so
			// these bytes are never read.
			r, err := run(t, s, transformed(tt.code, tt.event, tt.facility, []byte("not parsed")))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range r.outs {
				got = append(got, o.Destination+"/"+o.Route)
				want := canonical.Out{MessageID: "M1", Interface: "lab-in", ReceivedAt: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC), OrderingKey: "k",
					ControlID: "C1", Destination: o.Destination, Route: o.Route, ContentType: canonical.ContentTypeV2, Payload: []byte("not parsed"),
					ConfigVersion: rules.Version}
				if fmt.Sprint(*o) != fmt.Sprint(want) {
					t.Errorf("out record\n got %+v\nwant %+v", *o, want)
				}
			}
			if g := strings.Join(got, " "); g != tt.outs {
				t.Errorf("outs %q, want %q", g, tt.outs)
			}
			d := r.decision
			if g := routesOf(d); g != tt.decided {
				t.Errorf("routes\n got %s\nwant %s", g, tt.decided)
			}
			if g := destinationsOf(d); g != tt.dests {
				t.Errorf("destinations %q, want %q", g, tt.dests)
			}
			wantVersion := ""
			if rules != nil {
				wantVersion = "v1"
			}
			if d.Outcome != tt.outcome || d.MessageID != "M1" || d.ParentMessageID != "P1" || d.Interface != "lab-in" || d.ControlID != "C1" ||
				d.MessageType != tt.code+"^"+tt.event || d.Stage != "route" || d.ConfigVersion != wantVersion || !d.DecidedAt.Equal(s.now()) || d.Filter != nil {
				t.Errorf("decision %+v", d)
			}
			var dead []string
			for _, dl := range r.dead {
				dead = append(dead, dl.Destination+"|"+dl.Program+"|"+dl.Reason)
			}
			if want := "||" + tt.dead; tt.dead == "" && len(dead) > 0 || tt.dead != "" && strings.Join(dead, ",") != want {
				t.Errorf("dead letters %q, want %q", dead, want)
			}
		})
	}
}

// TestHandleEncodes: what Handle writes encodes with the schemas of its
// topics, as the driver does it (pipeline.Typed), and the message's
// identity is the input's.
func TestHandleEncodes(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	topics := map[string]string{"hl7bus.transformed": schemas.Transformed, "hl7bus.decisions": schemas.Decisions,
		env.Kafka.OutTopic("lis"): schemas.Out, env.Kafka.OutTopic("registry"): schemas.Out}
	for topic, sc := range topics {
		if _, err := env.Serde.Register(ctx, topic, sc); err != nil {
			t.Fatal(err)
		}
	}
	rules := compile(t, "abc123", nil, nil, Rule{Name: "labs", MessageTypes: []string{"ORU"}, Destinations: []string{"lis", "registry"}})
	s := New(Config{Rules: rules}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	v, err := env.Serde.Encode(transformed("ORU", "R01", "LAB", []byte("MSH|")))
	if err != nil {
		t.Fatal(err)
	}
	recs, id, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Key: []byte("k"), Value: v})
	if err != nil || id != (pipeline.Ident{MessageID: "M1", ControlID: "C1"}) || len(recs) != 3 {
		t.Fatalf("%d records, %+v, %v", len(recs), id, err)
	}
	for _, r := range recs {
		rec, err := env.Serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("%s: %v", r.Topic, err)
		}
		switch rec := rec.(type) {
		case *canonical.Out:
			if rec.ConfigVersion != "abc123" || string(r.Key) != "k" {
				t.Errorf("%s: %+v under %q", r.Topic, rec, r.Key)
			}
		case *canonical.Decision:
			if r.Topic != "hl7bus.decisions" || string(r.Key) != "M1" || rec.ConfigVersion != "abc123" || len(rec.Routes) != 1 || len(rec.Destinations) != 2 {
				t.Errorf("%s: %+v under %q", r.Topic, rec, r.Key)
			}
		default:
			t.Errorf("%s: %T", r.Topic, rec)
		}
	}
	// Default-deny through the driver's handler: the decision beside the
	// placeholder of the whole message's dead letter (no destination),
	// which the DeadLetters middleware builds.
	v, err = env.Serde.Encode(transformed("ADT", "A01", "LAB", []byte("MSH|")))
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err = pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Key: []byte("k"), Value: v})
	if err != nil || len(recs) != 2 || recs[0].Topic != "hl7bus.decisions" {
		t.Fatalf("default-deny: %v %v", recs, err)
	}
	if sc, ok := pipeline.ScopedOf(recs[1]); !ok || sc.Destination != "" || !strings.HasPrefix(sc.Reason, "no route matches ADT^A01 from facility LAB (1 routes: labs: ") {
		t.Errorf("default-deny dead letter %+v %v", sc, ok)
	}
	if _, _, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Value: []byte("not avro")}); !pipeline.IsPermanent(err) {
		t.Errorf("garbage input: %v", err)
	}
}

func TestCompile(t *testing.T) {
	known := map[string]bool{"lis": true, "ehr": true}
	tests := []struct {
		name   string
		routes []Rule
		want   []string // substrings of the error; none: compiles
	}{
		{"ok", []Rule{{Name: "a", MessageTypes: []string{"ORU^R01", "ADT"}, Destinations: []string{"lis"}},
			{Name: "rest", Default: true, Destinations: []string{"ehr", "lis"}}}, nil},
		{"names", []Rule{{Name: "a", Destinations: []string{"lis"}}, {Name: "a", Destinations: []string{"lis"}}, {Destinations: []string{"lis"}}},
			[]string{`routes[1].name: "a" is used twice`, "routes[2].name: required"}},
		{"destinations", []Rule{{Name: "a"}, {Name: "b", Destinations: []string{"nope", "lis", "lis"}}},
			[]string{"routes[0].destinations: at least one is required", `routes[1].destinations[0]: "nope" is not a configured destination`,
				`routes[1].destinations[2]: "lis" is listed twice`}},
		{"message types", []Rule{{Name: "a", MessageTypes: []string{"ORU", "ORU_R01", "OR^R01", "ADT^A0"}, Destinations: []string{"lis"}}},
			[]string{`routes[0].message_types[1]: "ORU_R01"`, `routes[0].message_types[2]`, `routes[0].message_types[3]`}},
		{"two defaults", []Rule{{Name: "a", Default: true, Destinations: []string{"lis"}}, {Name: "b", Default: true, Destinations: []string{"ehr"}}},
			[]string{"routes[1].default: routes[0] is the default already"}},
		{"default with conditions", []Rule{{Name: "a", Default: true, MessageTypes: []string{"ADT"}, Destinations: []string{"lis"}}},
			[]string{"routes[0].default: the default route takes no message_types"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := Compile(tt.routes, nil, nil, known)
			verr := Validate(tt.routes, known)
			if len(tt.want) == 0 {
				if err != nil || verr != nil || rs.Len() != len(tt.routes) {
					t.Fatalf("%v / %v", err, verr)
				}
				return
			}
			if rs != nil {
				t.Errorf("rules %v beside the error", rs)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Compile: error does not say %q: %v", w, err)
				}
				if verr == nil || !strings.Contains(verr.Error(), w) {
					t.Errorf("Validate: error does not say %q: %v", w, verr)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.want) {
				t.Errorf("%d errors, want %d: %v", n, len(tt.want), err)
			}
		})
	}
	ok, _ := Compile([]Rule{{Name: "b", Destinations: []string{"lis", "ehr"}}, {Name: "a", Destinations: []string{"lis"}}}, nil, nil, known)
	if got := strings.Join(ok.Routed(), ","); got != "ehr,lis" {
		t.Errorf("Routed() = %s", got)
	}
	if ok.parse {
		t.Errorf("routes without when or destination rules parse the message")
	}
}

// TestSetRules: a swap puts the new routes in force for the next record;
// the record's outputs and decision carry the version that handled it.
func TestSetRules(t *testing.T) {
	v1 := compile(t, "v1", nil, nil, Rule{Name: "old", Destinations: []string{"lis"}})
	v2 := compile(t, "v2", nil, nil, Rule{Name: "new", Destinations: []string{"ehr"}})
	s := newService(v1)
	if s.CurrentRules() != v1 {
		t.Fatal("CurrentRules is not Config.Rules")
	}
	check := func(want, version string) {
		t.Helper()
		r, err := run(t, s, transformed("ORU", "R01", "F", []byte("MSH|")))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range r.outs {
			got = append(got, o.Destination+"/"+o.Route+"@"+o.ConfigVersion)
		}
		if strings.Join(got, " ") != want || r.decision.ConfigVersion != version {
			t.Errorf("%v (decision at %q), want %s", got, r.decision.ConfigVersion, want)
		}
	}
	check("lis/old@v1", "v1")
	s.SetRules(v2)
	if s.CurrentRules() != v2 {
		t.Fatal("CurrentRules after SetRules")
	}
	check("ehr/new@v2", "v2")
	// Swaps while records are handled: each record sees one version, in
	// its out record and its decision alike.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			s.SetRules([]*Rules{v1, v2}[i%2])
		}
	}()
	for range 200 {
		r, err := run(t, s, transformed("ORU", "R01", "F", []byte("MSH|")))
		if err != nil || len(r.outs) != 1 || r.outs[0].ConfigVersion != r.decision.ConfigVersion ||
			r.outs[0].Route != map[string]string{"v1": "old", "v2": "new"}[r.decision.ConfigVersion] {
			t.Fatalf("a record saw two versions: %+v %+v %v", r.outs, r.decision, err)
		}
	}
	<-done
	s.SetRules(nil)
	r, err := run(t, s, transformed("ORU", "R01", "F", []byte("MSH|")))
	if err != nil || len(r.outs) != 0 || len(r.dead) != 1 || r.decision.Outcome != canonical.OutcomeDeadLettered {
		t.Errorf("without rules: %+v %v (want default-deny)", r, err)
	}
}

// oru is the 2 KB ORU^R01 of the benchmarks.
func oru(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../libs/hl7v2/testdata/oru_r01_2k.hl7")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
