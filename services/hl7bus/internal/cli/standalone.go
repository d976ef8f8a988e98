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
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

func runStandalone(args []string, env Env) int {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "configuration `FILE` (required)")
	dataDir := fs.String("data-dir", "", "data directory (overrides standalone.data_dir)")
	var sets stringList
	fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable; highest precedence)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(env.Stderr, "usage: hl7bus standalone --config FILE [--data-dir DIR] [--set KEY=VALUE]...")
		return ExitUsage
	}
	f, err := config.Load(*path, sets...)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
		return ExitUsage
	}
	if *dataDir != "" {
		f.Standalone.DataDir = *dataDir
	}
	f.ForStandalone()
	if err := errors.Join(f.Validate(), standalone.Validate(f)); err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus: invalid configuration %s:\n%v\n", *path, err)
		return ExitUsage
	}
	// One instance of each stage: a stable instance ID, so a restarted
	// process takes its partitions back at once (static membership).
	f.Kafka.Instance = "standalone"
	log := newLogger(f.Log, env.Stderr)
	emb, err := standalone.StartEmbedded(f, log)
	if err != nil {
		log.Error("cannot start", logattr.Error(err))
		return ExitInvalid
	}
	defer emb.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logSIGHUP(ctx, log)
	tel, flush, err := newTelemetry(ctx, f, "hl7bus-standalone")
	if err != nil {
		log.Error("cannot start", logattr.Error(err))
		return ExitInvalid
	}
	defer flush()
	if err := standalone.Stages(ctx, f, tel, log); err != nil {
		log.Error("stopped with an error", logattr.Error(err))
		return ExitInvalid
	}
	log.Info("stopped")
	return ExitOK
}
