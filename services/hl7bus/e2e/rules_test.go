package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// rulesConfig is an exchange with inbound and outbound rules, two code
// tables, a filter, a split and CEL routes. The addresses are filled in.
const rulesConfig = `registry: {url: "http://unused.invalid"}
tables:
  - {name: lab_codes, file: lab_codes.csv, version: "2026-12"}
  - {name: notifiable, file: notifiable.csv, version: "7"}
interfaces:
  - name: lab-in
    protocol: mllp
    address: 127.0.0.1:0
    rules:
      - {name: drop-test, when: "msg.processing_id == 'T'", filter: {reason: "test traffic (MSH-11 = T)"}}
      - {name: loinc, map: {path: "OBX[*]-3.1", table: lab_codes, system_path: "OBX[*]-3.3", display_path: "OBX[*]-3.2", unmapped: reject}}
      - {name: utc, normalize: {path: "OBR[*]-7", to: utc}}
      - {name: per-order, split: {segment: OBR}}
destinations:
  - name: lis
    protocol: mllp
    address: %q
    retry: {initial_backoff: 50ms}
    rules:
      - {name: lis-receiver, set: {path: MSH-5, value: LIS}}
  - name: surveillance
    protocol: mllp
    address: %q
    retry: {initial_backoff: 50ms}
    rules:
      - {name: surv-receiver, set: {path: MSH-5, value: SURV}}
      - {name: no-name, clear: {path: PID-5}}
      - {name: only-final, when: "msg.field('OBX-11') != 'F'", filter: {reason: "only final results"}}
routes:
  - name: notifiable
    when: "msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)"
    destinations: [surveillance]
  - {name: lab-results, message_types: ["ORU^R01"], destinations: [lis]}
`

// TestRulesEndToEnd (issue 10): the configuration above, loaded and
// compiled by the config package as the binary does, runs on the broker
// (kfake here, Apache Kafka under interop). One ORU^R01 with two orders is
// split; each order is mapped to LOINC and each destination gets its own
// dialect; only the notifiable order reaches surveillance, without the
// patient's name, and only when final (its own filter drops a preliminary
// one, for surveillance alone). Test traffic is filtered with a decision, an unmapped
// code dead-letters in transform with the code in the reason, and a message
// no route wants is dead-lettered by route with a decision saying why.
func TestRulesEndToEnd(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	lis, surv := startReceiver(t), startReceiver(t)
	dir := t.TempDir()
	files := map[string]string{
		"hl7bus.yaml":    fmt.Sprintf(rulesConfig, lis.addr, surv.addr),
		"lab_codes.csv":  "local_code,code,system,display\nGLU,2345-7,LN,Glucose\nCOV,94500-6,LN,SARS-CoV-2 RNA\nK,2823-3,LN,Potassium\n",
		"notifiable.csv": "local_code,display\n94500-6,SARS-CoV-2 RNA\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := config.Load(filepath.Join(dir, "hl7bus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := f.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if compiled.Version == "" || compiled.Transform.Version != compiled.Version || compiled.Route.Version != compiled.Version {
		t.Fatalf("config versions: %q, transform %q, route %q", compiled.Version, compiled.Transform.Version, compiled.Route.Version)
	}
	// The stages' logs, to check the unmapped code (message content) is
	// in the dead letter's reason and not in a log line.
	logs := &lockedBuffer{}
	in := startPipeline(t, ctx, env, pipeline{Interfaces: f.Interfaces, Destinations: f.Destinations, Compiled: compiled,
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	addr := in.Addr("lab-in")

	status := "F"
	oru := func(ctl, proc string, orders ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "MSH|^~\\&|LAB|GENHOSP|HIS|MOH|20261201093000+0100||ORU^R01^ORU_R01|%s|%s|2.5.1\r"+
			"PID|1||P77^^^GENHOSP^MR||DOE^JANE||19800101|F\r", ctl, proc)
		for i, code := range orders {
			fmt.Fprintf(&b, "ORC|RE|O%d\rOBR|%d|O%d||PANEL|||20261201080000+0100\rOBX|1|ST|%s^Local||value||||||%s\r", i+1, i+1, i+1, code, status)
		}
		return b.String()
	}
	for _, m := range []string{
		oru("SPLIT1", "P", "GLU", "COV"),
		oru("TEST1", "T", "GLU"),
		oru("UNMAPPED1", "P", "XYZ"),
		"MSH|^~\\&|HIS|GENHOSP|LIS|MOH|20261201093000||ADT^A01^ADT_A01|ADT1|P|2.5\rEVN|A01\rPID|1||P78^^^GENHOSP^MR||DOE^JOHN\r",
	} {
		sendExpect(t, ctx, addr, m)
	}
	// A preliminary notifiable result: lis gets it, surveillance's own
	// filter drops its copy.
	status = "P"
	sendExpect(t, ctx, addr, oru("PRELIM1", "P", "COV"))

	// lis: both orders, mapped, in order, with its own MSH-5.
	lisGot := waitMessages(t, lis, 3, 60*time.Second)
	if lisGot[2].ControlID() != "PRELIM1" {
		t.Errorf("lis message 3: %q", lisGot[2].Bytes())
	}
	for i, want := range []struct{ ctl, code, system string }{{"SPLIT1-1", "2345-7", "LN"}, {"SPLIT1-2", "94500-6", "LN"}} {
		m := lisGot[i]
		if m.ControlID() != want.ctl || field(t, m, "MSH-5") != "LIS" || field(t, m, "OBX-3.1") != want.code ||
			field(t, m, "OBX-3.3") != want.system || m.Count("OBR") != 1 || field(t, m, "OBR-7") != "20261201070000+0000" {
			t.Errorf("lis message %d: %q", i, m.Bytes())
		}
		if field(t, m, "PID-5.1") != "DOE" {
			t.Errorf("lis message %d lost the patient name, which only surveillance's rules clear", i)
		}
	}
	// surveillance: only the notifiable order, its dialect, no name.
	survGot := waitMessages(t, surv, 1, 60*time.Second)
	if m := survGot[0]; m.ControlID() != "SPLIT1-2" || field(t, m, "MSH-5") != "SURV" || field(t, m, "PID-5") != "" ||
		field(t, m, "OBX-3.1") != "94500-6" {
		t.Errorf("surveillance got %q", m.Bytes())
	}

	// Decisions: the filter, both children routed, the ADT denied.
	decisions := map[string]*canonical.Decision{}
	for _, r := range env.ReadDecoded(t, env.Kafka.Topic("decisions"), 5) {
		d := r.(*canonical.Decision)
		decisions[d.ControlID] = d
		if strings.Contains(fmt.Sprintf("%+v", d), "XYZ") {
			t.Errorf("decision for %s quotes the unmapped code: %+v", d.ControlID, d)
		}
		if d.ConfigVersion != compiled.Version {
			t.Errorf("decision for %s has config_version %q, want %q", d.ControlID, d.ConfigVersion, compiled.Version)
		}
	}
	if d := decisions["TEST1"]; d == nil || d.Outcome != canonical.OutcomeFiltered || d.Filter == nil ||
		d.Filter.Rule != "drop-test" || d.Stage != canonical.StageTransform {
		t.Errorf("test traffic decision: %+v", d)
	}
	if d := decisions["SPLIT1-2"]; d == nil || d.Outcome != canonical.OutcomeRouted || d.ParentMessageID == "" ||
		fmt.Sprint(matchedRoutes(d)) != "[lab-results notifiable]" {
		t.Errorf("notifiable child decision: %+v", d)
	}
	if d := decisions["SPLIT1-1"]; d == nil || fmt.Sprint(matchedRoutes(d)) != "[lab-results]" {
		t.Errorf("first child decision: %+v", d)
	} else {
		for _, r := range d.Routes {
			if r.Route == "notifiable" && r.Reason == "" {
				t.Errorf("the unmatched route has no reason: %+v", r)
			}
		}
	}
	if d := decisions["PRELIM1"]; d == nil || len(d.Destinations) != 2 {
		t.Errorf("preliminary result decision: %+v", d)
	} else {
		for _, dd := range d.Destinations {
			want := canonical.OutcomeRouted
			if dd.Destination == "surveillance" {
				want = canonical.OutcomeFiltered
			}
			if dd.Outcome != want || (want == canonical.OutcomeFiltered && dd.Rule != "only-final") {
				t.Errorf("preliminary result, destination %s: %+v", dd.Destination, dd)
			}
		}
	}
	if d := decisions["ADT1"]; d == nil || d.Outcome != canonical.OutcomeDeadLettered || len(matchedRoutes(d)) != 0 {
		t.Errorf("unrouted ADT decision: %+v", d)
	}

	// Dead letters: the unmapped code in transform, the ADT in route.
	tdl := env.ReadDecoded(t, env.Kafka.DLQTopic("transform"), 1)[0].(*canonical.DeadLetter)
	if tdl.ControlID != "UNMAPPED1" || !strings.Contains(tdl.Reason, "rule loinc") || !strings.Contains(tdl.Reason, "XYZ") {
		t.Errorf("transform dead letter: %+v", tdl)
	}
	// The code is in the dead letter only: transform logged the
	// dead-lettering, by rule, without it.
	if l := logs.String(); !strings.Contains(l, "rule loinc") || strings.Contains(l, "XYZ") {
		t.Errorf("logs must name the rule, not the code:\n%s", l)
	}
	rdl := env.ReadDecoded(t, env.Kafka.DLQTopic("route"), 1)[0].(*canonical.DeadLetter)
	if rdl.ControlID != "ADT1" || !strings.Contains(rdl.Reason, "no route matches ADT^A01") || rdl.Destination != "" {
		t.Errorf("route dead letter: %+v", rdl)
	}
	// Nothing else arrived: the filtered and dead-lettered messages went
	// nowhere.
	time.Sleep(500 * time.Millisecond)
	if n, m := len(lis.messages()), len(surv.messages()); n != 3 || m != 1 {
		t.Errorf("lis got %d, surveillance %d; want 3 and 1", n, m)
	}
}

// waitMessages waits for n messages at recv and returns them parsed, in
// arrival order.
func waitMessages(t *testing.T, recv *receiver, n int, within time.Duration) []*hl7v2.Message {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(recv.messages()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages arrived within %v", len(recv.messages()), n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []*hl7v2.Message
	for _, b := range recv.messages() {
		m, err := hl7v2.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func field(t *testing.T, m *hl7v2.Message, path string) string {
	t.Helper()
	v, err := m.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// matchedRoutes returns the names of the routes a decision says matched,
// sorted.
func matchedRoutes(d *canonical.Decision) []string {
	var out []string
	for _, r := range d.Routes {
		if r.Matched {
			out = append(out, r.Route)
		}
	}
	sort.Strings(out)
	return out
}
