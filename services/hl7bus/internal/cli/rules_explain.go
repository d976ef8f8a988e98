package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

func runRulesExplain(args []string, env Env) int {
	fs := flag.NewFlagSet("rules explain", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", defaultRulesConfig, "configuration `FILE`")
	iface := fs.String("interface", "", "the interface `NAME` the message arrives on (required)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *iface == "" || fs.NArg() != 1 {
		fmt.Fprintln(env.Stderr, "usage: hl7bus rules explain [--config FILE] --interface NAME MSGFILE")
		return ExitUsage
	}
	var (
		payload []byte
		err     error
	)
	if fs.Arg(0) == "-" {
		payload, err = io.ReadAll(env.Stdin)
	} else {
		payload, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus rules explain: %v\n", err)
		return ExitUsage
	}
	ex, err := loadExchange(*path)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus rules explain: %v\n", err)
		return ExitUsage
	}
	tr, err := ex.run(context.Background(), receipt{Interface: *iface, MessageID: messageID("rules-explain", 1)}, toCR(payload))
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus rules explain: %v\n", err)
		return ExitUsage
	}
	_, _ = io.WriteString(env.Stdout, explain(ex, *iface, tr))
	return ExitOK
}

// explain renders a trace for a reader: parse's outcome when it is not
// one message (a dead letter, a batch), then for each message parse
// wrote, its transform outcome, each route's verdict, and the message
// each destination would receive. A batch's messages are labelled
// "message i of N", a split's parts (a rule's) "part i of M".
func explain(ex *exchange, iface string, tr *trace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration %s (version %s), interface %s\n", ex.file.Path(), ex.compiled.Version, iface)
	if len(tr.Parsed) == 0 {
		b.WriteString("\nparse:\n")
		dead := false
		for _, d := range tr.Dead {
			if d.Stage == "parse" {
				fmt.Fprintf(&b, "  %s\n", d)
				dead = true
			}
		}
		if !dead {
			b.WriteString("  an empty batch: no messages\n")
		}
		b.WriteString("\nno destination receives the message\n")
		return b.String()
	}
	if n := len(tr.Parsed); n > 1 {
		fmt.Fprintf(&b, "\nparse: a batch of %d messages\n", n)
		for i, sub := range tr.Parsed {
			fmt.Fprintf(&b, "\n== message %d of %d ==\n", i+1, n)
			explainOne(&b, sub, fmt.Sprintf("message %d of %d", i+1, n))
		}
		return b.String()
	}
	explainOne(&b, tr.Parsed[0], "")
	return b.String()
}

// explainOne renders the trace of one message parse wrote; label names it
// within its batch ("" for a lone message).
func explainOne(b *strings.Builder, tr *trace, label string) {
	fmt.Fprintf(b, "\ntransform%s:\n", paren(label))
	switch {
	case len(tr.Transformed) > 1:
		fmt.Fprintf(b, "  split by the inbound rules into %d messages\n", len(tr.Transformed))
	case len(tr.Transformed) == 1:
		b.WriteString("  1 message\n")
	}
	for _, f := range tr.Filtered {
		if f.Destination == "" {
			fmt.Fprintf(b, "  %s\n", f)
		}
	}
	for _, d := range tr.Dead {
		if d.Stage != "route" {
			fmt.Fprintf(b, "  %s\n", d)
		}
	}
	for i, t := range tr.Transformed {
		for _, is := range t.Issues {
			fmt.Fprintf(b, "  issue%s: %s\n", paren(child(tr, i, "")), issueText(is))
		}
	}
	for i, d := range tr.Decisions {
		fmt.Fprintf(b, "\nroute%s: %s\n", paren(child(tr, i, label)), d.Outcome)
		for _, r := range d.Routes {
			if r.Matched {
				fmt.Fprintf(b, "  %-8s %s -> %s\n", "matched", r.Route, strings.Join(r.Destinations, ", "))
			} else {
				fmt.Fprintf(b, "  %-8s %s: %s\n", "no", r.Route, r.Reason)
			}
		}
		for _, dd := range d.Destinations {
			if dd.Outcome != canonical.OutcomeRouted {
				fmt.Fprintf(b, "  %s: %s by rule %s: %s\n", dd.Destination, dd.Outcome, dd.Rule, dd.Reason)
			}
		}
	}
	for _, d := range tr.Dead {
		if d.Stage == "route" && d.Destination == "" {
			fmt.Fprintf(b, "  %s\n", d)
		}
	}
	for _, dest := range tr.Order {
		for i, o := range tr.Out[dest] {
			n := ""
			if len(tr.Out[dest]) > 1 {
				n = fmt.Sprintf(" [%d]", i+1)
			}
			at := "route " + o.Route
			if label != "" {
				at = label + ", " + at
			}
			fmt.Fprintf(b, "\ndestination %s%s (%s):\n", dest, n, at)
			for _, s := range segments(toCR(o.Payload)) {
				fmt.Fprintf(b, "  %s\n", s)
			}
		}
	}
	if len(tr.Order) == 0 {
		b.WriteString("\nno destination receives the message\n")
	}
}

// child labels the ith transformed record of one message: label (the
// message within its batch) and, after a split, "part i of M".
func child(tr *trace, i int, label string) string {
	if len(tr.Transformed) <= 1 {
		return label
	}
	rec := fmt.Sprintf("part %d of %d", i+1, len(tr.Transformed))
	if label == "" {
		return rec
	}
	return label + ", " + rec
}

// paren is " (s)", or "" for an empty s.
func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
