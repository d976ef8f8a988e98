package index

import (
	"time"
)

// Config is the index section of the configuration file.
type Config struct {
	// Driver is sqlite (the embedded default) or postgres.
	Driver string `yaml:"driver"`
	// DSN is the database: a file path for sqlite (standalone default
	// <data_dir>/index.db), a libpq URL or key=value string for postgres.
	DSN string `yaml:"dsn"`
	// SecretFile holds the key of the patient-key HMAC (index-hmac in the
	// standalone's secrets directory). Changing it orphans every stored
	// patient key; rebuild the index then.
	SecretFile string `yaml:"secret_file"`
	// BatchSize is how many updates one write carries at most. Default
	// 2000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval bounds how long an update waits for its batch.
	// Default 200ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Retention deletes index rows of messages received longer ago; it
	// should equal the topics' retention (content is read from them).
	// Default 168h (Kafka's default retention), 0 keeps everything.
	Retention time.Duration `yaml:"retention"`
	// AuditRetention deletes audit events older than this. It is its own
	// setting because an audit trail is kept for as long as law or policy
	// says (HIPAA's documentation rule: six years), usually far longer
	// than messages. Default 0, keep everything: deleting evidence cannot
	// be undone and the right period is the operator's decision, while
	// the rows are few (one per human action, not per message). Past the
	// audit topic's retention the index is the only copy, and a rebuild
	// cannot bring those events back.
	AuditRetention time.Duration `yaml:"audit_retention"`
	// Rebuild empties the index at start and reads every topic again
	// from its beginning in a fresh consumer group. `hl7bus index
	// --rebuild` sets it for one run; set in the file it rebuilds on
	// every start, so leave it off there. Run it on one index instance
	// only.
	Rebuild bool `yaml:"rebuild"`
}

// WithDefaults returns c with an empty driver and zero batching fields
// set to the defaults (Retention is left as it is: 0 means keep all).
func (c Config) WithDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Driver == "" {
		c.Driver = DriverSQLite
	}
	return c
}

// Defaults.
const (
	DefaultBatchSize     = 2000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultRetention     = 168 * time.Hour
	// DefaultAuditRetention keeps every audit event (Config.AuditRetention
	// says why).
	DefaultAuditRetention time.Duration = 0
)
