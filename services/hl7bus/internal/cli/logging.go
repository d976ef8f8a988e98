package cli

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// newLogger builds the process logger from the log section.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newTelemetry builds a process's telemetry from the configuration: the
// OTLP exporter when tracing.otlp_endpoint is set, pprof when http.pprof
// is. The returned function flushes buffered spans; call it on exit.
func newTelemetry(ctx context.Context, f *config.File, service string) (*telemetry.Telemetry, func(), error) {
	tp, shutdown, err := telemetry.NewTracerProvider(ctx, f.Tracing, service)
	if err != nil {
		return nil, nil, err
	}
	t := telemetry.New(tp)
	t.PProf = f.HTTP.PProf
	return t, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = shutdown(sctx)
	}, nil
}
