package mapping

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

var update = flag.Bool("update", false, "rewrite the expected outputs in testdata/ops")

// testTables are the code tables the golden cases and benchmarks map
// through.
func testTables() Tables {
	return Tables{
		// lab_codes has a version, as the configuration gives one: the
		// reasons of its map rules name it.
		"lab_codes": NewTable("lab_codes", "2026-12", map[string]Entry{
			"GLU":  {Code: "2345-7", System: "LN", Display: "Glucose [Mass/volume] in Serum or Plasma"},
			"HGB":  {Code: "718-7", System: "LN", Display: "Hemoglobin [Mass/volume] in Blood"},
			"K":    {Code: "2823-3", System: "LN", Display: "Potassium [Moles/volume] in Serum or Plasma"},
			"NOSY": {Code: "9999-9"},
		}),
		"sex": testTable("sex", map[string]Entry{"1": {Code: "M"}, "2": {Code: "F"}, "9": {Code: "U"}}),
		"facilities": testTable("facilities", map[string]Entry{
			"GENHOSP": {Code: "2.16.840.1.113883.3.1", System: "ISO"},
		}),
	}
}

// testTable builds a table in code.
func testTable(name string, rows map[string]Entry) *Table {
	return NewTable(name, "", rows)
}

// testEnv is the environment the tests compile against.
func testEnv(t testing.TB) *Env {
	t.Helper()
	env, err := NewEnv(testTables())
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// render is what a golden .out.hl7 holds: each message with its segments
// on lines, messages separated by "---", then the issues, the filter or
// the error, one per line starting with #.
func render(res Result, err error) []byte {
	var b bytes.Buffer
	for i, m := range res.Messages {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(bytes.ReplaceAll(m.Bytes(), []byte("\r"), []byte("\n")))
	}
	for _, is := range res.Issues {
		child := ""
		if is.Child != 0 {
			child = fmt.Sprintf(" (child %d)", is.Child)
		}
		fmt.Fprintf(&b, "# issue %d: rule %s at %s%s: %s\n", is.Code, is.Rule, is.Path, child, is.Reason)
	}
	if res.Indexes != nil {
		fmt.Fprintf(&b, "# children: %v\n", res.Indexes)
	}
	for _, d := range res.Dropped {
		fmt.Fprintf(&b, "# dropped: child %d (MSH-10 %s): rule %s: %s\n", d.Index, d.Message.ControlID(), d.Rule, d.Reason)
	}
	if res.Filtered != nil {
		fmt.Fprintf(&b, "# filtered: rule %s: %s\n", res.Filtered.Rule, res.Filtered.Reason)
	}
	if err != nil {
		fmt.Fprintf(&b, "# error: %v\n", err)
		if re, ok := errors.AsType[*RuleError](err); ok && re.Detail != "" {
			fmt.Fprintf(&b, "# detail (dead-letter record only): %s\n", re.Detail)
		}
	}
	return b.Bytes()
}

// TestGoldenOps runs every testdata/ops/<case>.rules.yaml over
// <case>.in.hl7 and compares with <case>.out.hl7 (-update rewrites it).
func TestGoldenOps(t *testing.T) {
	cases, err := filepath.Glob("testdata/ops/*.rules.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, rulesFile := range cases {
		name := strings.TrimSuffix(filepath.Base(rulesFile), ".rules.yaml")
		t.Run(name, func(t *testing.T) {
			base := strings.TrimSuffix(rulesFile, ".rules.yaml")
			var rules []Rule
			if err := decodeRules(rulesFile, &rules); err != nil {
				t.Fatal(err)
			}
			rs, err := Compile("rules", rules, testEnv(t), Inbound)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			in, err := os.ReadFile(base + ".in.hl7")
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			res, err := rs.Apply(m, Vars{Interface: "lab-in"})
			var re *RuleError
			if err != nil && !errors.As(err, &re) {
				t.Fatalf("Apply error is %T, want *RuleError: %v", err, err)
			}
			got := render(res, err)
			want, _ := os.ReadFile(base + ".out.hl7")
			if *update {
				if err := os.WriteFile(base+".out.hl7", got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s.out.hl7 (go test -update to accept)\n--- got\n%s--- want\n%s", base, got, want)
			}
			for _, out := range res.Messages {
				if _, err := hl7v2.Parse(out.Bytes()); err != nil {
					t.Errorf("an output message does not parse: %v", err)
				}
			}
		})
	}
}

func decodeRules(file string, into *[]Rule) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}
