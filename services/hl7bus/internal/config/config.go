// Package config is the model of the hl7bus configuration file and its
// loading: one YAML file (every key overridable by HL7BUS_* environment
// variables, e.g. HL7BUS_KAFKA_TOPIC_PREFIX), validated as a whole with
// errors that name the key. Each stage takes its part.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"github.com/twmb/franz-go/pkg/sr"

	libconfig "github.com/hl7bus/hl7bus/libs/config"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/libs/mllp"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/index"
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
	// Tables are the code tables rules and CEL expressions use
	// (tables.<name>), their files relative to the configuration file's
	// directory.
	Tables     []mapping.TableSpec `yaml:"tables"`
	Standalone Standalone          `yaml:"standalone"`
	// Stages tunes the stage runtime of every transactional stage (parse,
	// transform, route): retry policy, record timeout, stall threshold.
	Stages pipeline.Runtime `yaml:"stages"`
	// Index is the message index's database and batching.
	Index index.Config `yaml:"index"`
	// Admin is the admin API's listener, authentication and replay bounds.
	Admin admin.Config `yaml:"admin"`

	// written holds the interfaces as the file wrote them, before
	// applyDefaults: their defaults turn a negative max_connections into
	// the default and fold max_frame_size into max_message_size, which
	// would hide those mistakes from Validate.
	written []ingress.Interface
	// writtenStages is the stages section as written, for the same
	// reason: its defaults replace a multiplier below 1 or a negative
	// timeout.
	writtenStages pipeline.Runtime
	// Parser configures the one HL7 parser every stage of the process
	// reads messages with.
	Parser hl7v2.ParserConfig `yaml:"parser"`

	// path is the file Load read, dir its directory (table files are
	// relative to it) and raw its bytes as parsed: the configuration
	// version hashes those, not a later read that may see another file.
	path, dir string
	raw       []byte
	// retentionSet says the file (or the environment, or --set) gave
	// index.retention, so a 0 there means "keep everything" rather than
	// "unset, take the default".
	retentionSet bool
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
	// The file is read once, here: the bytes parsed are the bytes the
	// configuration version hashes.
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	if err := v.ReadConfig(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("reading configuration %s: %w", path, err)
	}
	// Environment variables override only keys viper knows; bind every
	// scalar key of the model so they work even when the file leaves them
	// out. The list comes from the yaml tags, so a new key is bound the
	// day it is added.
	for _, k := range scalarKeys(reflect.TypeFor[File](), "") {
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
	f := &File{path: path, dir: filepath.Dir(path), raw: raw}
	err = v.Unmarshal(f, func(dc *mapstructure.DecoderConfig) {
		dc.TagName = "yaml"
		// A misspelt key must not silently do nothing.
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, mapstructure.StringToSliceHookFunc(","))
	})
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	f.written = append([]ingress.Interface(nil), f.Interfaces...)
	f.writtenStages = f.Stages
	f.retentionSet = v.IsSet("index.retention")
	f.applyDefaults()
	return f, nil
}

// applyDefaults is the one place where the values a file leaves unset get
// the values in force: the file's own and each section's (kafka,
// interfaces, destinations), so the stages and `hl7bus config print` see
// the same configuration. Load calls it; every section's WithDefaults is
// idempotent, so a stage applying its own again changes nothing.
func (f *File) applyDefaults() {
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
	if f.Kafka.MaxRecordBytes == 0 {
		// One size policy: every record a stage writes holds one message
		// the interfaces accept plus its envelope.
		f.Kafka.MaxRecordBytes, _ = f.neededRecordBytes()
	}
	f.Kafka = f.Kafka.WithDefaults()
	for i := range f.Interfaces {
		f.Interfaces[i] = f.Interfaces[i].WithDefaults()
	}
	for i := range f.Destinations {
		f.Destinations[i] = f.Destinations[i].WithDefaults()
	}
	f.Parser = f.Parser.WithDefaults()
	f.Stages = f.Stages.WithDefaults()
	f.indexAdminDefaults()
}

// indexAdminDefaults fills the index and admin sections. Only unset
// (zero) values are replaced: a negative number stays for Validate to
// report.
func (f *File) indexAdminDefaults() {
	ix := &f.Index
	if ix.Driver == "" {
		ix.Driver = "sqlite"
	}
	if ix.BatchSize == 0 {
		ix.BatchSize = index.DefaultBatchSize
	}
	if ix.FlushInterval == 0 {
		ix.FlushInterval = index.DefaultFlushInterval
	}
	if ix.Retention == 0 && !f.retentionSet {
		ix.Retention = index.DefaultRetention
	}
	// AuditRetention needs no default: 0, keep the audit trail, is
	// index.DefaultAuditRetention (see its comment for why).
	ad := &f.Admin
	if ad.Address == "" {
		ad.Address = admin.DefaultAddress
	}
	if ad.Replay.MaxMessages == 0 {
		ad.Replay.MaxMessages = admin.DefaultMaxMessages
	}
	if ad.Replay.Rate == 0 {
		ad.Replay.Rate = admin.DefaultRate
	}
	if ad.Replay.MaxRate == 0 {
		ad.Replay.MaxRate = admin.DefaultMaxRate
	}
	if ad.OIDC.RolesClaim == "" {
		ad.OIDC.RolesClaim = admin.DefaultRolesClaim
	}
	if ad.OIDC.ActorClaim == "" {
		ad.OIDC.ActorClaim = admin.DefaultActorClaim
	}
}

// asWritten returns the interfaces to validate: each as the file wrote
// it, unless it was changed since Load (then as it is now).
func (f *File) asWritten() []ingress.Interface {
	out := append([]ingress.Interface(nil), f.Interfaces...)
	for i := range out {
		if i < len(f.written) && reflect.DeepEqual(f.written[i].WithDefaults(), out[i]) {
			out[i] = f.written[i]
		}
	}
	return out
}

// interfaceMaxMessage is the largest message interface it accepts
// (max_message_size, or its former name max_frame_size, or the default).
func interfaceMaxMessage(it ingress.Interface) int {
	return it.WithDefaults().MaxMessageSize
}

// neededRecordBytes returns the smallest record limit that holds the
// largest message any interface accepts plus kafka.EnvelopeHeadroom, and
// the key of the interface that sets it ("" with no interfaces, which
// need the default interface limit all the same: stages read records of
// every interface of the exchange, configured in other files too).
func (f *File) neededRecordBytes() (int, string) {
	largest, key := mllp.DefaultMaxFrameSize, ""
	for i, it := range f.Interfaces {
		if n := interfaceMaxMessage(it); key == "" || n > largest {
			largest, key = n, fmt.Sprintf("interfaces[%d].max_message_size, %d bytes", i, n)
		}
	}
	return largest + kafka.EnvelopeHeadroom, key
}

// durationHook decodes durations. A duration must carry its unit: a bare
// number (YAML 30, or "30" from the environment) is an error rather than
// 30 nanoseconds, which is what it would silently be otherwise. 0 needs
// no unit.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	switch from.Kind() {
	case reflect.String:
		s := strings.TrimSpace(data.(string))
		if s == "" || s == "0" {
			return time.Duration(0), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
				return nil, fmt.Errorf("%s: duration needs a unit (e.g. %ss)", s, s)
			}
			return nil, fmt.Errorf("%q is not a duration (e.g. 30s, 500ms, 1m)", s)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		v := reflect.ValueOf(data)
		if v.IsZero() {
			return time.Duration(0), nil
		}
		return nil, fmt.Errorf("%v: duration needs a unit (e.g. %vs)", data, data)
	}
	return data, nil
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
// broker and registry, and puts what the file leaves unset of the index
// database, its HMAC key and the admin tokens in the data directory
// (the standalone creates the secrets on its first start).
func (f *File) ForStandalone() {
	f.Kafka.Brokers = []string{f.Standalone.KafkaAddress}
	f.Registry.URL = "http://" + f.Standalone.RegistryAddress
	dir := f.Standalone.DataDir
	if f.Index.DSN == "" && f.Index.Driver == "sqlite" {
		f.Index.DSN = filepath.Join(dir, "index.db")
	}
	if f.Index.SecretFile == "" {
		f.Index.SecretFile = filepath.Join(dir, StandaloneSecretsDir, StandaloneIndexSecret)
	}
	if f.Admin.TokensFile == "" {
		f.Admin.TokensFile = filepath.Join(dir, StandaloneSecretsDir, StandaloneAdminTokens)
	}
}

// The standalone's secrets in its data directory (standalone/secrets.go
// creates them): the directory and the files the index and admin
// defaults point at.
const (
	StandaloneSecretsDir  = "secrets"
	StandaloneIndexSecret = "index-hmac"
	StandaloneAdminTokens = "admin-tokens"
)

// Validate returns every problem in the file at once, each naming its key,
// those of its rules, tables and routes included (see Checked).
func (f *File) Validate() error {
	_, err := f.Checked()
	return err
}

// Checked validates the file and compiles its rules, tables and routes in
// one pass: every problem at once, or the compiled rules of a valid file.
func (f *File) Checked() (*Compiled, error) {
	var errs []error
	stages := f.Stages
	if stages.WithDefaults() == f.writtenStages.WithDefaults() {
		// Unchanged since Load: check it as the file wrote it.
		stages = f.writtenStages
	}
	if err := stages.Validate("stages"); err != nil {
		errs = append(errs, err)
	}
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
	if err := (ingress.Config{Interfaces: f.asWritten()}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := f.Profiles(); err != nil {
		errs = append(errs, err)
	}
	if err := f.Parser.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("parser.%w", err))
	}
	if err := (egress.Config{Destinations: f.Destinations}).Validate(); err != nil {
		errs = append(errs, err)
	}
	// Rules reports the routes' problems too (route.Compile validates
	// them), so they are not checked twice here.
	c, err := f.Rules()
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, f.validateIndexAdmin()...)
	for _, a := range []struct{ key, addr string }{{"standalone.kafka_address", f.Standalone.KafkaAddress},
		{"standalone.registry_address", f.Standalone.RegistryAddress}, {"http.address", f.HTTP.Address},
		{"admin.address", f.Admin.Address}} {
		if a.addr == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", a.key, err))
		} else if err := checkPort(a.addr, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.key, err))
		}
	}
	errs = append(errs, f.validateAddresses()...)
	if need, key := f.neededRecordBytes(); f.Kafka.MaxRecordBytes > 0 && f.Kafka.MaxRecordBytes < need {
		from := "the default interface limit of 16777216 bytes"
		if key != "" {
			from = key
		}
		errs = append(errs, fmt.Errorf("kafka.max_record_bytes: %d bytes cannot hold the largest message interfaces accept (%s) plus %d bytes of envelope; set it to at least %d, or leave it unset to derive it",
			f.Kafka.MaxRecordBytes, from, kafka.EnvelopeHeadroom, need))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// validateIndexAdmin checks the index and admin sections as every
// process sees them: values and their ranges, no files (ValidateModules
// does what only the process running the module needs).
func (f *File) validateIndexAdmin() []error {
	var errs []error
	ix := f.Index
	switch ix.Driver {
	case "sqlite", "postgres":
	default:
		errs = append(errs, fmt.Errorf("index.driver: %q is not sqlite or postgres", ix.Driver))
	}
	if ix.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("index.batch_size: %d is negative", ix.BatchSize))
	}
	if ix.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("index.flush_interval: %v is negative", ix.FlushInterval))
	}
	if ix.Retention < 0 {
		errs = append(errs, fmt.Errorf("index.retention: %v is negative (0 keeps everything)", ix.Retention))
	}
	if ix.AuditRetention < 0 {
		errs = append(errs, fmt.Errorf("index.audit_retention: %v is negative (0 keeps everything)", ix.AuditRetention))
	}
	r := f.Admin.Replay
	if r.MaxMessages < 0 {
		errs = append(errs, fmt.Errorf("admin.replay.max_messages: %d is negative", r.MaxMessages))
	}
	if r.Rate < 0 {
		errs = append(errs, fmt.Errorf("admin.replay.rate: %v is negative", r.Rate))
	}
	if r.MaxRate < 0 {
		errs = append(errs, fmt.Errorf("admin.replay.max_rate: %v is negative", r.MaxRate))
	} else if r.Rate > r.MaxRate {
		errs = append(errs, fmt.Errorf("admin.replay.rate: %v is above admin.replay.max_rate (%v)", r.Rate, r.MaxRate))
	}
	if err := admin.ValidateOIDC("admin.oidc", f.Admin.OIDC); err != nil {
		errs = append(errs, err)
	}
	if err := f.Admin.TLS.Validate("admin.tls"); err != nil {
		errs = append(errs, err)
	}
	if a, h := f.Admin.Address, f.HTTP.Address; a != "off" && h != "off" {
		ah, ap, aerr := net.SplitHostPort(a)
		hh, hp, herr := net.SplitHostPort(h)
		if aerr == nil && herr == nil && ap == hp && ap != "0" && hostsOverlap(ah, hh) {
			errs = append(errs, fmt.Errorf("admin.address: %q is also http.address (%q)", a, h))
		}
	}
	return errs
}

// ValidateModules checks what the named modules need of the file beyond
// Validate, in the process that runs them: the index (and the admin API,
// which reads it) needs index.dsn and index.secret_file, the admin API
// admin.tokens_file or admin.oidc.issuer and readable TLS files. The
// standalone's defaults (ForStandalone) provide the first three; outside
// it the file must. Other module names need nothing here.
func (f *File) ValidateModules(names ...string) error {
	var errs []error
	need := map[string]bool{}
	for _, n := range names {
		need[n] = true
	}
	if need["index"] || need["admin"] {
		if f.Index.DSN == "" {
			errs = append(errs, errors.New("index.dsn: required (the index database: a file for sqlite, a URL for postgres)"))
		}
		if f.Index.SecretFile == "" {
			errs = append(errs, errors.New("index.secret_file: required (the key of the patient-key HMAC)"))
		}
	}
	if need["admin"] {
		if f.Admin.TokensFile == "" && f.Admin.OIDC.Issuer == "" {
			errs = append(errs, errors.New("admin.tokens_file: required (or admin.oidc.issuer)"))
		}
		if err := f.Admin.TLS.ValidateFiles("admin.tls"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkPort checks the port of a host:port address (which must split): a
// number from 1 (0 too for a listener: any free port) to 65535.
func checkPort(addr string, listener bool) error {
	_, port, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("port %q is not a number", port)
	}
	low := 1
	if listener {
		low = 0
	}
	if n < low || n > 65535 {
		return fmt.Errorf("port %d is not between %d and 65535", n, low)
	}
	return nil
}

// validateAddresses checks the ports of interfaces and destinations, that
// no two interfaces listen on one address, and that no destination points
// back at an interface of this exchange (it would deliver every message
// to itself, for ever). Malformed addresses are reported by the ingress
// and egress validation.
func (f *File) validateAddresses() []error {
	var errs []error
	type listener struct {
		key, addr, host string
		port            int
	}
	var ls []listener
	for i, it := range f.Interfaces {
		key := fmt.Sprintf("interfaces[%d].address", i)
		host, port, err := net.SplitHostPort(it.Address)
		if err != nil {
			continue
		}
		if err := checkPort(it.Address, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		n, _ := strconv.Atoi(port)
		l := listener{key: fmt.Sprintf("interfaces[%d]", i), addr: it.Address, host: host, port: n}
		for _, o := range ls {
			// Port 0 takes any free port: it never clashes.
			if n != 0 && o.port == n && hostsOverlap(o.host, host) {
				errs = append(errs, fmt.Errorf("%s: %q is also the address of %s (%q)", key, it.Address, o.key, o.addr))
				break
			}
		}
		ls = append(ls, l)
	}
	for i, d := range f.Destinations {
		key := fmt.Sprintf("destinations[%d].address", i)
		host, port, err := net.SplitHostPort(d.Address)
		if err != nil {
			continue
		}
		if err := checkPort(d.Address, false); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		n, _ := strconv.Atoi(port)
		for _, l := range ls {
			if l.port == n && reaches(host, l.host) {
				errs = append(errs, fmt.Errorf("%s: %q is the listener of %s (%q): the exchange would deliver to itself", key, d.Address, l.key, l.addr))
				break
			}
		}
	}
	return errs
}

// hostsOverlap reports whether two listen hosts can take the same
// connections: equal after normalization, or either one every address.
func hostsOverlap(a, b string) bool {
	a, b = normalHost(a), normalHost(b)
	return a == b || a == "*" || b == "*"
}

// reaches reports whether dialing host arrives at a listener on listen
// (on the same port).
func reaches(host, listen string) bool {
	h, l := normalHost(host), normalHost(listen)
	if h == l || h == "*" { // dialing 0.0.0.0 reaches this machine
		return true
	}
	if l != "*" {
		return false
	}
	// A listener on every address is reached through any of this
	// machine's names.
	if h == "127.0.0.1" || h == "::1" {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(h, name) {
		return true
	}
	return false
}

// normalHost spells a host one way: "*" for every address (empty,
// 0.0.0.0, ::), 127.0.0.1 for localhost and other IPv4 loopback forms,
// ::1, lower-case names.
func normalHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	switch h {
	case "", "0.0.0.0", "::", "[::]":
		return "*"
	case "localhost", "localhost.localdomain", "ip6-localhost":
		return "127.0.0.1"
	}
	if ip := net.ParseIP(h); ip != nil {
		switch {
		case ip.IsUnspecified():
			return "*"
		case ip.Equal(net.IPv6loopback):
			return "::1"
		case ip.IsLoopback():
			return "127.0.0.1"
		}
		return ip.String()
	}
	return h
}

// scalarKeys lists the dotted keys of t's scalar fields (strings, numbers,
// booleans, durations), following nested structs by their yaml tags; lists
// and maps are left out (environment variables cannot address their
// elements; kafka.brokers is read separately).
func scalarKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Struct:
			keys = append(keys, scalarKeys(f.Type, prefix+name+".")...)
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Func, reflect.Chan:
		default:
			keys = append(keys, prefix+name)
		}
	}
	return keys
}
