// Package config is the model of the hl7bus configuration file and its
// loading: one YAML file (every key overridable by HL7BUS_* environment
// variables, e.g. HL7BUS_KAFKA_TOPIC_PREFIX), validated as a whole with
// errors that name the key. Each stage takes its part.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/sr"

	libconfig "github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/libs/hl7v2"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/route"
)

// File is the whole configuration file.
type File struct {
	Log          Log                     `yaml:"log"`
	HTTP         HTTP                    `yaml:"http"`
	Tracing      telemetry.TracingConfig `yaml:"tracing"`
	Kafka        kafka.Config            `yaml:"kafka"`
	Registry     Registry                `yaml:"registry"`
	Interfaces   []ingress.Interface     `yaml:"interfaces"`
	Destinations []egress.Destination    `yaml:"destinations"`
	Routes       []route.Rule            `yaml:"routes"`
	Standalone   Standalone              `yaml:"standalone"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// HTTP configures the endpoint serving /metrics, /healthz and /readyz.
type HTTP struct {
	// Address to listen on. Default 127.0.0.1:9464 (Prometheus exporters'
	// customary range); empty after defaults only if set to "off".
	Address string `yaml:"address"`
	// PProf serves Go's /debug/pprof profiles there too. Default false.
	PProf bool `yaml:"pprof"`
}

// Registry locates the Confluent-compatible schema registry.
type Registry struct {
	URL string `yaml:"url"`
	// Username and Password, when set, authenticate with HTTP basic auth.
	Username string           `yaml:"username"`
	Password libconfig.Secret `yaml:"password"`
}

// Client returns a registry client.
func (r Registry) Client() (*sr.Client, error) {
	opts := []sr.ClientOpt{sr.URLs(r.URL)}
	if r.Username != "" {
		opts = append(opts, sr.BasicAuth(r.Username, r.Password.Value()))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return cl, nil
}

// Standalone configures `hl7bus standalone`: the embedded broker and
// registry. kafka.brokers and registry.url are set from it.
type Standalone struct {
	// DataDir holds the broker's log and the registry's schemas.
	// Default ./hl7bus-data.
	DataDir string `yaml:"data_dir"`
	// KafkaAddress is where the embedded broker listens. Default
	// 127.0.0.1:9092.
	KafkaAddress string `yaml:"kafka_address"`
	// RegistryAddress is where the embedded registry listens. Default
	// 127.0.0.1:8081.
	RegistryAddress string `yaml:"registry_address"`
	// SyncWrites fsyncs every produce before it is acknowledged, so a
	// power loss cannot lose an ACKed message; without it a killed process
	// loses nothing (the data is in the OS page cache) but a machine crash
	// may. Default false.
	SyncWrites bool `yaml:"sync_writes"`
}

// Load reads path and returns the configuration with the precedence
// defaults < file < HL7BUS_* environment variables < overrides (the
// --set KEY=VALUE flags; a list takes comma-separated values). Unknown keys
// are errors. It does not validate; call Validate.
func Load(path string, overrides ...string) (*File, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	v.SetEnvPrefix("HL7BUS")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	// Environment variables override only keys viper knows; bind the
	// scalar ones so they work even when the file leaves them out.
	for _, k := range []string{"log.level", "log.format", "kafka.topic_prefix", "kafka.partitions", "kafka.replication",
		"kafka.client_id", "kafka.sasl.mechanism", "kafka.sasl.username", "kafka.sasl.password", "kafka.tls.enabled",
		"kafka.tls.ca_file", "kafka.tls.cert_file", "kafka.tls.key_file", "registry.url", "registry.username", "registry.password", "http.address", "http.pprof",
		"tracing.otlp_endpoint", "tracing.sample_ratio", "standalone.data_dir", "standalone.kafka_address", "standalone.registry_address",
		"standalone.sync_writes"} {
		_ = v.BindEnv(k)
	}
	if b := os.Getenv("HL7BUS_KAFKA_BROKERS"); b != "" {
		v.Set("kafka.brokers", strings.Split(b, ","))
	}
	for _, o := range overrides {
		key, val, ok := strings.Cut(o, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("--set %q: expected KEY=VALUE (for example kafka.topic_prefix=test)", o)
		}
		v.Set(key, val)
	}
	f := &File{}
	err := v.Unmarshal(f, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		// A misspelt key must not silently do nothing.
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","))
	})
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	f.defaults()
	return f, nil
}

func (f *File) defaults() {
	if f.Log.Level == "" {
		f.Log.Level = "info"
	}
	if f.Log.Format == "" {
		f.Log.Format = "json"
	}
	if f.HTTP.Address == "" {
		f.HTTP.Address = "127.0.0.1:9464"
	}
	if f.Standalone.DataDir == "" {
		f.Standalone.DataDir = "hl7bus-data"
	}
	if f.Standalone.KafkaAddress == "" {
		f.Standalone.KafkaAddress = "127.0.0.1:9092"
	}
	if f.Standalone.RegistryAddress == "" {
		f.Standalone.RegistryAddress = "127.0.0.1:8081"
	}
	f.Kafka = f.Kafka.WithDefaults()
}

// Profiles loads the conformance profile of every interface that names one,
// keyed by interface name.
func (f *File) Profiles() (map[string]*hl7v2.Profile, error) {
	out := map[string]*hl7v2.Profile{}
	var errs []error
	for i, it := range f.Interfaces {
		if it.Profile == "" {
			continue
		}
		p, err := hl7v2.LoadProfile(it.Profile)
		if err != nil {
			errs = append(errs, fmt.Errorf("interfaces[%d].profile: %w", i, err))
			continue
		}
		out[it.Name] = p
	}
	return out, errors.Join(errs...)
}

// ForStandalone points kafka.brokers and registry.url at the embedded
// broker and registry.
func (f *File) ForStandalone() {
	f.Kafka.Brokers = []string{f.Standalone.KafkaAddress}
	f.Registry.URL = "http://" + f.Standalone.RegistryAddress
}

// Validate returns every problem in the file at once, each naming its key.
func (f *File) Validate() error {
	var errs []error
	if err := f.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := f.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if f.Registry.URL == "" {
		errs = append(errs, errors.New("registry.url: required"))
	}
	switch f.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", f.Log.Level))
	}
	switch f.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or text", f.Log.Format))
	}
	if err := (ingress.Config{Interfaces: f.Interfaces}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := f.Profiles(); err != nil {
		errs = append(errs, err)
	}
	if err := (egress.Config{Destinations: f.Destinations}).Validate(); err != nil {
		errs = append(errs, err)
	}
	known := map[string]bool{}
	for _, d := range f.Destinations {
		known[d.Name] = true
	}
	if err := (route.Config{Rules: f.Routes}).Validate(known); err != nil {
		errs = append(errs, err)
	}
	for _, a := range []struct{ key, addr string }{{"standalone.kafka_address", f.Standalone.KafkaAddress},
		{"standalone.registry_address", f.Standalone.RegistryAddress}, {"http.address", f.HTTP.Address}} {
		if a.addr == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", a.key, err))
		}
	}
	return errors.Join(errs...)
}
