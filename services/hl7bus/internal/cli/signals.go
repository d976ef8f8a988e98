package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// logSIGHUP keeps SIGHUP from ending the process until ctx ends: its
// default action would kill the process without a word, and operators
// send it expecting a configuration reload. Each one is logged instead.
func logSIGHUP(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				log.Warn("SIGHUP received; configuration reload is not supported yet (restart to apply changes)")
			}
		}
	}()
}
