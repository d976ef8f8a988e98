package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

func runSend(args []string, env Env) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for each ACK")
	raw := fs.Bool("raw", false, "send each file's bytes as one frame, unparsed (to test how a peer rejects bad input)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: hl7bus send [--timeout D] ADDR FILE...\n\nSends every message of each FILE (batch files are split) over MLLP to\nADDR and prints one line per message: file, ACK code, MSA-2, latency.\nExit status 1 when any message is not accepted (AA/CA).")
		fs.PrintDefaults()
	}
	rest, err := parseInterleaved(fs, args)
	if err != nil || len(rest) < 2 {
		if err == nil {
			fs.Usage()
		}
		return ExitUsage
	}
	addr, files := rest[0], rest[1:]
	c := mllp.NewClient(addr, mllp.WithAckTimeout(*timeout), mllp.WithBackoff(100*time.Millisecond, time.Second))
	defer c.Close()
	status := ExitOK
	for _, name := range files {
		data, err := readInput(name, env.Stdin)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus send: %v\n", err)
			status = ExitInvalid
			continue
		}
		var frames [][]byte
		var ids []string
		if *raw {
			frames, ids = [][]byte{data}, []string{"-"}
		} else {
			file, err := hl7v2.ParseBatch(data)
			if err != nil {
				fmt.Fprintf(env.Stderr, "%s: %v (use --raw to send it anyway)\n", name, err)
				status = ExitInvalid
				continue
			}
			for _, m := range file.Messages() {
				frames, ids = append(frames, m.Bytes()), append(ids, m.ControlID())
			}
		}
		for i, frame := range frames {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout+time.Second)
			start := time.Now()
			reply, err := c.Send(ctx, frame)
			cancel()
			latency := time.Since(start)
			if err != nil {
				fmt.Fprintf(env.Stdout, "%s\tERROR\t%s\t%s\t%v\n", name, ids[i], latency.Round(time.Microsecond), err)
				status = ExitInvalid
				continue
			}
			ack, err := hl7v2.ParseACK(reply)
			if err != nil {
				fmt.Fprintf(env.Stdout, "%s\tBADACK\t%s\t%s\t%v\n", name, ids[i], latency.Round(time.Microsecond), err)
				status = ExitInvalid
				continue
			}
			fmt.Fprintf(env.Stdout, "%s\t%s\t%s\t%s\n", name, ack.Code, ack.ControlID, latency.Round(time.Microsecond))
			if !ack.Accepted() {
				status = ExitInvalid
			}
		}
	}
	return status
}
