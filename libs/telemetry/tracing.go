package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracingConfig is the tracing section of the configuration.
type TracingConfig struct {
	// OTLPEndpoint is the OTLP/HTTP endpoint spans are exported to, e.g.
	// http://otel-collector:4318 (/v1/traces is added when no path is given). Empty (the default) exports nothing;
	// trace context is still propagated, so peers continue the trace.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1. Default 1.
	// A trace a sender started keeps the sender's decision.
	SampleRatio float64 `yaml:"sample_ratio"`
}

// Validate reports problems, each naming its key.
func (c TracingConfig) Validate() error {
	var errs []error
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("tracing.otlp_endpoint: %q is not an http(s) URL", c.OTLPEndpoint))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("tracing.sample_ratio: %v is not between 0 and 1", c.SampleRatio))
	}
	return errors.Join(errs...)
}

// NewTracerProvider returns the tracer provider of service: exporting in
// batches over OTLP/HTTP when an endpoint is configured, a no-op one
// otherwise. shutdown flushes what is buffered; call it when the process
// stops.
func NewTracerProvider(ctx context.Context, c TracingConfig, service string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	if c.OTLPEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	endpoint := c.OTLPEndpoint
	// Like OTEL_EXPORTER_OTLP_ENDPOINT, a base address gets the traces path;
	// a URL with a path is used as it is.
	if u, err := url.Parse(endpoint); err == nil && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/traces"
		endpoint = u.String()
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	ratio := c.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	p := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	return p, p.Shutdown, nil
}
