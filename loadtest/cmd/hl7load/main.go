// Command hl7load measures an HL7 exchange: it sends load over MLLP, receives
// what the exchange delivers, and reports ACK and end-to-end latency,
// throughput, loss, duplicates and per-patient order.
//
//	hl7load run --target HOST:PORT --receiver HOST:PORT --rate N --connections N --duration D
//	            [--corpus DIR] [--patients N] [--drain D] [--json FILE] [--scenario FILE]
//	hl7load max --target ... --receiver ... [--objective-ms 50] [--step-duration 10s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hl7bus/hl7bus/loadtest/internal/load"
)

// scenario is a loadtest/scenarios/*.yaml file; flags override it.
type scenario struct {
	Name          string        `yaml:"name"`
	Rate          float64       `yaml:"rate"`
	Connections   int           `yaml:"connections"`
	Duration      time.Duration `yaml:"duration"`
	Patients      int           `yaml:"patients"`
	Corpus        string        `yaml:"corpus"`
	Drain         time.Duration `yaml:"drain"`
	ReceiverDelay time.Duration `yaml:"receiver_delay"`
	// AttachmentKB adds a base64 PDF of this size to every message.
	AttachmentKB int `yaml:"attachment_kb"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hl7load run|max [flags] (hl7load run -h)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "run":
		os.Exit(runCmd(ctx, os.Args[2:]))
	case "max":
		os.Exit(maxCmd(ctx, os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "hl7load: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

type flags struct {
	target, receiver, corpus, jsonOut, scenarioFile, pngOut string
	rate                                                    float64
	connections, patients                                   int
	duration, drain, receiverDelay                          time.Duration
}

func parse(name string, args []string, extra func(*flag.FlagSet)) (*flags, load.Config, error) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	f := &flags{}
	fs.StringVar(&f.target, "target", "127.0.0.1:2575", "the exchange's MLLP address")
	fs.StringVar(&f.receiver, "receiver", "127.0.0.1:2576", "where to receive what the exchange delivers")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second in all (0: closed loop, as fast as ACKs come)")
	fs.IntVar(&f.connections, "connections", 0, "MLLP connections (default 4)")
	fs.DurationVar(&f.duration, "duration", 0, "how long to send (default 10s)")
	fs.StringVar(&f.corpus, "corpus", "", "folder of .hl7 files to make messages from (default loadtest/corpus)")
	fs.IntVar(&f.patients, "patients", 0, "patient population (default 1000)")
	fs.DurationVar(&f.drain, "drain", 0, "how long to wait for deliveries after sending (default 60s)")
	fs.DurationVar(&f.receiverDelay, "receiver-delay", 0, "make the receiver this slow per message (a slow destination)")
	fs.StringVar(&f.jsonOut, "json", "", "write the report as JSON to FILE")
	fs.StringVar(&f.pngOut, "png", "", "write a plot of throughput and ACK latency over time to FILE (.png)")
	fs.StringVar(&f.scenarioFile, "scenario", "", "a loadtest/scenarios/*.yaml file; flags override it")
	if extra != nil {
		extra(fs)
	}
	_ = fs.Parse(args)
	sc := scenario{Connections: 4, Duration: 10 * time.Second, Patients: 1000, Drain: 60 * time.Second, Corpus: "loadtest/corpus"}
	if f.scenarioFile != "" {
		b, err := os.ReadFile(f.scenarioFile)
		if err != nil {
			return nil, load.Config{}, err
		}
		dec := yaml.NewDecoder(bytesReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&sc); err != nil {
			return nil, load.Config{}, fmt.Errorf("scenario %s: %w", f.scenarioFile, err)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["rate"] {
		sc.Rate = f.rate
	}
	if set["connections"] {
		sc.Connections = f.connections
	}
	if set["duration"] {
		sc.Duration = f.duration
	}
	if set["patients"] {
		sc.Patients = f.patients
	}
	if set["corpus"] {
		sc.Corpus = f.corpus
	}
	if set["drain"] {
		sc.Drain = f.drain
	}
	if set["receiver-delay"] {
		sc.ReceiverDelay = f.receiverDelay
	}
	corpus, err := load.LoadCorpus(sc.Corpus)
	if err != nil {
		return nil, load.Config{}, err
	}
	corpus.WithAttachment(sc.AttachmentKB)
	return f, load.Config{Name: sc.Name, Target: f.target, Receiver: f.receiver, Rate: sc.Rate, Connections: sc.Connections,
		Duration: sc.Duration, Patients: sc.Patients, Drain: sc.Drain, ReceiverDelay: sc.ReceiverDelay, Corpus: corpus}, nil
}

func runCmd(ctx context.Context, args []string) int {
	f, cfg, err := parse("run", args, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
		return 2
	}
	r, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
		return 1
	}
	r.Text(os.Stdout)
	if err := writeJSON(f.jsonOut, r); err != nil {
		fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
		return 1
	}
	if f.pngOut != "" {
		out, err := os.Create(f.pngOut)
		if err == nil {
			err = r.PNG(out)
			out.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "hl7load: --png: %v\n", err)
			return 1
		}
	}
	if r.Lost > 0 || r.OrderViolations > 0 {
		return 1
	}
	return 0
}

// maxCmd raises the rate until the ACK p99 objective breaks or a message is
// lost, and reports the highest rate that held.
func maxCmd(ctx context.Context, args []string) int {
	var objective float64
	var step time.Duration
	var from, factor float64
	f, cfg, err := parse("max", args, func(fs *flag.FlagSet) {
		fs.Float64Var(&objective, "objective-ms", 50, "ACK p99 objective in milliseconds")
		fs.DurationVar(&step, "step-duration", 10*time.Second, "how long to hold each rate")
		fs.Float64Var(&from, "from", 500, "first rate")
		fs.Float64Var(&factor, "factor", 1.25, "rate multiplier between steps")
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
		return 2
	}
	cfg.Duration = step
	var best *load.Report
	var steps []*load.Report
	for rate := from; ctx.Err() == nil; rate *= factor {
		cfg.Rate = rate
		r, err := load.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
			return 1
		}
		steps = append(steps, r)
		r.Text(os.Stdout)
		if r.Lost > 0 || r.AckLatency.P99 > objective || r.AchievedRate < 0.95*rate {
			break
		}
		best = r
	}
	if best == nil {
		fmt.Println("no rate met the objective")
	} else {
		fmt.Printf("maximum: %.0f msg/s with ACK p99 %.2f ms (objective %.0f ms) and no loss\n", best.TargetRate, best.AckLatency.P99, objective)
	}
	if err := writeJSON(f.jsonOut, map[string]any{"objective_ack_p99_ms": objective, "best": best, "steps": steps}); err != nil {
		fmt.Fprintf(os.Stderr, "hl7load: %v\n", err)
		return 1
	}
	return 0
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
