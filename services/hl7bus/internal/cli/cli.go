// Package cli implements the hl7bus command line: a dispatcher over
// subcommands, each in its own file.
package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
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

// commandTable returns the subcommands: one per stage of the module
// registry (the stage list is written there once) and the tools.
func commandTable(reg *modules.Registry) map[string]command {
	cmds := map[string]command{
		"inspect":    {"print messages as JSON, or values at paths, with validation", runInspect},
		"standalone": {"run the exchange (or --targets) in one process on the embedded broker", runStandalone(reg)},
		"send":       {"send messages over MLLP and print each ACK", runSend},
		"receive":    {"an MLLP receiver that ACKs and prints or stores what it gets", runReceive},
		"config":     {"validate or print a configuration file", runConfig},
		"tail":       {"print a topic's records decoded to JSON lines", runTail},
		"rules":      {"test or explain the configuration's rules, tables and routes", runRules},
		// Clients of the admin API (apiclient.go).
		"messages":     {"find messages in the index and show one (admin API)", runMessages},
		"dlq":          {"list, replay or discard dead letters (admin API)", runDLQ},
		"replay":       {"plan, start, list and cancel replay jobs (admin API)", runReplay},
		"destinations": {"list, pause, resume or reset destinations (admin API)", runDestinations},
	}
	for _, m := range reg.Modules() {
		if !m.Embedded {
			cmds[m.Name] = command{m.Summary, runStage(m)}
		}
	}
	return cmds
}

// Main runs the subcommand named by args[0] and returns the exit status.
func Main(args []string, env Env) int {
	reg := modules.Default()
	commands := commandTable(reg)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout, commands)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "--list-targets" || args[0] == "-list-targets" {
		if len(args) > 1 {
			fmt.Fprintln(env.Stderr, "usage: hl7bus --list-targets")
			return ExitUsage
		}
		if err := reg.WriteList(env.Stdout); err != nil {
			return ExitInvalid
		}
		return ExitOK
	}
	if len(args) > 1 && args[0] == "admin" && args[1] == "tokens" {
		// Token management edits the tokens file; it runs no stage.
		return runAdminTokens(args[2:], env)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "hl7bus: unknown command %q\n\n", args[0])
		usage(env.Stderr, commands)
		return ExitUsage
	}
	return cmd.run(args[1:], env)
}

func usage(w io.Writer, commands map[string]command) {
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: hl7bus COMMAND [options]\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-*s %s\n", width, n, commands[n].summary)
	}
	b.WriteString("\nRun 'hl7bus COMMAND -h' for a command's options, 'hl7bus --list-targets' for the modules\n" +
		"'hl7bus standalone --targets' can run.\n")
	_, _ = io.WriteString(w, b.String())
}
