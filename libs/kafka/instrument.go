package kafka

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// errNoKey keeps record keys out of span attributes: our keys are ordering
// keys, which hold patient identifiers.
var errNoKey = errors.New("record keys are not traced")

// Instruments are the tracing and metrics hooks of one client.
type Instruments struct {
	// Tracer starts process spans for consumed records.
	Tracer *kotel.Tracer
	opts   []kgo.Opt
}

// Opts returns the client options that install the hooks.
func (i Instruments) Opts() []kgo.Opt { return i.opts }

// Instrument returns hooks for a client named client (a stage, or
// "egress-<destination>"): kotel spans for publish and receive with the
// service's tracer provider and W3C propagator, and kprom metrics
// hl7bus_kafka_* with the label client="<client>" (a name inside the
// metric name would make one metric per client, which no dashboard or
// alert can aggregate). Each client name may be instrumented once per
// registry.
func Instrument(t *telemetry.Telemetry, client string) Instruments {
	tracer := kotel.NewTracer(
		kotel.TracerProvider(t.TracerProvider),
		kotel.TracerPropagator(t.Propagator),
		kotel.ClientID(client),
		kotel.KeyFormatter(func(*kgo.Record) (string, error) { return "", errNoKey }),
	)
	k := kotel.NewKotel(kotel.WithTracer(tracer))
	m := kprom.NewMetrics("hl7bus_kafka", kprom.Registerer(t.Registry), kprom.WithStaticLabel(prometheus.Labels{"client": client}))
	hooks := append(k.Hooks(), m)
	return Instruments{Tracer: tracer, opts: []kgo.Opt{kgo.WithHooks(hooks...)}}
}
