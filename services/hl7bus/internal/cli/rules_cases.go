package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"go.yaml.in/yaml/v3"
)

// caseFile is one *.test.yaml file: the cases an analyst writes beside
// the configuration (docs/rules-guide.md, "Testing rules").
type caseFile struct {
	Cases []ruleCase `yaml:"cases"`
}

// ruleCase is one message in and what the exchange must do with it.
type ruleCase struct {
	Name      string `yaml:"name"`
	Interface string `yaml:"interface"`
	// Message is the message inline (LF, CRLF or CR line ends);
	// MessageFile a file relative to the test file. Exactly one.
	Message     string      `yaml:"message"`
	MessageFile string      `yaml:"message_file"`
	Expect      expectation `yaml:"expect"`
}

// expectation is a case's expect: block. Only what is written is checked,
// except that what no key allows fails the case: a destination that gets
// a message the case does not list, a dead letter or an inbound filter it
// does not expect.
type expectation struct {
	// Destinations are exactly the destinations that get something, each
	// with the messages it gets, in order. Absent: none gets anything.
	Destinations map[string][]messageExpect `yaml:"destinations"`
	// Transformed are the transformed records (the exchange's normalized
	// messages, one per split child), in order, when given.
	Transformed []messageExpect `yaml:"transformed"`
	Filtered    *filterExpect   `yaml:"filtered"`
	DeadLetter  *deadExpect     `yaml:"dead_letter"`
	// Issues are substrings each of which some flag on the transformed
	// records must contain; an empty list means no flag at all.
	Issues   []string        `yaml:"issues"`
	Decision *decisionExpect `yaml:"decision"`
}

// messageExpect is one message a destination (or transform) writes.
type messageExpect struct {
	// Fields are decoded values by path ("" for absent).
	Fields map[string]string `yaml:"fields"`
	// MessageFile is the exact message, relative to the test file.
	MessageFile string `yaml:"message_file"`
}

// filterExpect is the filter that dropped the message, or, with
// Destination, that destination's copy.
type filterExpect struct {
	Destination string `yaml:"destination"`
	Rule        string `yaml:"rule"`
	// Reason is a substring of the filter's reason.
	Reason string `yaml:"reason"`
}

// deadExpect is what every dead letter of the message must be (there
// must be at least one).
type deadExpect struct {
	Stage       string `yaml:"stage"`
	Destination string `yaml:"destination"`
	Reason      string `yaml:"reason"` // a substring
}

// decisionExpect names routes that matched (for some split child) and
// routes that matched for none.
type decisionExpect struct {
	Matched    []string `yaml:"matched"`
	NotMatched []string `yaml:"not_matched"`
}

// rulesTest is one run of `hl7bus rules test`.
type rulesTest struct {
	ex     *exchange
	update bool
	out    io.Writer
	// n numbers the cases for their message IDs.
	n int
}

func runRulesTest(args []string, env Env) int {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", defaultRulesConfig, "configuration `FILE`")
	update := fs.Bool("update", false, "write what each destination gets to the message_file of its expectations instead of comparing")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	ex, err := loadExchange(*path)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus rules test: %v\n", err)
		return ExitUsage
	}
	targets := fs.Args()
	if len(targets) == 0 {
		targets = []string{filepath.Join(filepath.Dir(*path), "rules-tests")}
	}
	files, err := testFiles(targets)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus rules test: %v\n", err)
		return ExitUsage
	}
	rt := &rulesTest{ex: ex, update: *update, out: env.Stdout}
	passed, failed, broken := 0, 0, false
	for _, file := range files {
		cases, err := readCases(file)
		if err != nil {
			fmt.Fprintf(env.Stderr, "ERROR %v\n", err)
			broken = true
			continue
		}
		for _, c := range cases {
			problems, err := rt.check(context.Background(), filepath.Dir(file), c)
			if err != nil {
				fmt.Fprintf(env.Stderr, "ERROR %s: %s: %v\n", file, c.Name, err)
				broken = true
				continue
			}
			if len(problems) == 0 {
				passed++
				fmt.Fprintf(env.Stdout, "PASS %s\n", c.Name)
				continue
			}
			failed++
			fmt.Fprintf(env.Stdout, "FAIL %s: %s\n", c.Name, strings.Join(problems, "; "))
		}
	}
	fmt.Fprintf(env.Stdout, "%d passed, %d failed\n", passed, failed)
	switch {
	case broken:
		return ExitUsage
	case failed > 0:
		return ExitInvalid
	}
	return ExitOK
}

// testFiles expands each target, a directory (its *.test.yaml files) or a
// file, in order.
func testFiles(targets []string) ([]string, error) {
	var files []string
	for _, t := range targets {
		st, err := os.Stat(t)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, t)
			continue
		}
		found, err := filepath.Glob(filepath.Join(t, "*.test.yaml"))
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no *.test.yaml files", t)
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, nil
}

// readCases reads a test file strictly: a misspelt key would make a case
// check less than its author thinks.
func readCases(file string) ([]ruleCase, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var cf caseFile
	if err := dec.Decode(&cf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(cf.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", file)
	}
	var errs []error
	names := map[string]bool{}
	for i, c := range cf.Cases {
		key := fmt.Sprintf("%s: cases[%d]", file, i)
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case names[c.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, c.Name))
		}
		names[c.Name] = true
		if c.Interface == "" {
			errs = append(errs, fmt.Errorf("%s.interface: required", key))
		}
		if (c.Message == "") == (c.MessageFile == "") {
			errs = append(errs, fmt.Errorf("%s: exactly one of message and message_file is required", key))
		}
	}
	return cf.Cases, errors.Join(errs...)
}

// check runs one case and returns what differed from its expectation; an
// error means the case could not be run at all.
func (rt *rulesTest) check(ctx context.Context, dir string, c ruleCase) ([]string, error) {
	payload := []byte(c.Message)
	if c.MessageFile != "" {
		b, err := os.ReadFile(filepath.Join(dir, c.MessageFile))
		if err != nil {
			return nil, fmt.Errorf("message_file: %w", err)
		}
		payload = b
	}
	payload = toCR(payload)
	rt.n++
	tr, err := rt.ex.run(ctx, receipt{Interface: c.Interface, MessageID: messageID("rules-test", rt.n)}, payload)
	if err != nil {
		return nil, err
	}
	e := c.Expect
	var p []string
	p = append(p, rt.checkDestinations(dir, e, tr)...)
	if e.Transformed != nil {
		payloads := make([][]byte, len(tr.Transformed))
		for i, t := range tr.Transformed {
			payloads[i] = t.Message
		}
		p = append(p, rt.checkMessages(dir, "transformed", e.Transformed, payloads)...)
	}
	p = append(p, checkFiltered(e.Filtered, tr)...)
	p = append(p, checkDead(e.DeadLetter, tr)...)
	p = append(p, checkIssues(e.Issues, tr)...)
	p = append(p, checkDecision(e.Decision, tr)...)
	return p, nil
}

// checkDestinations compares what each destination got with the case.
func (rt *rulesTest) checkDestinations(dir string, e expectation, tr *trace) []string {
	var p []string
	names := make([]string, 0, len(e.Destinations))
	for d := range e.Destinations {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if !rt.ex.destinations[d] {
			p = append(p, fmt.Sprintf("destinations.%s: not a configured destination", d))
			continue
		}
		payloads := make([][]byte, len(tr.Out[d]))
		for i, o := range tr.Out[d] {
			payloads[i] = o.Payload
		}
		got := rt.checkMessages(dir, d, e.Destinations[d], payloads)
		if len(tr.Out[d]) == 0 {
			got = append(got, why(d, tr)...)
		}
		p = append(p, got...)
	}
	for _, d := range tr.Order {
		if _, ok := e.Destinations[d]; !ok {
			p = append(p, fmt.Sprintf("%s got %s, expected none", d, plural(len(tr.Out[d]), "message")))
		}
	}
	return p
}

// why says why destination d got nothing when its own rules filtered its
// copy: dead letters and inbound filters are reported on their own.
func why(d string, tr *trace) []string {
	var p []string
	for _, f := range tr.Filtered {
		if f.Destination == d {
			p = append(p, "("+f.String()+")")
		}
	}
	return p
}

// checkMessages compares the messages one destination (or transform,
// label "transformed") wrote with the case's, in order.
func (rt *rulesTest) checkMessages(dir, label string, want []messageExpect, got [][]byte) []string {
	var p []string
	if len(got) != len(want) {
		p = append(p, fmt.Sprintf("%s got %s, expected %d", label, plural(len(got), "message"), len(want)))
	}
	for i := range min(len(got), len(want)) {
		at := fmt.Sprintf("%s[%d]", label, i+1)
		m, err := rt.ex.parser.Parse(got[i])
		if err != nil {
			p = append(p, fmt.Sprintf("%s: does not parse: %v", at, err))
			continue
		}
		paths := make([]string, 0, len(want[i].Fields))
		for path := range want[i].Fields {
			paths = append(paths, path)
		}
		sort.Strings(paths)
		for _, path := range paths {
			v, err := m.Get(path)
			if err != nil {
				p = append(p, fmt.Sprintf("%s %s: %v", at, path, err))
			} else if v != want[i].Fields[path] {
				p = append(p, fmt.Sprintf("%s %s: got %q, expected %q", at, path, v, want[i].Fields[path]))
			}
		}
		if f := want[i].MessageFile; f != "" {
			p = append(p, rt.checkExact(at, filepath.Join(dir, f), got[i])...)
		}
	}
	return p
}

// checkExact compares a message with a file holding it exactly (any line
// ends); with --update it writes the file instead, one segment a line.
func (rt *rulesTest) checkExact(at, file string, got []byte) []string {
	got = toCR(got)
	if rt.update {
		if err := os.WriteFile(file, bytes.ReplaceAll(got, []byte("\r"), []byte("\n")), 0o644); err != nil {
			return []string{fmt.Sprintf("%s: %v", at, err)}
		}
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return []string{fmt.Sprintf("%s: message_file: %v", at, err)}
	}
	want := toCR(b)
	if bytes.Equal(got, want) {
		return nil
	}
	gs, ws := segments(got), segments(want)
	for i := range max(len(gs), len(ws)) {
		var g, w string
		if i < len(gs) {
			g = gs[i]
		}
		if i < len(ws) {
			w = ws[i]
		}
		if g != w {
			return []string{fmt.Sprintf("%s differs from %s at segment %d: got %q, expected %q", at, filepath.Base(file), i+1, g, w)}
		}
	}
	return nil
}

func checkFiltered(e *filterExpect, tr *trace) []string {
	if e == nil {
		var p []string
		for _, f := range tr.Filtered {
			if f.Destination == "" {
				p = append(p, "unexpectedly "+f.String())
			}
		}
		return p
	}
	for _, f := range tr.Filtered {
		if f.Destination == e.Destination && (e.Rule == "" || f.Rule == e.Rule) && strings.Contains(f.Reason, e.Reason) {
			return nil
		}
	}
	want := "filtered"
	if e.Destination != "" {
		want = e.Destination + "'s copy filtered"
	}
	if e.Rule != "" {
		want += " by rule " + e.Rule
	}
	want += containing(e.Reason)
	got := "no filter"
	if len(tr.Filtered) > 0 {
		var fs []string
		for _, f := range tr.Filtered {
			fs = append(fs, f.String())
		}
		got = strings.Join(fs, ", ")
	}
	return []string{fmt.Sprintf("expected %s, got %s", want, got)}
}

func checkDead(e *deadExpect, tr *trace) []string {
	var p []string
	if e == nil {
		for _, d := range tr.Dead {
			p = append(p, "unexpectedly "+d.String())
		}
		return p
	}
	if len(tr.Dead) == 0 {
		return []string{"expected a dead letter, got none"}
	}
	for _, d := range tr.Dead {
		if (e.Stage != "" && d.Stage != e.Stage) || d.Destination != e.Destination || !strings.Contains(d.Reason, e.Reason) {
			p = append(p, fmt.Sprintf("expected a dead letter at %s%s%s, got %s",
				orAny(e.Stage), forDest(e.Destination), containing(e.Reason), d.String()))
		}
	}
	return p
}

func containing(reason string) string {
	if reason == "" {
		return ""
	}
	return fmt.Sprintf(" with a reason containing %q", reason)
}

func orAny(stage string) string {
	if stage == "" {
		return "any stage"
	}
	return stage
}

func forDest(d string) string {
	if d == "" {
		return ""
	}
	return " for destination " + d
}

// checkIssues looks for each expected substring in the flags the rules
// raised, each read as "rule path text".
func checkIssues(want []string, tr *trace) []string {
	if want == nil {
		return nil
	}
	var flags []string
	for _, t := range tr.Transformed {
		for _, is := range t.Issues {
			flags = append(flags, issueText(is))
		}
	}
	if len(want) == 0 && len(flags) > 0 {
		return []string{fmt.Sprintf("expected no issues, got %s", strings.Join(flags, "; "))}
	}
	var p []string
	for _, w := range want {
		if !slices.ContainsFunc(flags, func(f string) bool { return strings.Contains(f, w) }) {
			got := "none"
			if len(flags) > 0 {
				got = strings.Join(flags, "; ")
			}
			p = append(p, fmt.Sprintf("expected an issue containing %q, got %s", w, got))
		}
	}
	return p
}

// issueText is an issue as test expectations and explain read it.
func issueText(is canonical.Issue) string {
	return strings.TrimSpace(strings.Join([]string{is.Rule, is.Location, is.Text}, " "))
}

// checkDecision checks the routes' verdicts over every route decision of
// the message (one per split child).
func checkDecision(e *decisionExpect, tr *trace) []string {
	if e == nil {
		return nil
	}
	if len(tr.Decisions) == 0 {
		return []string{"expected a route decision, got none (the message did not reach route)"}
	}
	matched := map[string]bool{}
	reasons := map[string][]string{}
	for _, d := range tr.Decisions {
		for _, r := range d.Routes {
			if r.Matched {
				matched[r.Route] = true
			} else if !slices.Contains(reasons[r.Route], r.Reason) {
				reasons[r.Route] = append(reasons[r.Route], r.Reason)
			}
		}
	}
	var p []string
	for _, r := range e.Matched {
		if !matched[r] {
			if rs, ok := reasons[r]; ok {
				p = append(p, fmt.Sprintf("route %s did not match: %s", r, strings.Join(rs, ", ")))
			} else {
				p = append(p, fmt.Sprintf("no route %s in the decision", r))
			}
		}
	}
	for _, r := range e.NotMatched {
		_, known := reasons[r]
		switch {
		case matched[r]:
			p = append(p, fmt.Sprintf("route %s matched, expected it not to", r))
		case !known:
			p = append(p, fmt.Sprintf("no route %s in the decision", r))
		}
	}
	return p
}

// toCR makes every line end of an HL7 message CR, as it is on the wire,
// and drops empty lines (a YAML block's trailing newline).
func toCR(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\r"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
	var out []byte
	for _, line := range bytes.Split(b, []byte("\r")) {
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(append(out, line...), '\r')
		}
	}
	return out
}

// segments splits a CR-terminated message into its segments.
func segments(b []byte) []string {
	return strings.Split(strings.TrimSuffix(string(b), "\r"), "\r")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
