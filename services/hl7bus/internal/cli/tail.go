package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

const tailUsage = `usage: hl7bus tail [--config FILE] [--data-dir DIR] [--from-beginning] [--max N] TOPIC

Prints the records of TOPIC (raw, parsed, transformed, out.lis, dlq.parse,
delivery...; the configured prefix is added when missing) as JSON lines,
decoded with their schemas from the registry. Byte fields that are text
(HL7 payloads) print as text, others as base64. It prints message content.

With a standalone configuration (no kafka.brokers), it reads the embedded
broker and registry with the credentials in the data directory's secrets/
(standalone.data_dir, or --data-dir as given to hl7bus standalone).

options:
`

func runTail(args []string, env Env) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	path := fs.String("config", "deploy/standalone/hl7bus.yaml", "configuration `FILE` naming the brokers and registry (a standalone file means its embedded ones)")
	fromStart := fs.Bool("from-beginning", false, "start at the oldest record instead of the newest")
	max := fs.Int("max", 0, "stop after N records (0: follow until interrupted)")
	var sets stringList
	fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable)")
	committed := fs.Bool("committed", true, "read only records of committed transactions")
	dataDir := fs.String("data-dir", "", "data directory of the standalone whose embedded broker to read (overrides standalone.data_dir)")
	fs.Usage = func() { fmt.Fprint(env.Stderr, tailUsage); fs.PrintDefaults() }
	rest, err := parseInterleaved(fs, args)
	if err != nil || len(rest) != 1 {
		if err == nil {
			fs.Usage()
		}
		return ExitUsage
	}
	f, err := config.Load(*path, sets...)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus tail: %v\n", err)
		return ExitUsage
	}
	if *dataDir != "" {
		f.Standalone.DataDir = *dataDir
	}
	if len(f.Kafka.Brokers) == 0 {
		// The embedded default: its broker and registry, logged in to
		// with the credentials the standalone generated.
		if err := standalone.UseEmbedded(f); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus tail: %v\n", err)
			return ExitInvalid
		}
	}
	topic := rest[0]
	if !strings.HasPrefix(topic, f.Kafka.TopicPrefix) {
		topic = f.Kafka.TopicPrefix + topic
	}
	cl, err := f.Registry.Client()
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus tail: %v\n", err)
		return ExitUsage
	}
	serde := canonical.NewSerde(cl)
	consumer, err := kafka.NewReader(f.Kafka, newLogger(config.Log{Level: "warn", Format: "text"}, env.Stderr), topic, *fromStart, *committed)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus tail: %v\n", err)
		return ExitInvalid
	}
	defer consumer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	enc := json.NewEncoder(env.Stdout)
	enc.SetEscapeHTML(false)
	n := 0
	for ctx.Err() == nil && (*max == 0 || n < *max) {
		fetches := consumer.PollFetches(ctx)
		fetches.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil {
				fmt.Fprintf(env.Stderr, "hl7bus tail: %s[%d]: %v\n", t, p, err)
			}
		})
		for it := fetches.RecordIter(); !it.Done() && (*max == 0 || n < *max); n++ {
			r := it.Next()
			line := map[string]any{"topic": r.Topic, "partition": r.Partition, "offset": r.Offset,
				"timestamp": r.Timestamp.UTC().Format(time.RFC3339Nano), "key": string(r.Key)}
			if v, err := serde.DecodeNative(ctx, r.Value); err != nil {
				line["error"] = err.Error()
			} else {
				line["value"] = jsonable(v)
			}
			if err := enc.Encode(line); err != nil {
				return ExitInvalid
			}
		}
	}
	return ExitOK
}

// jsonable turns goavro's native values into what reads well as JSON:
// unions unwrapped, text bytes as strings, times in RFC 3339.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, inner := range x {
				if isAvroType(k) {
					return jsonable(inner)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case []byte:
		if utf8.Valid(x) {
			return strings.ReplaceAll(string(x), "\r", "\n")
		}
		return "base64:" + base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// isAvroType reports whether a single map key is a union branch name.
func isAvroType(k string) bool {
	switch k {
	case "null", "string", "bytes", "int", "long", "float", "double", "boolean", "array", "map":
		return true
	}
	return strings.HasPrefix(k, "org.hl7bus.")
}
