package route

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// celEnv is a CEL environment with the table notifiable (the given
// codes).
func celEnv(t testing.TB, notifiable ...string) *mapping.Env {
	t.Helper()
	rows := map[string]mapping.Entry{}
	for _, c := range notifiable {
		rows[c] = mapping.Entry{Code: c}
	}
	env, err := mapping.NewEnv(mapping.Tables{
		"notifiable": mapping.NewTable("notifiable", "1", rows),
		"lab_codes":  mapping.NewTable("lab_codes", "1", map[string]mapping.Entry{"6690-2": {Code: "WBC", System: "LOCAL"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// contentRoutes route by content: a notifiable result to surveillance,
// NATLAB's labs to the LIS, test traffic to a sandbox, the rest archived.
var contentRoutes = []Rule{
	{Name: "notifiable", When: "msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)", Destinations: []string{"surveillance"}},
	{Name: "natlab", MessageTypes: []string{"ORU"}, When: "msg.sending_facility == 'NATLAB' && interface == 'lab-in'", Destinations: []string{"lis"}},
	{Name: "test", When: "msg.processing_id == 'T'", Destinations: []string{"sandbox"}},
	{Name: "rest", Default: true, Destinations: []string{"archive"}},
}

// TestHandleWhen: a route's when is evaluated over the transformed
// message (parsed: Message, not the header), after its lists; false is a
// reason, an error dead-letters the message naming the route.
func TestHandleWhen(t *testing.T) {
	msg := oru(t)
	tests := []struct {
		name       string
		notifiable []string
		iface      string
		code       string // the header's; the message is an ORU^R01 from NATLAB
		routes     []Rule
		decided    string
		outs       string
		dead       string // the whole message's dead-letter reason
	}{
		{name: "content", notifiable: []string{"789-8"}, iface: "lab-in", code: "ORU", routes: contentRoutes,
			decided: "notifiable+surveillance natlab+lis test-(when is false) rest-(not needed: another route matched)",
			outs:    "surveillance/notifiable lis/natlab"},
		{name: "not notifiable, other interface", notifiable: []string{"94500-6"}, iface: "other", code: "ORU", routes: contentRoutes,
			decided: "notifiable-(when is false) natlab-(when is false) test-(when is false) rest+archive", outs: "archive/rest"},
		{name: "lists before when", iface: "lab-in", code: "ADT", routes: contentRoutes,
			decided: "notifiable-(when is false) natlab-(message type ADT^R01 is not in [ORU]) test-(when is false) rest+archive", outs: "archive/rest"},
		// A when that fails is like default-deny: the decision (the other
		// routes evaluated, the default undecided), the whole message
		// dead-lettered naming the route, and nothing delivered, not even
		// to the route that matched.
		{name: "when fails", iface: "lab-in", code: "ORU",
			routes: []Rule{{Name: "ok", When: "true", Destinations: []string{"lis"}},
				{Name: "broken", When: "tables.lab_codes[msg.field('OBX[2]-3.1')].code == 'X'", Destinations: []string{"lis"}},
				{Name: "after", When: "msg.processing_id == 'T'", Destinations: []string{"sandbox"}},
				{Name: "rest", Default: true, Destinations: []string{"archive"}}},
			decided: "ok+lis broken-(when failed: evaluation: column 42: no such key in a map or table) after-(when is false) rest-(not decided: a route's when failed)",
			dead:    "route broken: when: evaluation: column 42: no such key in a map or table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(compile(t, "v2", celEnv(t, tt.notifiable...), nil, tt.routes...))
			tr := transformed(tt.code, "R01", "NATLAB^2.16.840.1.113883.3.999^ISO", msg)
			tr.Interface = tt.iface
			r, err := run(t, s, tr)
			if err != nil {
				t.Fatal(err)
			}
			var dead []string
			for _, d := range r.dead {
				dead = append(dead, d.Destination+"/"+d.Reason)
			}
			wantOutcome := canonical.OutcomeRouted
			if tt.dead != "" {
				wantOutcome = canonical.OutcomeDeadLettered
				if len(dead) != 1 || dead[0] != "/"+tt.dead || len(r.decision.Destinations) != 0 {
					t.Errorf("dead letters %q, destinations %+v, want the whole message's %q and none", dead, r.decision.Destinations, tt.dead)
				}
			} else if len(dead) != 0 {
				t.Errorf("dead letters %q", dead)
			}
			if r.decision.Outcome != wantOutcome {
				t.Errorf("outcome %q, want %q", r.decision.Outcome, wantOutcome)
			}
			if g := routesOf(r.decision); g != tt.decided {
				t.Errorf("routes\n got %s\nwant %s", g, tt.decided)
			}
			var got []string
			for _, o := range r.outs {
				got = append(got, o.Destination+"/"+o.Route)
				if !bytes.Equal(o.Payload, msg) {
					t.Errorf("%s: payload changed without destination rules", o.Destination)
				}
			}
			if g := strings.Join(got, " "); g != tt.outs {
				t.Errorf("outs %q, want %q", g, tt.outs)
			}
		})
	}
}

// TestHandleDestinationRules: each destination's rules run on its own
// copy; one filtered gets nothing, one whose rules fail is dead-lettered
// alone (naming it), the others get their dialect, and the decision lists
// what each got.
func TestHandleDestinationRules(t *testing.T) {
	env := celEnv(t)
	lis, hub := "LIS", "HUB"
	sets := map[string][]mapping.Rule{
		"lis": {{Name: "receiver", Set: &mapping.SetOp{Path: "MSH-5", Value: &lis}}},
		"hub": {{Name: "receiver", Set: &mapping.SetOp{Path: "MSH-5", Value: &hub}},
			{Name: "stamp", Set: &mapping.SetOp{Path: "MSH-6", Expr: "destination + '-' + interface"}}},
		"registry": {{Name: "no-labs", When: "destination == 'registry' && msg.type == 'ORU'", Filter: &mapping.FilterOp{Reason: "labs go by the hub"}}},
		"strict":   {{Name: "codes", Map: &mapping.MapOp{Path: "OBX[*]-3.1", Table: "lab_codes", Unmapped: mapping.UnmappedReject}}},
		"lenient":  {{Name: "codes", Map: &mapping.MapOp{Path: "OBX[*]-3.1", Table: "lab_codes", Unmapped: mapping.UnmappedFlag}}},
	}
	dests := map[string]*mapping.RuleSet{}
	i := 0
	for d, rules := range sets {
		rs, err := mapping.Compile(fmt.Sprintf("destinations[%d].rules", i), rules, env, mapping.Outbound)
		if err != nil {
			t.Fatal(err)
		}
		dests[d] = rs
		i++
	}
	rules := compile(t, "v3", env, dests, Rule{Name: "all", Destinations: []string{"lis", "registry", "strict", "ehr", "hub", "lenient"}})
	if !rules.parse {
		t.Fatal("destination rules do not make Handle parse")
	}
	tel := telemetry.New(nil)
	s := New(Config{Rules: rules, Telemetry: tel}, kafka.Config{}.WithDefaults(), nil, slog.New(slog.DiscardHandler))
	msg := oru(t)
	tr := transformed("ORU", "R01", "NATLAB", msg)
	r, err := run(t, s, tr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tr.Message, oru(t)) {
		t.Fatal("the transformed message changed")
	}
	got := map[string]string{}
	for _, o := range r.outs {
		m, err := hl7v2.NewParser().Parse(o.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got[o.Destination] = m.Header(5) + "|" + m.Header(6) + "@" + o.ConfigVersion
	}
	if want := map[string]string{"lis": "LIS|GENHOSP@v3", "ehr": "HIS|GENHOSP@v3", "hub": "HUB|hub-lab-in@v3", "lenient": "HIS|GENHOSP@v3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("out records %v, want %v", got, want)
	}
	if len(r.dead) != 1 || r.dead[0].Destination != "strict" || !strings.HasPrefix(r.dead[0].Reason, "rule codes: ") || strings.Contains(r.dead[0].Reason, "OKAFOR") {
		t.Errorf("dead letters %+v, want strict's copy alone, the rule named", r.dead)
	}
	// The code strict's table lacks (OBX[2]-3.1 "789-8": 6690-2 is in
	// it) is message content: it is in the dead-letter record's reason
	// (Detail) and nowhere else, not in the scoped reason that is logged
	// nor in the decision.
	const wantStrict = "rule codes: the code at OBX[2]-3.1 is not in table lab_codes (version 1)"
	if sc := r.dead[0]; sc.Reason != wantStrict || sc.Detail != `"789-8"` || sc.DeadLetterReason() != wantStrict+`: "789-8"` {
		t.Errorf("strict's dead letter: reason %q, detail %q, record reason %q", sc.Reason, sc.Detail, sc.DeadLetterReason())
	}
	d := r.decision
	for _, dd := range d.Destinations {
		if strings.Contains(dd.Reason, "789-8") {
			t.Errorf("decision for %s quotes the code: %q", dd.Destination, dd.Reason)
		}
	}
	strictReason := r.dead[0].Reason
	if want := "lis=routed registry=filtered/no-labs: labs go by the hub strict=dead_lettered/codes: " + strictReason + " ehr=routed hub=routed lenient=routed"; destinationsOf(d) != want {
		t.Errorf("destinations\n got %s\nwant %s", destinationsOf(d), want)
	}
	if d.Outcome != canonical.OutcomeRouted || d.ConfigVersion != "v3" {
		t.Errorf("decision %+v", d)
	}
	// The destination filter counted under its destination, on the metric
	// transform counts inbound filters on (the help and labels are
	// transform's, as its test checks: one process's two stages share
	// the collector, and RegisterOrFind panics on a difference); lenient's
	// flags (the 8 codes lab_codes lacks) counted, strict's (it failed)
	// not.
	metric := `# HELP hl7bus_messages_filtered_total Messages a filter rule dropped, by interface, rule and destination ("" for an inbound filter; configuration names).
# TYPE hl7bus_messages_filtered_total counter
hl7bus_messages_filtered_total{destination="registry",interface="lab-in",rule="no-labs"} 1
# HELP hl7bus_rule_flags_total Flags rules raised (an unmapped code under unmapped: flag, ...), by stage and rule (configuration names).
# TYPE hl7bus_rule_flags_total counter
hl7bus_rule_flags_total{rule="codes",stage="route"} 8
`
	if err := testutil.GatherAndCompare(tel.Registry, strings.NewReader(metric), "hl7bus_messages_filtered_total", "hl7bus_rule_flags_total"); err != nil {
		t.Error(err)
	}
}

// TestOutcome: a message is routed when one destination got it,
// dead-lettered when none did and one failed, filtered when all filtered.
func TestOutcome(t *testing.T) {
	dd := func(outcomes ...string) []canonical.DestinationDecision {
		var out []canonical.DestinationDecision
		for _, o := range outcomes {
			out = append(out, canonical.DestinationDecision{Outcome: o})
		}
		return out
	}
	for _, tt := range []struct {
		in   []canonical.DestinationDecision
		want string
	}{
		{dd("filtered", "routed"), "routed"},
		{dd("dead_lettered", "filtered"), "dead_lettered"},
		{dd("filtered", "filtered"), "filtered"},
		{dd("dead_lettered", "routed"), "routed"},
	} {
		if got := outcome(tt.in); got != tt.want {
			t.Errorf("%v: %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestCompileWhen: a bad when is a configuration error at its key, with
// the others'; a good one compiles and makes Handle parse.
func TestCompileWhen(t *testing.T) {
	known := map[string]bool{"lis": true}
	_, err := Compile([]Rule{{Name: "a", When: "msg.type ==", Destinations: []string{"lis"}},
		{Name: "b", When: "tables.nope['x'].code == 'y'", Destinations: []string{"lis"}}, {Name: "a", Destinations: []string{"lis"}}}, celEnv(t), nil, known)
	for _, want := range []string{"routes[0].when: column ", "routes[1].when: ", `routes[2].name: "a" is used twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	rs, err := Compile([]Rule{{Name: "a", When: "msg.type == 'ORU'", Destinations: []string{"lis"}}}, nil, nil, known)
	if err != nil || !rs.parse {
		t.Errorf("%v (parse %v)", err, rs != nil && rs.parse)
	}
}

// BenchmarkRouteHandle50: 50 CEL routes (type and facility lists, header
// variables, fields by path, a table) over the 2 KB ORU^R01, the last
// ones matching. Handle is the whole handler (parse, decision, out
// records); Evaluate is the routes alone over a parsed message.
func BenchmarkRouteHandle50(b *testing.B) {
	env := celEnv(b, "94500-6", "718-7")
	var routes []Rule
	for i := range 48 {
		var when string
		switch i % 4 {
		case 0:
			when = fmt.Sprintf("msg.sending_facility == 'FAC%d'", i)
		case 1:
			when = fmt.Sprintf("msg.type == 'ADT' && msg.trigger == 'A%02d'", i)
		case 2:
			when = fmt.Sprintf("msg.field('OBR-4.1') == 'PANEL%d'", i)
		case 3:
			when = fmt.Sprintf("msg.field('PV1-3.1') == 'WARD%d' || msg.receiving_facility == 'R%d'", i, i)
		}
		routes = append(routes, Rule{Name: fmt.Sprintf("r%d", i), When: when, Destinations: []string{fmt.Sprintf("d%d", i%5)}})
	}
	routes = append(routes,
		Rule{Name: "notifiable", MessageTypes: []string{"ORU^R01"}, When: "msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)", Destinations: []string{"surveillance"}},
		Rule{Name: "natlab", When: "msg.sending_facility == 'NATLAB' && msg.processing_id == 'P'", Destinations: []string{"lis"}})
	rules := compile(b, "v", env, nil, routes...)
	s := newService(rules)
	msg := oru(b)
	tr := transformed("ORU", "R01", "NATLAB^2.16.840.1.113883.3.999^ISO", msg)
	b.Run("Handle", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			outs, err := s.Handle(b.Context(), tr)
			if err != nil || len(outs) != 3 {
				b.Fatal(len(outs), err)
			}
		}
	})
	b.Run("Evaluate", func(b *testing.B) {
		m, err := s.parser.Parse(msg)
		if err != nil {
			b.Fatal(err)
		}
		vars := mapping.Vars{Msg: m, Interface: "lab-in"}
		decided := make([]canonical.RouteDecision, len(routes))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			dests, _, err := rules.evaluate(&tr.Header, &vars, decided)
			if err != nil || len(dests) != 2 {
				b.Fatal(dests, err)
			}
		}
	})
}

// cpuPerOp reports the process's CPU time (user and system, GC included)
// per operation as cpu-ns/op when the returned function runs: on a
// machine shared with other work, ns/op (wall time) counts the time the
// benchmark waited for a core.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
