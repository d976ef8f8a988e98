// Package kafka is the one place hl7bus builds Kafka clients: producers,
// transactional stage sessions, consumers and readers from a validated
// Config, their tracing and metrics hooks (Instrument), and topic creation
// (EnsureTopics). The stage runtime that runs on these clients (the
// transactional loop, retries, dead letters) is libs/pipeline.
package kafka

import (
	"errors"
	"fmt"
	"os"
	"regexp"

	"github.com/hl7bus/hl7bus/libs/config"
)

// Config is the kafka section of the configuration.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// TopicPrefix is prepended to every topic name. Default "hl7bus.".
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions of topics hl7bus creates. Default 6: enough for each
	// stage to run a few instances, few enough for a laptop.
	Partitions int32 `yaml:"partitions"`
	// Replication of topics hl7bus creates. Default 1 (the embedded
	// broker); production clusters want 3.
	Replication int16 `yaml:"replication"`
	// ClientID names the process to the brokers. Default "hl7bus".
	ClientID string `yaml:"client_id"`
	// MaxRecordBytes is the largest record (key, value and headers,
	// before compression) any hl7bus client writes or must be able to
	// read, and the max.message.bytes of every topic hl7bus creates.
	// Configuration loading derives it from the interfaces (the largest
	// max_message_size + 1 MiB of envelope headroom); WithDefaults falls
	// back to DefaultMaxRecordBytes.
	MaxRecordBytes int  `yaml:"max_record_bytes"`
	TLS            TLS  `yaml:"tls"`
	SASL           SASL `yaml:"sasl"`
	// Instance names this process among the instances of each stage
	// (the --instance flag, the host name, or "standalone"). It is not
	// read from the file: it must differ between replicas that share one
	// configuration. When set, group consumers are static members
	// (KIP-345) under this instance ID, so a restarted instance takes its
	// partitions back at once instead of waiting out its predecessor's
	// session.
	Instance string `yaml:"-"`
}

// Record size limits.
const (
	// EnvelopeHeadroom is what a record holds besides the message itself
	// (IDs, header fields, validation report, Avro framing, record
	// headers): the record limit is the largest message plus this.
	EnvelopeHeadroom = 1 << 20
	// DefaultMaxRecordBytes is the record limit for the default interface
	// max_message_size of 16 MiB.
	DefaultMaxRecordBytes = 16<<20 + EnvelopeHeadroom
	// MaxRecordBytesCeiling bounds kafka.max_record_bytes: franz-go refuses
	// batch limits above 1 GiB, and a single record near that would need
	// that much memory in every stage anyway.
	MaxRecordBytesCeiling = 512 << 20
)

// TLS configures encryption to the brokers.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers (default: the system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in broker certificates.
	ServerName string `yaml:"server_name"`
}

// SASL configures authentication to the brokers.
type SASL struct {
	// Mechanism is SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN; empty for none.
	Mechanism string        `yaml:"mechanism"`
	Username  string        `yaml:"username"`
	Password  config.Secret `yaml:"password"`
}

// WithDefaults returns c with unset fields defaulted.
func (c Config) WithDefaults() Config {
	if c.TopicPrefix == "" {
		c.TopicPrefix = "hl7bus."
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.Replication == 0 {
		c.Replication = 1
	}
	if c.ClientID == "" {
		c.ClientID = "hl7bus"
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return c
}

// minRecordBytes is the smallest record limit: below it not even a small
// message with its envelope fits (franz-go refuses batch limits under 512).
const minRecordBytes = 64 << 10

var topicChars = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

// Validate returns every problem with c, each naming its key.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers: at least one broker is required"))
	}
	for i, b := range c.Brokers {
		if b == "" {
			errs = append(errs, fmt.Errorf("kafka.brokers[%d]: empty", i))
		}
	}
	if !topicChars.MatchString(c.TopicPrefix) {
		errs = append(errs, fmt.Errorf("kafka.topic_prefix: %q may only hold letters, digits, '.', '_' and '-'", c.TopicPrefix))
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("kafka.partitions: %d is not a positive number", c.Partitions))
	}
	if c.MaxRecordBytes < 0 || c.MaxRecordBytes > MaxRecordBytesCeiling {
		errs = append(errs, fmt.Errorf("kafka.max_record_bytes: %d is not between 1 and %d", c.MaxRecordBytes, MaxRecordBytesCeiling))
	} else if c.MaxRecordBytes > 0 && c.MaxRecordBytes < minRecordBytes {
		errs = append(errs, fmt.Errorf("kafka.max_record_bytes: %d is below the minimum of %d", c.MaxRecordBytes, minRecordBytes))
	}
	if c.Replication < 0 {
		errs = append(errs, fmt.Errorf("kafka.replication: %d is not a positive number", c.Replication))
	}
	switch c.SASL.Mechanism {
	case "":
	case "SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN":
		if c.SASL.Username == "" {
			errs = append(errs, errors.New("kafka.sasl.username: required with a mechanism"))
		}
		if c.SASL.Password == "" {
			errs = append(errs, errors.New("kafka.sasl.password: required with a mechanism"))
		}
		if c.SASL.Mechanism == "PLAIN" && !c.TLS.Enabled {
			errs = append(errs, errors.New("kafka.sasl.mechanism: PLAIN without kafka.tls.enabled would send the password in the clear"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q is not SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", c.SASL.Mechanism))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("kafka.tls.cert_file and kafka.tls.key_file go together"))
	}
	for _, f := range []struct{ key, path string }{{"kafka.tls.ca_file", c.TLS.CAFile}, {"kafka.tls.cert_file", c.TLS.CertFile}, {"kafka.tls.key_file", c.TLS.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v", f.key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Topic names, without the prefix.
const (
	TopicRaw         = "raw"
	TopicParsed      = "parsed"
	TopicTransformed = "transformed"
	TopicDelivery    = "delivery"
	TopicDecisions   = "decisions" // the rules' decisions (canonical.Decision), keyed by message ID
	// TopicAudit holds canonical.AuditEvent, keyed by actor.
	TopicAudit = "audit"
	// TopicControl is compacted: canonical.ControlState keyed by destination.
	TopicControl = "control"
	// TopicReplay is compacted: canonical.ReplayRecord keyed by job/<id>,
	// item/<job>/<message>/<destination> or discard/<dead letter id>.
	TopicReplay = "replay"
)

// Record headers beyond the trace context.
const (
	// HeaderReplayJob is on every record a replay job re-sends: the job ID.
	HeaderReplayJob = "hl7bus-replay-job"
	// HeaderReplayDestinations, on a record replayed into route, limits
	// its outputs to these destinations (comma-separated): the ones the
	// job did not skip as already delivered.
	HeaderReplayDestinations = "hl7bus-replay-destinations"
)

// Topic returns the full name of topic name.
func (c Config) Topic(name string) string { return c.TopicPrefix + name }

// OutTopic returns the topic of destination dest.
func (c Config) OutTopic(dest string) string { return c.TopicPrefix + "out." + dest }

// DLQTopic returns the dead-letter topic of stage.
func (c Config) DLQTopic(stage string) string { return c.TopicPrefix + "dlq." + stage }
