package cli

import (
	"errors"
	"fmt"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

func runConfig(args []string, env Env) int {
	if len(args) != 2 || (args[0] != "validate" && args[0] != "print") {
		fmt.Fprintln(env.Stderr, "usage: hl7bus config validate FILE\n       hl7bus config print FILE")
		return ExitUsage
	}
	f, err := config.Load(args[1])
	if err != nil {
		fmt.Fprintf(env.Stderr, "%v\n", err)
		return ExitInvalid
	}
	var embedded error
	if len(f.Kafka.Brokers) == 0 && f.Registry.URL == "" {
		// A file for standalone mode names neither; validate it as such.
		f.ForStandalone()
		embedded = standalone.Validate(f)
	}
	if err := errors.Join(f.Validate(), embedded); err != nil {
		fmt.Fprintf(env.Stderr, "%s is invalid:\n%v\n", args[1], err)
		return ExitInvalid
	}
	if args[0] == "print" {
		out, err := f.Print()
		if err != nil {
			fmt.Fprintf(env.Stderr, "%v\n", err)
			return ExitInvalid
		}
		_, _ = env.Stdout.Write(out)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "%s is valid\n", args[1])
	return ExitOK
}
