// Package cli implements the hl7bus command line: a dispatcher over
// subcommands, each in its own file.
package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit statuses shared by every subcommand.
const (
	ExitOK      = 0
	ExitInvalid = 1 // the command ran and found something wrong
	ExitUsage   = 2 // the command line itself is wrong
)

// Env is what a command may touch of the process, so tests can run commands
// in-process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

type command struct {
	summary string
	run     func(args []string, env Env) int
}

var commands = map[string]command{
	"ingress":    {"run the ingress stage (MLLP listeners -> raw)", runStage("ingress")},
	"parse":      {"run the parse stage (raw -> parsed)", runStage("parse")},
	"transform":  {"run the transform stage (parsed -> transformed)", runStage("transform")},
	"route":      {"run the route stage (transformed -> out.<destination>)", runStage("route")},
	"egress":     {"run the egress stage (out.<destination> -> receivers)", runStage("egress")},
	"inspect":    {"print messages as JSON, or values at paths, with validation", runInspect},
	"standalone": {"run the whole exchange in one process on the embedded broker", runStandalone},
	"send":       {"send messages over MLLP and print each ACK", runSend},
	"receive":    {"an MLLP receiver that ACKs and prints or stores what it gets", runReceive},
	"config":     {"validate or print a configuration file", runConfig},
	"tail":       {"print a topic's records decoded to JSON lines", runTail},
}

// Main runs the subcommand named by args[0] and returns the exit status.
func Main(args []string, env Env) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "hl7bus: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return ExitUsage
	}
	return cmd.run(args[1:], env)
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: hl7bus COMMAND [options]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'hl7bus COMMAND -h' for a command's options.\n")
	_, _ = io.WriteString(w, b.String())
}
