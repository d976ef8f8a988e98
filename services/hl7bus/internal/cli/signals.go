package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
)

// reloadOnSIGHUP runs the reloader of the stages built with deps until
// ctx ends: SIGHUP (whose default action would end the process without a
// word) and a change of the configuration file or one of its tables
// reload the rules, tables and routes. path, sets and prepare load the
// file as the command did. The returned function waits for the reloader
// to end; call it after ctx is cancelled. SIGHUP is caught from the
// moment this returns, even if the reloader cannot start.
func reloadOnSIGHUP(ctx context.Context, log *slog.Logger, deps modules.Deps, path string, sets []string, prepare func(*config.File) error) (wait func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	rl, err := modules.NewReloader(modules.ReloadConfig{Path: path, Overrides: sets, Prepare: prepare, Signals: ch}, deps)
	go func() {
		defer close(done)
		defer signal.Stop(ch)
		if err != nil {
			// The file loaded a moment ago; if it no longer does, the
			// process runs on what it loaded, and SIGHUP only says so.
			log.Error("cannot start the configuration reloader; restart to apply changes", logattr.Error(err))
			for {
				select {
				case <-ctx.Done():
					return
				case <-ch:
					log.Warn("SIGHUP received; the configuration reloader did not start (restart to apply changes)")
				}
			}
		}
		_ = rl.Run(ctx)
	}()
	return func() { <-done }
}
