package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

// runStandalone returns the command that runs the modules of reg named by
// --targets (and their dependencies; default all) in one process.
func runStandalone(reg *modules.Registry) func([]string, Env) int {
	return func(args []string, env Env) int {
		fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
		fs.SetOutput(env.Stderr)
		path := fs.String("config", "", "configuration `FILE` (required)")
		dataDir := fs.String("data-dir", "", "data directory (overrides standalone.data_dir)")
		targets := fs.String("targets", "", "comma-separated `MODULES` to run, with their dependencies (default all; 'hl7bus --list-targets' lists them)")
		var sets stringList
		fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable; highest precedence)")
		if err := fs.Parse(args); err != nil {
			return ExitUsage
		}
		if *path == "" || fs.NArg() > 0 {
			fmt.Fprintln(env.Stderr, "usage: hl7bus standalone --config FILE [--targets MODULE,...] [--data-dir DIR] [--set KEY=VALUE]...")
			return ExitUsage
		}
		mods, err := reg.Resolve(modules.ParseTargets(*targets))
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus standalone: --targets: %v\n", err)
			return ExitUsage
		}
		f, err := config.Load(*path, sets...)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
			return ExitUsage
		}
		// What the flags do to the file, here and on every reload.
		prepare := func(f *config.File) error {
			if *dataDir != "" {
				f.Standalone.DataDir = *dataDir
			}
			f.ForStandalone()
			return standalone.Validate(f)
		}
		if err := errors.Join(prepare(f), f.Validate()); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: invalid configuration %s:\n%v\n", *path, err)
			return ExitUsage
		}
		// One instance of each stage: a stable instance ID, so a restarted
		// process takes its partitions back at once (static membership) and
		// its transactional IDs fence the transactions its killed
		// predecessor left open.
		f.Kafka.Instance = "standalone"
		log := newLogger(f.Log, env.Stderr)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		tel, flush, err := newTelemetry(ctx, f, "hl7bus-standalone")
		if err != nil {
			log.Error("cannot start", logattr.Error(err))
			return ExitInvalid
		}
		defer flush()
		deps := modules.NewDeps(log, tel, "standalone")
		// Closed after the reloader has stopped (defers run last first).
		defer deps.Close()
		wait := reloadOnSIGHUP(ctx, log, deps, *path, sets, prepare)
		defer wait()
		defer stop() // the reloader ends with ctx, before wait
		if f.HTTP.Address != "off" {
			addr, err := tel.Serve(ctx, f.HTTP.Address)
			if err != nil {
				log.Error("cannot serve metrics", logattr.Error(err))
				return ExitInvalid
			}
			log.Info("serving /metrics, /healthz and /readyz", logattr.Address(addr))
		}
		if err := modules.Run(ctx, f, deps, mods, modules.DefaultShutdownTimeout); err != nil {
			log.Error("stopped with an error", logattr.Error(err))
			return ExitInvalid
		}
		log.Info("stopped")
		return ExitOK
	}
}
