// Command hl7bus is the one binary of the exchange: every stage, the
// standalone mode and the operator tools are subcommands of it. main only
// wires the process to the command dispatcher.
package main

import (
	"os"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}))
}
