package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

const inspectUsage = `usage: hl7bus inspect [--get PATH]... [--profile FILE] [--compact] FILE...

Parses each FILE (a message, several messages, or an FHS/BHS batch file;
- reads standard input) and prints every message as JSON: the header
summary, the segments with their fields, and the validation report.

With --get, prints instead one line per message: the decoded value at each
PATH (PID-3[2].1, OBX[3]-5, MSH-9.2 ...), tab-separated in the order given.
Tabs, CRs, LFs and backslashes inside values are written as \t \r \n \\ so
that one message stays one line.

Exit status: 0 when every message parses and has no validation error, 1 when
any file or message does not parse or has a validation error, 2 on usage
errors.

options:
`

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// inspectOutput is one message as inspect prints it.
type inspectOutput struct {
	File       string              `json:"file"`
	Batch      int                 `json:"batch"`
	Index      int                 `json:"index"`
	Header     hl7v2.HeaderView    `json:"header"`
	Segments   []hl7v2.SegmentView `json:"segments"`
	Validation *hl7v2.Report       `json:"validation"`
}

func runInspect(args []string, env Env) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var gets stringList
	fs.Var(&gets, "get", "print the decoded value at `PATH` (repeatable)")
	profilePath := fs.String("profile", "", "validate against the conformance profile in `FILE`")
	compact := fs.Bool("compact", false, "print one JSON object per line instead of indented JSON")
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, inspectUsage)
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(env.Stderr, "hl7bus inspect: no FILE given")
		fs.Usage()
		return ExitUsage
	}
	paths := make([]hl7v2.Path, len(gets))
	for i, g := range gets {
		if paths[i], err = hl7v2.ParsePath(g); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus inspect: --get: %v\n", err)
			return ExitUsage
		}
	}
	var profile *hl7v2.Profile
	if *profilePath != "" {
		if profile, err = hl7v2.LoadProfile(*profilePath); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus inspect: --profile: %v\n", err)
			return ExitUsage
		}
	}
	validator := hl7v2.NewValidator(profile)
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	if !*compact {
		enc.SetIndent("", "  ")
	}

	status := ExitOK
	for _, name := range files {
		data, err := readInput(name, env.Stdin)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus inspect: %v\n", err)
			status = ExitInvalid
			continue
		}
		file, err := hl7v2.ParseBatch(data)
		if err != nil {
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
			status = ExitInvalid
			continue
		}
		for bi, b := range file.Batches {
			for mi, m := range b.Messages {
				report := validator.Validate(m)
				if !report.Valid() {
					status = ExitInvalid
				}
				if len(paths) > 0 {
					vals := make([]string, len(paths))
					for i, p := range paths {
						vals[i] = escapeLine(m.Value(p).String())
					}
					fmt.Fprintln(env.Stdout, strings.Join(vals, "\t"))
					continue
				}
				out := inspectOutput{File: name, Batch: bi + 1, Index: mi + 1, Header: m.HeaderView(), Segments: m.View(), Validation: report}
				if err := enc.Encode(out); err != nil {
					fmt.Fprintf(env.Stderr, "hl7bus inspect: writing output: %v\n", err)
					return ExitInvalid
				}
			}
		}
	}
	return status
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, as analysts type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "-" || !strings.HasPrefix(args[0], "-") {
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
	}
}

func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}

var lineEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\r", `\r`, "\n", `\n`)

func escapeLine(s string) string { return lineEscaper.Replace(s) }
