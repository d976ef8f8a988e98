package modules

import (
	"context"
	"log/slog"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// Default returns the modules of hl7bus, dependencies first. A new stage
// is one entry here (its constructor below). It panics if the table is
// inconsistent, a programming error its test catches.
func Default() *Registry {
	// What every stage needs: in a standalone they run in the process; a
	// stage process finds them through kafka.brokers and registry.url.
	embedded := []string{"broker", "registry"}
	r, err := NewRegistry(
		Module{Name: "broker", Embedded: true, New: newBroker,
			Summary: "the embedded Kafka-protocol broker (kfake) on standalone.kafka_address, SASL/SCRAM"},
		Module{Name: "registry", Embedded: true, New: newSchemaRegistry,
			Summary: "the embedded schema registry on standalone.registry_address, basic auth"},
		Module{Name: "ingress", Deps: embedded, Outputs: []string{kafka.TopicRaw}, New: newIngress,
			Summary: "run the ingress stage (MLLP listeners -> raw)"},
		Module{Name: "parse", Deps: embedded, Input: kafka.TopicRaw, Outputs: []string{kafka.TopicParsed, "dlq.parse"}, New: newParse,
			Summary: "run the parse stage (raw -> parsed)"},
		Module{Name: "transform", Deps: embedded, Input: kafka.TopicParsed, Outputs: []string{kafka.TopicTransformed, kafka.TopicDecisions, "dlq.transform"}, New: newTransform,
			Summary: "run the transform stage (parsed -> transformed)"},
		Module{Name: "route", Deps: embedded, Input: kafka.TopicTransformed, Outputs: []string{"out.<destination>", kafka.TopicDecisions, "dlq.route"}, New: newRoute,
			Summary: "run the route stage (transformed -> out.<destination>)"},
		Module{Name: "egress", Deps: embedded, Input: "out.<destination>", Outputs: []string{kafka.TopicDelivery, "dlq.egress"}, New: newEgress,
			Summary: "run the egress stage (out.<destination> -> receivers)"},
		Module{Name: "index", Deps: embedded, Input: kafka.TopicRaw, Outputs: nil, New: newIndex, Flags: indexFlags,
			Summary: "run the message index (every topic -> SQLite or PostgreSQL)"},
		// admin re-sends records into raw, parsed, transformed and
		// out.<destination> when a replay job runs; those are not listed
		// as outputs so the stages' shutdown order stays theirs (a job
		// is resumed from the replay topic after a restart).
		Module{Name: "admin", Deps: embedded, Input: kafka.TopicReplay, Outputs: []string{kafka.TopicAudit, kafka.TopicControl, kafka.TopicReplay}, New: newAdmin,
			Summary: "run the admin API (search, message journeys, dead letters, replay jobs, destination control, audit) on admin.address"},
	)
	if err != nil {
		panic(err)
	}
	return r
}

// brokerService is the embedded broker: Start binds it and points
// f.Kafka at it; Run holds it until its context ends, then closes it
// (saving its state).
type brokerService struct {
	f      *config.File
	log    *slog.Logger
	broker *standalone.Broker
}

func newBroker(f *config.File, d Deps) (Service, error) {
	return &brokerService{f: f, log: d.Log}, nil
}

func (s *brokerService) Start(context.Context) error {
	b, err := standalone.StartBroker(s.f, s.log)
	s.broker = b
	return err
}

func (s *brokerService) Run(ctx context.Context) error {
	<-ctx.Done()
	s.broker.Close()
	return nil
}

// registryService is the embedded schema registry, as brokerService.
type registryService struct {
	f   *config.File
	log *slog.Logger
	reg *standalone.SchemaRegistry
}

func newSchemaRegistry(f *config.File, d Deps) (Service, error) {
	return &registryService{f: f, log: d.Log}, nil
}

func (s *registryService) Start(context.Context) error {
	r, err := standalone.StartRegistry(s.f, s.log)
	s.reg = r
	return err
}

func (s *registryService) Run(ctx context.Context) error {
	<-ctx.Done()
	s.reg.Close()
	return nil
}

// ingressService runs ingress under the runner's lifecycle: Start opens
// the listeners (dependents start after), Stop closes them and drains what
// is in flight, ACKs included; Run only waits.
type ingressService struct{ *ingress.Service }

func newIngress(f *config.File, d Deps) (Service, error) {
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	parser, err := d.Parser(f)
	if err != nil {
		return nil, err
	}
	return ingressService{ingress.New(ingress.Config{Interfaces: f.Interfaces, Telemetry: d.Telemetry, Parser: parser}, f.Kafka, serde, d.Log)}, nil
}

func (ingressService) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func newParse(f *config.File, d Deps) (Service, error) {
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	profiles, err := f.Profiles()
	if err != nil {
		return nil, err
	}
	parser, err := d.Parser(f)
	if err != nil {
		return nil, err
	}
	return parse.New(parse.Config{Instance: d.Instance, Runtime: f.Stages, Telemetry: d.Telemetry, Profiles: profiles, Parser: parser}, f.Kafka, serde, d.Log), nil
}

func newTransform(f *config.File, d Deps) (Service, error) {
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	parser, err := d.Parser(f)
	if err != nil {
		return nil, err
	}
	// The service exists before the rules: Rules hands them to it and
	// registers it for reloads at once, so no reload can be missed.
	svc := transform.New(transform.Config{Instance: d.Instance, Runtime: f.Stages, Telemetry: d.Telemetry, Parser: parser}, f.Kafka, serde, d.Log)
	if _, err := d.Rules(f, func(c *config.Compiled) { svc.SetRules(c.Transform) }); err != nil {
		return nil, err
	}
	return svc, nil
}

func newRoute(f *config.File, d Deps) (Service, error) {
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	// Every configured destination gets its out topic, not only those
	// the routes name today: a reload may route to any of them.
	all := make([]string, len(f.Destinations))
	for i, dst := range f.Destinations {
		all[i] = dst.Name
	}
	parser, err := d.Parser(f)
	if err != nil {
		return nil, err
	}
	svc := route.New(route.Config{Instance: d.Instance, Runtime: f.Stages, Telemetry: d.Telemetry, Parser: parser, Destinations: all}, f.Kafka, serde, d.Log)
	if _, err := d.Rules(f, func(c *config.Compiled) { svc.SetRules(c.Route) }); err != nil {
		return nil, err
	}
	return svc, nil
}

func newEgress(f *config.File, d Deps) (Service, error) {
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	return egress.New(egress.Config{Destinations: f.Destinations, Telemetry: d.Telemetry}, f.Kafka, serde, d.Log), nil
}
