package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// runStage returns the command that runs one stage against the brokers and
// registry of the configuration, as each Kubernetes Deployment does.
func runStage(name string) func([]string, Env) int {
	return func(args []string, env Env) int {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(env.Stderr)
		path := fs.String("config", "", "configuration `FILE` (required)")
		var sets stringList
		fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable; highest precedence)")
		httpAddr := fs.String("http-address", "", "address for /metrics, /healthz and /readyz (overrides http.address; \"off\" for none)")
		instance := fs.String("instance", "", "instance name, unique among running instances of the stage and stable across its restarts (default: the host name)")
		if err := fs.Parse(args); err != nil {
			return ExitUsage
		}
		if *path == "" || fs.NArg() > 0 {
			fmt.Fprintf(env.Stderr, "usage: hl7bus %s --config FILE [--instance NAME]\n", name)
			return ExitUsage
		}
		f, err := config.Load(*path, sets...)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
			return ExitUsage
		}
		if *httpAddr != "" {
			f.HTTP.Address = *httpAddr
		}
		if err := f.Validate(); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: invalid configuration %s:\n%v\n", *path, err)
			return ExitUsage
		}
		if *instance == "" {
			// A StatefulSet pod name (or host name) is stable across restarts.
			*instance, _ = os.Hostname()
		}
		// The instance names the stage's static group membership too.
		f.Kafka.Instance = *instance
		log := newLogger(f.Log, env.Stderr).With(logattr.Instance(*instance))
		cl, err := f.Registry.Client()
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
			return ExitUsage
		}
		serde := canonical.NewSerde(cl)
		tel, flush, err := newTelemetry(context.Background(), f, "hl7bus-"+name)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
			return ExitUsage
		}
		defer flush()
		parser, err := f.Parser.NewParser() // validated above
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus: parser.%v\n", err)
			return ExitUsage
		}
		var st interface{ Run(context.Context) error }
		switch name {
		case "ingress":
			st = ingress.New(ingress.Config{Interfaces: f.Interfaces, Telemetry: tel, Parser: parser}, f.Kafka, serde, log)
		case "parse":
			profiles, err := f.Profiles()
			if err != nil {
				fmt.Fprintf(env.Stderr, "hl7bus: %v\n", err)
				return ExitUsage
			}
			st = parse.New(parse.Config{Instance: *instance, Telemetry: tel, Profiles: profiles, Parser: parser}, f.Kafka, serde, log)
		case "transform":
			st = transform.New(transform.Config{Instance: *instance, Telemetry: tel, Parser: parser}, f.Kafka, serde, log)
		case "route":
			st = route.New(route.Config{Instance: *instance, Rules: f.Routes, Telemetry: tel}, f.Kafka, serde, log)
		case "egress":
			st = egress.New(egress.Config{Destinations: f.Destinations, Telemetry: tel}, f.Kafka, serde, log)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		logSIGHUP(ctx, log)
		if f.HTTP.Address != "off" {
			addr, err := tel.Serve(ctx, f.HTTP.Address)
			if err != nil {
				log.Error("cannot serve metrics", logattr.Error(err))
				return ExitInvalid
			}
			log.Info("serving /metrics, /healthz and /readyz", logattr.Address(addr))
		}
		if err := st.Run(ctx); err != nil {
			log.Error("stage stopped with an error", logattr.Error(err))
			return ExitInvalid
		}
		return ExitOK
	}
}
