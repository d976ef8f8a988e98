package transform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestHandle: transform parses payload with the configured parser, carries
// the header it was given unchanged and projects the patient and MSH-7
// with the libraries' projections.
// handle runs s's handler on the parsed record value v as the driver does
// (pipeline.Typed: decode, handle, encode) and decodes what it wrote.
func handle(ctx context.Context, s *Service, v []byte) (*canonical.Transformed, pipeline.Ident, error) {
	outs, id, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Value: v})
	if err != nil {
		return nil, id, err
	}
	if len(outs) != 1 || outs[0].Topic != s.out {
		return nil, id, fmt.Errorf("%d outputs, want one to %s", len(outs), s.out)
	}
	rec, err := s.serde.Decode(ctx, outs[0].Value)
	if err != nil {
		return nil, id, err
	}
	return rec.(*canonical.Transformed), id, nil
}

func TestHandle(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	for topic, sc := range map[string]string{"hl7bus.parsed": schemas.Parsed, "hl7bus.transformed": schemas.Transformed} {
		if _, err := env.Serde.Register(ctx, topic, sc); err != nil {
			t.Fatal(err)
		}
	}
	p, err := hl7v2.ParserConfig{FallbackCharset: hl7v2.FallbackNone}.NewParser()
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Parser: p}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	msg := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240301101500+0545||ADT^A01^ADT_A01|C1|P|2.5\n" +
		"PID|1||123^^^GENHOSP^MR||D\x8AOE^JANE||198001010030+0100|F\n"
	header := canonical.Header{MessageCode: "ADT", TriggerEvent: "A01", ControlID: "C1", Version: "2.5", Charset: "FROM-INGRESS"}
	v, err := env.Serde.Encode(&canonical.Parsed{MessageID: "M1", Interface: "in", ReceivedAt: time.Now(), OrderingKey: "k",
		Header: header, Payload: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	tr, id, err := handle(ctx, s, v)
	if err != nil || id != (pipeline.Ident{MessageID: "M1", ControlID: "C1"}) {
		t.Fatalf("%v %+v", err, id)
	}
	if tr.Header != header {
		t.Errorf("header %+v, want the one carried %+v", tr.Header, header)
	}
	if tr.MessageTime != "2024-03-01T04:30:00Z" || tr.MessageTimeOffset != "+05:45" {
		t.Errorf("message time %q %q", tr.MessageTime, tr.MessageTimeOffset)
	}
	if tr.Patient == nil || tr.Patient.FamilyName != "D\uFFFDOE" || tr.Patient.BirthDate != "1980-01-01" {
		t.Errorf("patient %+v (decoded by the configured parser, birth date as written)", tr.Patient)
	}
	if want := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240301101500+0545||ADT^A01^ADT_A01|C1|P|2.5\r" +
		"PID|1||123^^^GENHOSP^MR||D\x8AOE^JANE||198001010030+0100|F\r"; string(tr.Message) != want {
		t.Errorf("message %q, want the bytes with CR terminators", tr.Message)
	}
	bad, _ := env.Serde.Encode(&canonical.Parsed{MessageID: "M2", ReceivedAt: time.Now(), Header: canonical.Header{ControlID: "C2"}, Payload: []byte("hello")})
	if _, id, err := handle(ctx, s, bad); !pipeline.IsPermanent(err) || id.MessageID != "M2" || id.ControlID != "C2" {
		t.Errorf("unparseable payload: %v %+v", err, id)
	}
}

// ruleMsg is an ORU^R01 with two orders (ORC/OBR/OBX groups).
const ruleMsg = "MSH|^~\\&|LAB|NATLAB|HIS|GEN|20240301101500+0100||ORU^R01^ORU_R01|C1|%s|2.5.1\r" +
	"PID|1||123^^^GEN^MR||DOE^JANE||19800101|F\r" +
	"ORC|RE|O1\rOBR|1|O1||GLU\rOBX|1|NM|GLU^Glucose^L||5.5\r" +
	"ORC|RE|O2\rOBR|2|O2||XYZ\rOBX|1|NM|XYZ^Other^L||1\r"

// ruleService is a transform stage over the rule sets below, by
// interface, at configuration version v7, with its own metrics.
func ruleService(t *testing.T) (*Service, *telemetry.Telemetry) {
	t.Helper()
	env, err := mapping.NewEnv(mapping.Tables{"lab_codes": mapping.NewTable("lab_codes", "2024-01",
		map[string]mapping.Entry{"GLU": {Code: "2345-7", System: "LN", Display: "Glucose"}})})
	if err != nil {
		t.Fatal(err)
	}
	lis := "LIS"
	sets := map[string][]mapping.Rule{
		"filter": {{Name: "drop-test", When: "msg.processing_id == 'T'", Filter: &mapping.FilterOp{Reason: "test traffic (MSH-11 = T)"}},
			{Name: "receiver", Set: &mapping.SetOp{Path: "MSH-5", Value: &lis}}},
		"split": {{Name: "per-order", Split: &mapping.SplitOp{Segment: "OBR"}}},
		"split-filter": {{Name: "per-order", Split: &mapping.SplitOp{Segment: "OBR"}},
			{Name: "no-glucose", When: "msg.field('OBR-4') == 'GLU'", Filter: &mapping.FilterOp{Reason: "glucose goes elsewhere"}}},
		"split-filter-all": {{Name: "per-order", Split: &mapping.SplitOp{Segment: "OBR"}},
			{Name: "pause", Filter: &mapping.FilterOp{Reason: "paused"}}},
		"flag": {{Name: "loinc", Map: &mapping.MapOp{Path: "OBX[*]-3.1", Table: "lab_codes", Unmapped: mapping.UnmappedFlag}}},
		// A flag before the split (PID-7 has no offset) and one after it,
		// on the second order only (XYZ is not in the table).
		"split-flag": {{Name: "dob", Normalize: &mapping.NormalizeOp{Path: "PID-7", To: "utc"}},
			{Name: "per-order", Split: &mapping.SplitOp{Segment: "OBR"}},
			{Name: "loinc", Map: &mapping.MapOp{Path: "OBX[*]-3.1", Table: "lab_codes", Unmapped: mapping.UnmappedFlag}}},
		"reject": {{Name: "loinc", Map: &mapping.MapOp{Path: "OBX[*]-3.1", Table: "lab_codes", Unmapped: mapping.UnmappedReject}}},
	}
	rules := &Rules{Version: "v7", Interfaces: map[string]*mapping.RuleSet{}}
	for name, rs := range sets {
		c, err := mapping.Compile("interfaces["+name+"].rules", rs, env, mapping.Inbound)
		if err != nil {
			t.Fatal(err)
		}
		rules.Interfaces[name] = c
	}
	tel := telemetry.New(nil)
	s := New(Config{Rules: rules, Telemetry: tel}, kafka.Config{}.WithDefaults(), nil, slog.New(slog.DiscardHandler))
	s.now = func() time.Time { return time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC) }
	return s, tel
}

func parsedFor(iface, processingID string) *canonical.Parsed {
	return &canonical.Parsed{MessageID: "M1", ParentMessageID: "B1", Interface: iface, OrderingKey: "k",
		ReceivedAt: time.Date(2024, 3, 1, 9, 15, 0, 0, time.UTC),
		Header:     canonical.Header{MessageCode: "ORU", TriggerEvent: "R01", ControlID: "C1", ProcessingID: processingID, Charset: "UNICODE UTF-8"},
		Payload:    []byte(fmt.Sprintf(ruleMsg, processingID))}
}

// transformedOf returns outs' transformed records, failing on any other
// output or one not to the transformed topic under the input's key.
func transformedOf(t *testing.T, s *Service, outs []pipeline.Output) []*canonical.Transformed {
	t.Helper()
	var ts []*canonical.Transformed
	for _, o := range outs {
		tr, ok := o.Record.(*canonical.Transformed)
		if !ok || o.Topic != s.out || o.Key != nil {
			t.Fatalf("output %T to %s under %q, want a transformed record", o.Record, o.Topic, o.Key)
		}
		ts = append(ts, tr)
	}
	return ts
}

// TestHandleRules: the interface's inbound rules decide what transform
// writes: one record after the rules (header and projections from the
// changed message), one per child of a split, a decision alone for a
// filtered message, a dead letter for a rule that fails; an interface
// without rules passes its message through with the header carried.
func TestHandleRules(t *testing.T) {
	s, tel := ruleService(t)
	ctx := context.Background()

	t.Run("filtered", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("filter", "T"))
		if err != nil || len(outs) != 1 {
			t.Fatalf("%d outputs, %v", len(outs), err)
		}
		d, ok := outs[0].Record.(*canonical.Decision)
		if !ok || outs[0].Topic != "hl7bus.decisions" || string(outs[0].Key) != "M1" {
			t.Fatalf("output %T to %s under %q, want a decision keyed by message ID", outs[0].Record, outs[0].Topic, outs[0].Key)
		}
		want := canonical.Decision{MessageID: "M1", ParentMessageID: "B1", Interface: "filter", ControlID: "C1", MessageType: "ORU^R01",
			Stage: "transform", DecidedAt: s.now(), ConfigVersion: "v7", Outcome: "filtered",
			Filter: &canonical.FilterDecision{Rule: "drop-test", Reason: "test traffic (MSH-11 = T)"}}
		if fmt.Sprint(*d.Filter) != fmt.Sprint(*want.Filter) {
			t.Errorf("filter %+v", *d.Filter)
		}
		d.Filter, want.Filter = nil, nil
		if fmt.Sprint(*d) != fmt.Sprint(want) {
			t.Errorf("decision\n got %+v\nwant %+v", *d, want)
		}
		metric := `# HELP hl7bus_messages_filtered_total Messages a filter rule dropped, by interface, rule and destination ("" for an inbound filter; configuration names).
# TYPE hl7bus_messages_filtered_total counter
hl7bus_messages_filtered_total{destination="",interface="filter",rule="drop-test"} 1
`
		if err := testutil.GatherAndCompare(tel.Registry, strings.NewReader(metric), "hl7bus_messages_filtered_total"); err != nil {
			t.Error(err)
		}
	})

	t.Run("changed", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("filter", "P"))
		if err != nil {
			t.Fatal(err)
		}
		ts := transformedOf(t, s, outs)
		if len(ts) != 1 {
			t.Fatalf("%d records", len(ts))
		}
		tr := ts[0]
		if tr.MessageID != "M1" || tr.ParentMessageID != "B1" || tr.ConfigVersion != "v7" || tr.OrderingKey != "k" || len(tr.Issues) != 0 {
			t.Errorf("record %+v", tr)
		}
		if tr.Header.ReceivingApplication != "LIS" || tr.Header.ControlID != "C1" || tr.Header.Charset != "UNICODE UTF-8" || tr.Header.ProcessingID != "P" {
			t.Errorf("header %+v, want the changed MSH's with the received charset", tr.Header)
		}
		if !strings.HasPrefix(string(tr.Message), "MSH|^~\\&|LAB|NATLAB|LIS|GEN|") {
			t.Errorf("message %q, want MSH-5 set", tr.Message)
		}
		if tr.Patient == nil || tr.Patient.FamilyName != "DOE" || tr.MessageTime != "2024-03-01T09:15:00Z" {
			t.Errorf("projections %+v %q", tr.Patient, tr.MessageTime)
		}
	})

	t.Run("split", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("split", "P"))
		if err != nil {
			t.Fatal(err)
		}
		ts := transformedOf(t, s, outs)
		if len(ts) != 2 {
			t.Fatalf("%d records, want one per order", len(ts))
		}
		for i, tr := range ts {
			n := fmt.Sprint(i + 1)
			if tr.MessageID != "M1-"+n || tr.ParentMessageID != "M1" || tr.OrderingKey != "k" || tr.ConfigVersion != "v7" || tr.Interface != "split" {
				t.Errorf("child %d: %+v", i, tr)
			}
			if tr.Header.ControlID != "C1-"+n || tr.Header.MessageCode != "ORU" {
				t.Errorf("child %d: header %+v, want its own MSH-10", i, tr.Header)
			}
			if c := strings.Count(string(tr.Message), "\rOBR|"); c != 1 || !strings.Contains(string(tr.Message), "|O"+n+"\r") {
				t.Errorf("child %d: %q, want its order only", i, tr.Message)
			}
			if tr.Patient == nil || tr.Patient.FamilyName != "DOE" {
				t.Errorf("child %d: patient %+v", i, tr.Patient)
			}
		}
	})

	// A filter after a split drops children one by one: each dropped child
	// has its decision (its own ID and control ID, the input as parent)
	// and is counted; the survivors keep their child numbers.
	t.Run("split then filter", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("split-filter", "P"))
		if err != nil {
			t.Fatal(err)
		}
		var ds []string
		var rest []pipeline.Output
		for _, o := range outs {
			if d, ok := o.Record.(*canonical.Decision); ok {
				if o.Topic != "hl7bus.decisions" || string(o.Key) != d.MessageID || d.Filter == nil {
					t.Fatalf("decision to %s under %q: %+v", o.Topic, o.Key, d)
				}
				ds = append(ds, fmt.Sprintf("%s<%s %s %s %s %s/%s: %s", d.MessageID, d.ParentMessageID, d.ControlID, d.MessageType, d.Stage, d.Outcome, d.Filter.Rule, d.Filter.Reason))
				continue
			}
			rest = append(rest, o)
		}
		if want := "[M1-1<M1 C1-1 ORU^R01 transform filtered/no-glucose: glucose goes elsewhere]"; fmt.Sprint(ds) != want {
			t.Errorf("decisions %v, want %s", ds, want)
		}
		ts := transformedOf(t, s, rest)
		if len(ts) != 1 || ts[0].MessageID != "M1-2" || ts[0].ParentMessageID != "M1" || ts[0].Header.ControlID != "C1-2" {
			t.Fatalf("%d records (%+v), want child 2 alone, still M1-2", len(ts), ts)
		}
		outs, err = s.Handle(ctx, parsedFor("split-filter-all", "P"))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range outs {
			d, ok := o.Record.(*canonical.Decision)
			if !ok || d.Outcome != "filtered" || d.ParentMessageID != "M1" || d.Filter.Rule != "pause" {
				t.Fatalf("output %T %+v, want filtered decisions only", o.Record, o.Record)
			}
			ids = append(ids, d.MessageID+"/"+d.ControlID)
		}
		if fmt.Sprint(ids) != "[M1-1/C1-1 M1-2/C1-2]" {
			t.Errorf("decisions for %v, want one per child", ids)
		}
		for _, c := range []struct {
			iface, rule string
			want        float64
		}{{"split-filter", "no-glucose", 1}, {"split-filter-all", "pause", 2}} {
			if got := testutil.ToFloat64(s.metrics.Filtered.WithLabelValues(c.iface, c.rule, "")); got != c.want {
				t.Errorf("%s/%s counted %v, want %v (one per child dropped)", c.iface, c.rule, got, c.want)
			}
		}
	})

	t.Run("flag", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("flag", "P"))
		if err != nil {
			t.Fatal(err)
		}
		ts := transformedOf(t, s, outs)
		if len(ts) != 1 {
			t.Fatalf("%d records", len(ts))
		}
		tr := ts[0]
		if !strings.Contains(string(tr.Message), "OBX|1|NM|2345-7^Glucose^L||5.5") || !strings.Contains(string(tr.Message), "OBX|1|NM|XYZ^Other^L||1") {
			t.Errorf("message %q: GLU mapped, XYZ left", tr.Message)
		}
		if len(tr.Issues) != 1 || tr.Issues[0].Rule != "loinc" || tr.Issues[0].Severity != "W" || tr.Issues[0].Code != 103 || tr.Issues[0].Location == "" {
			t.Errorf("issues %+v, want one warning of rule loinc with its path", tr.Issues)
		}
		metric := `# HELP hl7bus_rule_flags_total Flags rules raised (an unmapped code under unmapped: flag, ...), by stage and rule (configuration names).
# TYPE hl7bus_rule_flags_total counter
hl7bus_rule_flags_total{rule="loinc",stage="transform"} 1
`
		if err := testutil.GatherAndCompare(tel.Registry, strings.NewReader(metric), "hl7bus_rule_flags_total"); err != nil {
			t.Error(err)
		}
	})

	// Each split child carries the flags raised before the split and its
	// own, not its siblings', each with the code of what was found.
	t.Run("split flags", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("split-flag", "P"))
		if err != nil {
			t.Fatal(err)
		}
		ts := transformedOf(t, s, outs)
		want := map[string]string{
			"M1-1": "dob@PID-7.1/102",
			"M1-2": `dob@PID-7.1/102 loinc@OBX-3.1/103: code "XYZ" is not in table lab_codes (version 2024-01)`,
		}
		if len(ts) != len(want) {
			t.Fatalf("%d records, want %d", len(ts), len(want))
		}
		for _, tr := range ts {
			var got []string
			for _, is := range tr.Issues {
				g := fmt.Sprintf("%s@%s/%d", is.Rule, is.Location, is.Code)
				if is.Rule == "loinc" {
					g += ": " + is.Text
				}
				got = append(got, g)
			}
			if g := strings.Join(got, " "); g != want[tr.MessageID] {
				t.Errorf("%s: issues %s, want %s", tr.MessageID, g, want[tr.MessageID])
			}
		}
	})

	// A reject's error text (logged, on the span) has no content, not even
	// the code; the code is its dead-letter detail, for the record alone.
	t.Run("reject", func(t *testing.T) {
		outs, err := s.Handle(ctx, parsedFor("reject", "P"))
		if !pipeline.IsPermanent(err) || outs != nil {
			t.Fatalf("%v %v, want a permanent error", outs, err)
		}
		var re *mapping.RuleError
		const want = "rule loinc: the code at OBX[2]-3.1 is not in table lab_codes (version 2024-01)"
		if !errors.As(err, &re) || re.Rule != "loinc" || err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
		if got := pipeline.DeadLetterReason(err); got != want+`: "XYZ"` {
			t.Errorf("dead-letter reason %q, want the code quoted after the error", got)
		}
	})

	t.Run("no rules", func(t *testing.T) {
		p := parsedFor("plain", "P")
		p.Header.Charset = "FROM-INGRESS"
		outs, err := s.Handle(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ts := transformedOf(t, s, outs)
		if len(ts) != 1 || ts[0].Header != p.Header || string(ts[0].Message) != string(p.Payload) || ts[0].ConfigVersion != "v7" || ts[0].ParentMessageID != "B1" {
			t.Errorf("%+v, want the message passed through, header carried", ts)
		}
	})
}

// TestSetRules: a swap puts the new rules in force for the next record,
// which carries the new version; nil applies none.
func TestSetRules(t *testing.T) {
	env, err := mapping.NewEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	rulesSetting := func(version, receiver string) *Rules {
		rs, err := mapping.Compile("interfaces[0].rules", []mapping.Rule{{Name: "receiver", Set: &mapping.SetOp{Path: "MSH-5", Value: &receiver}}}, env, mapping.Inbound)
		if err != nil {
			t.Fatal(err)
		}
		return &Rules{Version: version, Interfaces: map[string]*mapping.RuleSet{"in": rs}}
	}
	v1, v2 := rulesSetting("v1", "A"), rulesSetting("v2", "B")
	s := New(Config{Rules: v1}, kafka.Config{}.WithDefaults(), nil, slog.New(slog.DiscardHandler))
	check := func(receiver, version string) {
		t.Helper()
		outs, err := s.Handle(context.Background(), parsedFor("in", "P"))
		if err != nil {
			t.Fatal(err)
		}
		tr := transformedOf(t, s, outs)[0]
		if !strings.HasPrefix(string(tr.Message), "MSH|^~\\&|LAB|NATLAB|"+receiver+"|") || tr.ConfigVersion != version {
			t.Errorf("%.40q at %q, want MSH-5 %q at %q", tr.Message, tr.ConfigVersion, receiver, version)
		}
	}
	if s.CurrentRules() != v1 {
		t.Fatal("CurrentRules is not Config.Rules")
	}
	check("A", "v1")
	s.SetRules(v2)
	if s.CurrentRules() != v2 {
		t.Fatal("CurrentRules after SetRules")
	}
	check("B", "v2")
	s.SetRules(nil)
	check("HIS", "")
}
