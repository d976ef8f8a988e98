package mapping

import (
	"errors"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

func rulesYAML(t testing.TB, src string) []Rule {
	t.Helper()
	var rules []Rule
	if err := yaml.Unmarshal([]byte(src), &rules); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return rules
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		scope Scope
		want  []string // each must appear in the error
	}{
		{"no name", `[{set: {path: MSH-5, value: X}}]`, Inbound,
			[]string{"interfaces[0].rules[0].name: required"}},
		{"duplicate name", `[{name: a, clear: {path: PID-19}}, {name: a, clear: {path: PID-20}}]`, Inbound,
			[]string{`interfaces[0].rules[1].name: "a" is already the name of interfaces[0].rules[0]`}},
		{"no operation", `[{name: a}]`, Inbound,
			[]string{"interfaces[0].rules[0]: exactly one operation", "got none"}},
		{"two operations", `[{name: a, clear: {path: PID-19}, filter: {reason: x}}]`, Inbound,
			[]string{"interfaces[0].rules[0]: exactly one operation", "got clear, filter"}},
		{"bad path", `[{name: a, set: {path: "PID-x", value: X}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set.path: hl7v2: invalid path"}},
		{"huge index", `[{name: a, set: {path: "PID-3[5000]", value: X}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set.path: PID-3[5000]: an index above 1000"}},
		{"missing path", `[{name: a, clear: {}}]`, Inbound,
			[]string{"interfaces[0].rules[0].clear.path: required"}},
		{"delimiters", `[{name: a, set: {path: MSH-2, value: X}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set.path: MSH-2 defines the delimiters"}},
		{"value and expr", `[{name: a, set: {path: MSH-5, value: X, expr: "'y'"}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set: value and expr are exclusive"}},
		{"neither value nor expr", `[{name: a, set: {path: MSH-5}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set: one of value and expr is required"}},
		{"copy wildcards", `[{name: a, copy: {from: "OBX[*]-3", to: PID-2}}]`, Inbound,
			[]string{"interfaces[0].rules[0].copy.to: PID-2 must have the wildcards of from (OBX[*]-3)"}},
		{"move bad from", `[{name: a, move: {from: "MSH-1", to: PID-2}}]`, Inbound,
			[]string{"interfaces[0].rules[0].move.from: MSH-1 defines the delimiters"}},
		{"unknown table", `[{name: a, map: {path: PID-8, table: x}}]`, Inbound,
			[]string{`interfaces[0].rules[0].map.table: "x" is not a configured table`}},
		{"unmapped policy", `[{name: a, map: {path: PID-8, table: sex, unmapped: drop}}]`, Inbound,
			[]string{`interfaces[0].rules[0].map.unmapped: "drop" is not one of pass, flag, reject`}},
		{"map system wildcards", `[{name: a, map: {path: "OBX[*]-3.1", table: lab_codes, system_path: OBX-3.3}}]`, Inbound,
			[]string{"interfaces[0].rules[0].map.system_path: OBX-3.3 must have the wildcards of path"}},
		{"normalize to", `[{name: a, normalize: {path: OBR-7, to: local}}]`, Inbound,
			[]string{`interfaces[0].rules[0].normalize.to: "local" is not a target`}},
		{"normalize precision", `[{name: a, normalize: {path: OBR-7, precision: week}}]`, Inbound,
			[]string{`interfaces[0].rules[0].normalize.precision: "week" is not one of`}},
		{"normalize nothing", `[{name: a, normalize: {path: OBR-7}}]`, Inbound,
			[]string{"interfaces[0].rules[0].normalize: one of to and precision is required"}},
		{"unknown version", `[{name: a, version: {to: "2.9"}}]`, Inbound,
			[]string{`interfaces[0].rules[0].version.to: "2.9" is not an HL7 v2 version`}},
		{"split outbound", `[{name: a, split: {segment: OBR}}]`, Outbound,
			[]string{"interfaces[0].rules[0].split: split is only allowed in interfaces[].rules"}},
		{"split segment", `[{name: a, split: {segment: obr}}]`, Inbound,
			[]string{`interfaces[0].rules[0].split.segment: "obr" is not a segment ID`}},
		{"delete header", `[{name: a, delete_segment: {segment: MSH}}]`, Inbound,
			[]string{"interfaces[0].rules[0].delete_segment.segment: the message header cannot be deleted"}},
		{"delete index", `[{name: a, delete_segment: {segment: "NTE[0]"}}]`, Inbound,
			[]string{`interfaces[0].rules[0].delete_segment.segment: "NTE[0]": the index must be a positive number`}},
		{"add header", `[{name: a, add_segment: {segment: "MSH|^~\\&"}}]`, Inbound,
			[]string{"interfaces[0].rules[0].add_segment.segment: hl7v2: value cannot be set: MSH cannot be inserted"}},
		{"add after wildcard", `[{name: a, add_segment: {segment: "ZHB|1", after: "NTE[*]"}}]`, Inbound,
			[]string{`interfaces[0].rules[0].add_segment.after: "NTE[*]"`}},
		{"bad when", `[{name: a, when: "msg.type ==", filter: {}}]`, Inbound,
			[]string{"interfaces[0].rules[0].when: column"}},
		{"when not bool", `[{name: a, when: "msg.type", filter: {}}]`, Inbound,
			[]string{"interfaces[0].rules[0].when"}},
		{"expr not string", `[{name: a, set: {path: MSH-5, expr: "1 + 1"}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set.expr"}},
		{"expr bad path", `[{name: a, set: {path: MSH-5, expr: "msg.field('PID-x')"}}]`, Inbound,
			[]string{"interfaces[0].rules[0].set.expr: column"}},
		{"when without cel", `[{name: a, when: "true", filter: {}}]`, Inbound,
			[]string{"interfaces[0].rules[0].when"}},
		{"all at once", `[{name: a, set: {path: bad, value: X}}, {name: a, map: {path: PID-8, table: nope}}, {split: {segment: OBR}}]`, Outbound,
			[]string{"interfaces[0].rules[0].set.path", `interfaces[0].rules[1].name: "a"`, "interfaces[0].rules[1].map.table", "interfaces[0].rules[2].name: required", "interfaces[0].rules[2].split"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testEnv(t)
			if tt.name == "when without cel" {
				env = nil
			}
			rs, err := Compile("interfaces[0].rules", rulesYAML(t, tt.rules), env, tt.scope)
			if err == nil {
				t.Fatalf("compiled (%d rules); want an error", rs.Len())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestCompileGood(t *testing.T) {
	rs, err := Compile("destinations[1].rules", rulesYAML(t, `
- {name: receiver, set: {path: MSH-5, value: LIS}}
- {name: mrn, copy: {from: "PID-3[1].1", to: PID-2}}
- {name: mv, move: {from: PID-19, to: PID-20}}
- {name: clr, clear: {path: "OBX[*]-16"}}
- {name: del, delete_segment: {segment: "NTE[*]"}}
- {name: del2, delete_segment: {segment: "NTE[2]"}}
- {name: add, add_segment: {segment: "ZHB|1|NATIONAL^HUB", after: "OBR[2]"}}
- {name: loinc, map: {path: "OBX[*]-3[*].1", table: lab_codes, system_path: "OBX[*]-3[*].3", unmapped: reject}}
- {name: utc, normalize: {path: "OBR[*]-7", to: utc, precision: second}}
- {name: v, version: {to: "2.8.2"}}
- {name: drop, filter: {}}
`), testEnv(t), Outbound)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Len() != 11 {
		t.Errorf("Len = %d", rs.Len())
	}
	var nilRS *RuleSet
	m, _ := hl7v2.Parse([]byte("MSH|^~\\&|A\r"))
	if res, err := nilRS.Apply(m, Vars{}); err != nil || len(res.Messages) != 1 || res.Messages[0] != m || nilRS.Len() != 0 {
		t.Errorf("nil rule set: %v %v", res, err)
	}
}

// TestFilterDefaultReason: a filter without a reason still says why.
func TestFilterDefaultReason(t *testing.T) {
	rs, err := Compile("r", rulesYAML(t, `[{name: pause, filter: {}}]`), nil, Outbound)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := hl7v2.Parse([]byte("MSH|^~\\&|A\r"))
	res, err := rs.Apply(m, Vars{})
	if err != nil || res.Filtered == nil || res.Filtered.Reason != defaultFilterReason || res.Filtered.Rule != "pause" || len(res.Messages) != 0 {
		t.Errorf("got %+v, %v", res, err)
	}
}

// TestRuleErrorsCarryNoContent feeds a message full of sentinel content
// through rules that fail and flag, and checks no reason quotes it (a
// table code is the one thing a reason may quote).
func TestRuleErrorsCarryNoContent(t *testing.T) {
	const secret = "ZZSECRETNAME"
	in := "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|C1|P|2.5.1\r" +
		"PID|1||" + secret + "^^^H^MR||" + secret + "^" + secret + "||" + secret + "\r" +
		"OBR|1|||X|||" + secret + "\r" +
		"OBX|1|ST|LONGCODE-" + strings.Repeat("Q", 100) + "||" + secret + "\r"
	cases := map[string]string{
		"normalize": `[{name: n, normalize: {path: "OBR[*]-7", to: utc}}]`,
		"dob":       `[{name: n, normalize: {path: PID-7, to: utc}}]`,
		"reject":    `[{name: n, map: {path: "OBX[*]-3.1", table: lab_codes, unmapped: reject}}]`,
		"flag":      `[{name: n, map: {path: "OBX[*]-3.1", table: lab_codes, unmapped: flag}}]`,
		"add after": `[{name: n, add_segment: {segment: "ZHB|1", after: IN1}}]`,
		"version":   `[{name: n, set: {path: MSH-12, value: "9.9"}}, {name: v, version: {to: "2.3"}}]`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			rs, err := Compile("r", rulesYAML(t, src), testEnv(t), Inbound)
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			res, err := rs.Apply(m, Vars{})
			var texts []string
			if err != nil {
				var re *RuleError
				if !errors.As(err, &re) {
					t.Fatalf("error is %T", err)
				}
				// Error() is logged and put on spans and decisions: not even
				// the code is in it.
				if strings.Contains(err.Error(), "LONGCODE") {
					t.Errorf("error text quotes the code: %q", err)
				}
				texts = append(texts, err.Error(), re.Detail)
			}
			for _, is := range res.Issues {
				texts = append(texts, is.Reason, is.Path)
			}
			if len(texts) == 0 {
				t.Fatal("the case neither failed nor flagged")
			}
			for _, s := range texts {
				if strings.Contains(s, secret) || strings.Contains(s, strings.Repeat("Q", maxQuotedCode)) {
					t.Errorf("reason quotes content: %q", s)
				}
			}
		})
	}
}

// TestApplyLeavesCloneAlone: route applies destination rules to a clone
// per destination; the original must not see them.
func TestApplyLeavesCloneAlone(t *testing.T) {
	in, err := os.ReadFile("testdata/ops/set.in.hl7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	before := string(m.Bytes())
	rs, err := Compile("r", rulesYAML(t, `
- {name: a, set: {path: MSH-5, value: LIS}}
- {name: b, delete_segment: {segment: NTE}}
- {name: c, add_segment: {segment: "ZHB|1", after: MSH}}
- {name: d, map: {path: "OBX[*]-3.1", table: lab_codes}}
`), testEnv(t), Outbound)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rs.Apply(m.Clone(), Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Bytes()) == string(res.Messages[0].Bytes()) {
		t.Fatal("the rules changed nothing")
	}
	if string(m.Bytes()) != before {
		t.Error("applying to a clone changed the original")
	}
}

// TestRejectDetail: a map under unmapped: reject keeps the code out of
// the error's text and in its Detail (the dead-letter record's reason
// only), quoted and cut; the table's version is in both texts.
func TestRejectDetail(t *testing.T) {
	rs, err := Compile("r", rulesYAML(t, `[{name: loinc, map: {path: "OBX[*]-3.1", table: lab_codes, unmapped: reject}}]`), testEnv(t), Inbound)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ code, detail string }{
		{"XYZ", `"XYZ"`},
		{strings.Repeat("Q", 50), `"` + strings.Repeat("Q", maxQuotedCode) + `"...`},
	}
	for _, tt := range tests {
		m, err := hl7v2.Parse([]byte("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|C1|P|2.5.1\rOBX|1|ST|GLU||1\rOBX|2|ST|" + tt.code + "||2\r"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = rs.Apply(m, Vars{})
		re, ok := errors.AsType[*RuleError](err)
		if !ok {
			t.Fatalf("%s: error %v (%T), want a *RuleError", tt.code, err, err)
		}
		if want := "rule loinc: the code at OBX[2]-3.1 is not in table lab_codes (version 2026-12)"; err.Error() != want {
			t.Errorf("%s: Error() = %q, want %q", tt.code, err, want)
		}
		if re.Detail != tt.detail || re.DeadLetterDetail() != tt.detail {
			t.Errorf("%s: detail %q, want %q", tt.code, re.Detail, tt.detail)
		}
	}
}
