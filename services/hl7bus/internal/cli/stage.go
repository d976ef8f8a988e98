package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

// runStage returns the command that runs one stage module against the
// brokers and registry of the configuration, as each Kubernetes Deployment
// does. Its dependencies (broker, registry) are not run: they are the
// configured ones, or, for a standalone file that names none, the embedded
// ones of a standalone running on the same host (`hl7bus standalone
// --targets broker,registry`), logged in to with the credentials in its
// data directory.
func runStage(m modules.Module) func([]string, Env) int {
	name := m.Name
	return func(args []string, env Env) int {
		st, code := parseStage(m, args, env)
		if code != ExitOK {
			return code
		}
		f, instance := st.f, st.instance
		log := newLogger(f.Log, env.Stderr).With(logattr.Instance(instance))
		tel, flush, err := newTelemetry(context.Background(), f, "hl7bus-"+name)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
			return ExitUsage
		}
		defer flush()
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		deps := modules.NewDeps(log, tel, instance)
		// Closed after the reloader has stopped (defers run last first).
		defer deps.Close()
		wait := reloadOnSIGHUP(ctx, log, deps, st.path, st.sets, st.prepare)
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
		if err := modules.Run(ctx, f, deps, []modules.Module{m}, modules.DefaultShutdownTimeout); err != nil {
			log.Error("stage stopped with an error", logattr.Error(err))
			return ExitInvalid
		}
		return ExitOK
	}
}

// stageArgs is a stage command's parsed flags and the file they load.
type stageArgs struct {
	// f is the loaded, prepared and validated file.
	f *config.File
	// path, sets and prepare load the file again as this run did (for
	// the reloader).
	path     string
	sets     []string
	prepare  func(*config.File) error
	instance string
}

// parseStage parses a stage command's flags (the common ones and the
// module's own, Module.Flags), loads, prepares and validates the file;
// a code other than ExitOK is the command's exit code, said on stderr.
func parseStage(m modules.Module, args []string, env Env) (*stageArgs, int) {
	name := m.Name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "", "configuration `FILE` (required)")
	var sets stringList
	fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable; highest precedence)")
	httpAddr := fs.String("http-address", "", "address for /metrics, /healthz and /readyz (overrides http.address; \"off\" for none)")
	instance := fs.String("instance", "", "instance name, unique among running instances of the stage and stable across its restarts (default: the host name)")
	dataDir := fs.String("data-dir", "", "with a standalone configuration (no kafka.brokers): the data directory of the standalone whose embedded broker to use (overrides standalone.data_dir)")
	var own func(*config.File)
	if m.Flags != nil {
		own = m.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, ExitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "usage: hl7bus %s --config FILE [--instance NAME] [--http-address ADDR] [--data-dir DIR]%s\n", name, ownFlags(fs))
		return nil, ExitUsage
	}
	f, err := config.Load(*path, sets...)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
		return nil, ExitUsage
	}
	// What the flags do to the file, here and on every reload.
	prepare := func(f *config.File) error {
		if *httpAddr != "" {
			f.HTTP.Address = *httpAddr
		}
		if *dataDir != "" {
			f.Standalone.DataDir = *dataDir
		}
		if own != nil {
			own(f)
		}
		if len(f.Kafka.Brokers) == 0 && f.Registry.URL == "" {
			// A standalone file: the embedded broker and registry of a
			// standalone on this host, with the credentials it generated.
			return standalone.UseEmbedded(f)
		}
		return nil
	}
	if err := prepare(f); err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus %s: %v\n", name, err)
		return nil, ExitInvalid
	}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus: invalid configuration %s:\n%v\n", *path, err)
		return nil, ExitUsage
	}
	if *instance == "" {
		// A StatefulSet pod name (or host name) is stable across restarts.
		*instance, _ = os.Hostname()
	}
	// The instance names the stage's static group membership too.
	f.Kafka.Instance = *instance
	return &stageArgs{f: f, path: *path, sets: sets, prepare: prepare, instance: *instance}, ExitOK
}

// commonStageFlags are the flags every stage command has; the usage
// line names the others (a module's own).
var commonStageFlags = map[string]bool{"config": true, "set": true, "http-address": true, "instance": true, "data-dir": true}

// ownFlags is " [--NAME]..." for the module's own flags of fs.
func ownFlags(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(fl *flag.Flag) {
		if !commonStageFlags[fl.Name] {
			b.WriteString(" [--" + fl.Name + "]")
		}
	})
	return b.String()
}
