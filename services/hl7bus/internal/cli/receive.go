package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

func runReceive(args []string, env Env) int {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	outDir := fs.String("out", "", "store each message as DIR/<MSH-10>.hl7 instead of printing it")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: hl7bus receive [--out DIR] ADDR\n\nAn MLLP receiver: ACKs (AA) every message it gets and prints it, one\nsegment per line, or stores it in DIR. For tests and the tour; it prints\nmessage content.")
		fs.PrintDefaults()
	}
	rest, err := parseInterleaved(fs, args)
	if err != nil || len(rest) != 1 {
		if err == nil {
			fs.Usage()
		}
		return ExitUsage
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus receive: --out: %v\n", err)
			return ExitUsage
		}
	}
	var mu sync.Mutex
	srv := mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, frame []byte) ([]byte, error) {
		m, err := hl7v2.Parse(frame)
		if err != nil {
			mu.Lock()
			fmt.Fprintf(env.Stderr, "received an unparseable message: %v\n", err)
			mu.Unlock()
			return nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if *outDir != "" {
			name := filepath.Join(*outDir, safeName(m.ControlID())+".hl7")
			if err := os.WriteFile(name, m.Bytes(), 0o644); err != nil {
				return nil, fmt.Errorf("storing message: %w", err)
			}
			fmt.Fprintf(env.Stdout, "%s\t%s\n", time.Now().Format(time.RFC3339), name)
		} else {
			fmt.Fprintf(env.Stdout, "%s\n", strings.ReplaceAll(strings.TrimRight(string(m.Bytes()), "\r"), "\r", "\n"))
			fmt.Fprintln(env.Stdout)
		}
		ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: hl7v2.AckAccept})
		if err != nil {
			return nil, nil // an ACK is never acknowledged
		}
		return ack.Bytes(), nil
	}))
	ln, err := net.Listen("tcp", rest[0])
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus receive: %v\n", err)
		return ExitInvalid
	}
	fmt.Fprintf(env.Stderr, "receiving MLLP on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != mllp.ErrClosed {
		fmt.Fprintf(env.Stderr, "hl7bus receive: %v\n", err)
		return ExitInvalid
	}
	return ExitOK
}

// safeName keeps a control ID usable as a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}
