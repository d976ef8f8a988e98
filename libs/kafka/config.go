// Package kafka is the one place hl7bus builds Kafka clients: producers,
// transactional stage sessions and consumers from a validated Config, topic
// creation, dead-letter records, and the consume -> handle -> produce loop
// that runs inside Kafka transactions.
package kafka

import (
	"errors"
	"fmt"
	"regexp"
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
	return c
}

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
	if c.Replication < 0 {
		errs = append(errs, fmt.Errorf("kafka.replication: %d is not a positive number", c.Replication))
	}
	return errors.Join(errs...)
}

// Topic names, without the prefix.
const (
	TopicRaw         = "raw"
	TopicParsed      = "parsed"
	TopicTransformed = "transformed"
	TopicDelivery    = "delivery"
)

// Topic returns the full name of topic name.
func (c Config) Topic(name string) string { return c.TopicPrefix + name }

// OutTopic returns the topic of destination dest.
func (c Config) OutTopic(dest string) string { return c.TopicPrefix + "out." + dest }

// DLQTopic returns the dead-letter topic of stage.
func (c Config) DLQTopic(stage string) string { return c.TopicPrefix + "dlq." + stage }
