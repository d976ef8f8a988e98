package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sampleDir is the sample configuration's directory, which ships the
// analyst's cases (rules-tests/) the rules command must pass.
const sampleDir = "../../../../deploy/standalone"

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// TestRulesTestSample: every case the sample configuration ships passes,
// and there are at least the ten the issue asks for.
func TestRulesTestSample(t *testing.T) {
	code, out, errs := runCLI(t, "rules", "test", "--config", filepath.Join(sampleDir, "hl7bus.yaml"))
	if code != ExitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	m := regexp.MustCompile(`(?m)^(\d+) passed, 0 failed$`).FindStringSubmatch(out)
	if m == nil || len(m[1]) < 2 {
		t.Fatalf("want at least 10 cases passed, got:\n%s", out)
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a case failed:\n%s", out)
	}
}

// copySample copies the sample configuration's directory into a
// temporary one, where a test may break it.
func copySample(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(sampleDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(sampleDir, p)
		if d.IsDir() {
			if d.Name() == "hl7bus-data" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestRulesTestBrokenExpectation: one wrong expectation in the sample's
// cases fails that case alone, with the difference, and exits 1. The
// default test directory is the configuration's rules-tests.
func TestRulesTestBrokenExpectation(t *testing.T) {
	dir := copySample(t)
	file := filepath.Join(dir, "rules-tests", "hospital-results.test.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), `"OBX[1]-3.1": "2345-7"`, `"OBX[1]-3.1": "2339-0"`, 1)
	if broken == string(b) {
		t.Fatal("the sample case this test breaks is gone; update the test")
	}
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "rules", "test", "--config", filepath.Join(dir, "hl7bus.yaml"))
	if code != ExitInvalid {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitInvalid, out, errs)
	}
	want := `FAIL local glucose code maps to LOINC for the LIS (map, flag): lis[1] OBX[1]-3.1: got "2345-7", expected "2339-0"`
	if !strings.Contains(out, want+"\n") {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !regexp.MustCompile(`(?m)^\d+ passed, 1 failed$`).MatchString(out) || strings.Count(out, "FAIL") != 1 {
		t.Errorf("want exactly one failure:\n%s", out)
	}
}

// TestRulesTestPasses: the test configuration's cases (default-deny, a
// destination's copy dead-lettered, an inline message with CR line ends)
// pass, run from a named directory.
func TestRulesTestPasses(t *testing.T) {
	code, out, errs := runCLI(t, "rules", "test", "--config", "testdata/rules/hl7bus.yaml", "testdata/rules/rules-tests")
	if code != ExitOK || !strings.Contains(out, "4 passed, 0 failed") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, name := range []string{"result to both, mapped", "an unmatched message is dead-lettered (default-deny)",
		"an unmapped code is flagged, and refused by the registry only", "test traffic"} {
		if !strings.Contains(out, "PASS "+name+"\n") {
			t.Errorf("no PASS line for %q:\n%s", name, out)
		}
	}
}

// TestRulesTestFailures: each way a case can be wrong is caught, and the
// FAIL line says what differed.
func TestRulesTestFailures(t *testing.T) {
	code, out, errs := runCLI(t, "rules", "test", "--config", "testdata/rules/hl7bus.yaml", "testdata/rules/failing/fail.test.yaml")
	if code != ExitInvalid {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitInvalid, out, errs)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "FAIL "); ok {
			name, why, _ := strings.Cut(rest, ": ")
			lines[name] = why
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"wrong field value", `lis[1] OBX-3.1: got "2345-7", expected "GLU"`},
		{"a destination left out", "registry got 1 message, expected none"},
		{"too many messages expected", "lis got 1 message, expected 2"},
		{"unknown destination", "destinations.nowhere: not a configured destination"},
		{"exact message differs", `lis[1] differs from oru.hl7 at segment 1: got "MSH|^~\\&|LAB|FAC|LIS|`},
		{"filter expected but routed", "expected filtered by rule drop-test, got no filter"},
		{"unexpected filter", "unexpectedly filtered by rule drop-test (test traffic)"},
		{"unexpected dead letter", "unexpectedly dead-lettered at route: no route matches ADT^A01"},
		{"dead letter for the wrong destination", "expected a dead letter at route for destination lis, got dead-lettered at route for destination registry: rule strict"},
		{"issue not raised", `expected an issue containing "unmapped", got none`},
		{"issues where none expected", `expected no issues, got loinc`},
		{"route expected to match", "route glucose did not match: when is false; route results matched, expected it not to; no route nosuch in the decision"},
		{"transformed count", "transformed got 1 message, expected 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			why, ok := lines[tc.name]
			if !ok {
				t.Fatalf("no FAIL line:\n%s", out)
			}
			if !strings.Contains(why, tc.want) {
				t.Errorf("FAIL line %q lacks %q", why, tc.want)
			}
		})
	}
	if !strings.Contains(out, "0 passed, 13 failed\n") {
		t.Errorf("summary:\n%s", out)
	}
}

// TestRulesTestUpdate: --update writes what a destination got to the
// expectation's message_file, which then passes as written.
func TestRulesTestUpdate(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"hl7bus.yaml", "codes.csv", "registry_codes.yaml", "oru.hl7"} {
		b, err := os.ReadFile(filepath.Join("testdata/rules", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tf := filepath.Join(dir, "golden.test.yaml")
	body := "cases:\n  - {name: golden, interface: in, message_file: oru.hl7, expect: {destinations: {lis: [{message_file: lis.hl7}], registry: [{}]}}}\n"
	if err := os.WriteFile(tf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "hl7bus.yaml")
	if code, out, _ := runCLI(t, "rules", "test", "--config", cfg, tf); code != ExitInvalid || !strings.Contains(out, "lis.hl7: no such file") {
		t.Fatalf("before --update: exit %d\n%s", code, out)
	}
	if code, out, errs := runCLI(t, "rules", "test", "--config", cfg, "--update", tf); code != ExitOK {
		t.Fatalf("--update: exit %d\n%s%s", code, out, errs)
	}
	got, err := os.ReadFile(filepath.Join(dir, "lis.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/rules/oru.lis.hl7")
	if !bytes.Equal(got, want) {
		t.Errorf("--update wrote:\n%s\nwant:\n%s", got, want)
	}
	if code, out, _ := runCLI(t, "rules", "test", "--config", cfg, tf); code != ExitOK {
		t.Errorf("after --update: exit %d\n%s", code, out)
	}
}

// TestRulesUsageErrors: what is wrong with the command line, the
// configuration or a test file exits 2 and says what.
func TestRulesUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := "testdata/rules/hl7bus.yaml"
	badKey := write("bad-key.test.yaml", "cases:\n  - {name: a, interface: in, message: x, expect: {destination: {}}}\n")
	noMsg := write("no-message.test.yaml", "cases:\n  - {name: a, interface: in}\n")
	noIface := write("no-interface.test.yaml", "cases:\n  - {name: a, interface: nosuch, message: \"MSH|^~\\\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\"}\n")
	badCfg := write("bad.yaml", "interfaces: [{name: in, protocol: mllp, address: 127.0.0.1:0, rules: [{name: x, when: \"msg.nosuch ==\", filter: {reason: r}}]}]\n")
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"rules"}, "usage: hl7bus rules test"},
		{"unknown subcommand", []string{"rules", "lint"}, `unknown subcommand "lint"`},
		{"no config", []string{"rules", "test", "--config", filepath.Join(dir, "nosuch.yaml")}, "nosuch.yaml"},
		{"invalid config", []string{"rules", "test", "--config", badCfg}, "interfaces[0].rules[0].when"},
		{"no test files", []string{"rules", "test", "--config", cfg, empty}, "no *.test.yaml files"},
		{"unknown key", []string{"rules", "test", "--config", cfg, badKey}, "field destination not found"},
		{"no message", []string{"rules", "test", "--config", cfg, noMsg}, "exactly one of message and message_file"},
		{"unknown interface", []string{"rules", "test", "--config", cfg, noIface}, `interface "nosuch" is not configured`},
		{"explain without interface", []string{"rules", "explain", "--config", cfg, "testdata/rules/oru.hl7"}, "usage: hl7bus rules explain"},
		{"explain unknown interface", []string{"rules", "explain", "--config", cfg, "--interface", "nosuch", "testdata/rules/oru.hl7"}, `interface "nosuch" is not configured`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d\n%s%s", code, ExitUsage, out, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errs)
			}
		})
	}
}

// TestRulesExplain: explain shows the transform outcome, every route's
// verdict with its reason, and each destination's message, segment per
// line.
func TestRulesExplain(t *testing.T) {
	cfg := "testdata/rules/hl7bus.yaml"
	for _, tc := range []struct {
		name, file string
		iface      string // "" for in
		stdin      string
		want       []string
		not        []string
	}{
		// parse's batch split is parse's, and each message of the batch
		// is followed apart.
		{name: "batch", file: "-", stdin: "FHS|^~\\&|LAB|FAC\rBHS|^~\\&|LAB|FAC\r" +
			"MSH|^~\\&|LAB|FAC|HIS|FAC|20260101120000+0000||ORU^R01^ORU_R01|B1|P|2.5.1\rOBX|1|NM|GLU||5\r" +
			"MSH|^~\\&|HIS|FAC|LAB|FAC|20260101120000+0000||ADT^A01^ADT_A01|B2|P|2.5.1\rBTS|2\rFTS|1\r", want: []string{
			"\nparse: a batch of 2 messages\n", "\ntransform (message 1 of 2):\n  1 message\n", "\nroute (message 1 of 2): routed\n",
			"\ndestination lis (message 1 of 2, route results):\n", "\ntransform (message 2 of 2):\n  1 message\n",
			"\nroute (message 2 of 2): dead_lettered\n  no       results: message type ADT^A01 is not in [ORU^R01]\n",
			"dead-lettered at route: no route matches ADT^A01"}, not: []string{"split"}},
		// A split rule's parts are transform's, labelled apart from a
		// batch's messages.
		{name: "split", file: "-", iface: "split-in", stdin: "MSH|^~\\&|LAB|FAC|HIS|FAC|20260101120000+0000||ORU^R01^ORU_R01|S1|P|2.5.1\r" +
			"PID|1\rOBR|1\rOBX|1|NM|GLU||5\rOBR|2\rOBX|1|NM|NA||140\r", want: []string{
			"\ntransform:\n  split by the inbound rules into 2 messages\n", "\nroute (part 1 of 2): routed\n", "\nroute (part 2 of 2): routed\n",
			"\ndestination lis [2] (route results):\n"}, not: []string{"parse:", "batch"}},
		{name: "routed", file: "testdata/rules/oru.hl7", want: []string{
			"interface in\n", "route: routed\n", "  matched  results -> lis\n", "  matched  glucose -> registry\n",
			"destination lis (route results):\n  MSH|^~\\&|LAB|FAC|LIS|FAC|", "\n  OBX|1|NM|2345-7^Glucose^L||5.4\n",
			"destination registry (route glucose):\n", "OBX|1|NM|REG-GLU^Glucose^L||5.4\n"}},
		{name: "denied", file: "-", stdin: "MSH|^~\\&|HIS|FAC|LAB|FAC|20260101120000+0000||ADT^A01^ADT_A01|C2|P|2.5.1\n", want: []string{
			"route: dead_lettered\n", "  no       results: message type ADT^A01 is not in [ORU^R01]\n", "  no       glucose: when is false\n",
			"dead-lettered at route: no route matches ADT^A01", "no destination receives the message\n"}},
		{name: "filtered", file: "-", stdin: "MSH|^~\\&|LAB|FAC|HIS|FAC|20260101120000+0000||ORU^R01^ORU_R01|C4|T|2.5.1\r", want: []string{
			"transform:\n  filtered by rule drop-test (test traffic)\n", "no destination receives the message\n"}},
		{name: "one copy dead-lettered", file: "-", stdin: "MSH|^~\\&|LAB|FAC|HIS|FAC|20260101120000+0000||ORU^R01^ORU_R01|C3|P|2.5.1\rOBX|1|NM|GLU||5\rOBX|2|NM|ZZZ||1\r", want: []string{
			`  issue: loinc OBX[2]-3.1 code "ZZZ"`, "route: routed\n", "  registry: dead_lettered by rule strict: rule strict: ",
			"destination lis (route results):\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			iface := tc.iface
			if iface == "" {
				iface = "in"
			}
			code := Main([]string{"rules", "explain", "--config", cfg, "--interface", iface, tc.file},
				Env{Stdin: strings.NewReader(tc.stdin), Stdout: &out, Stderr: &errb})
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestToCR(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"MSH|a\nPID|b\n", "MSH|a\rPID|b\r"},
		{"MSH|a\r\nPID|b\r\n\r\n", "MSH|a\rPID|b\r"},
		{"MSH|a\rPID|b", "MSH|a\rPID|b\r"},
		{"\n\nMSH|a\n  \nPID|b", "MSH|a\rPID|b\r"},
		{"", ""},
	} {
		if got := string(toCR([]byte(tc.in))); got != tc.want {
			t.Errorf("toCR(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
