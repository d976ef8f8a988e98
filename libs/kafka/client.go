package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"
)

// base returns the options every client shares: brokers, client ID,
// TLS, SASL and logging.
func base(c Config, log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		// franz-go's own logs go through slog from warn up: at info it
		// logs every transaction, which would drown the stage's own logs.
		// They carry broker and protocol detail, never record content.
		kgo.WithLogger(kslog.New(slog.New(minLevel{log.Handler(), slog.LevelWarn}))),
	}
	if c.TLS.Enabled {
		tc, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch c.SASL.Mechanism {
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsSha512Mechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsSha256Mechanism()))
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.Username, Pass: c.SASL.Password.Value()}.AsMechanism()))
	}
	return opts, nil
}

func tlsConfig(t TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no certificate in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// newClient builds a client from the shared options, the role's options
// and the caller's extra ones.
func newClient(c Config, log *slog.Logger, role []kgo.Opt, extra []kgo.Opt) (*kgo.Client, error) {
	opts, err := base(c, log)
	if err != nil {
		return nil, err
	}
	return kgo.NewClient(append(append(opts, role...), extra...)...)
}

// NewAdmin returns a client for topic administration and one-off reads and
// writes (tools, tests).
func NewAdmin(c Config, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	return newClient(c, log, nil, extra)
}

// minLevel raises a handler's minimum level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }

// NewProducer returns a client for ingress: every produce is acknowledged
// by all in-sync replicas and idempotent (franz-go's defaults, stated here
// because the ACK-after-durable-write promise rests on them).
func NewProducer(c Config, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	return newClient(c, log, []kgo.Opt{
		// acks=all: a record is durable only once every in-sync replica has it.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Ingress waits for each produce before ACKing its sender, so
		// lingering would add straight to ACK latency; batches still form
		// from concurrent connections while a request is in flight.
		kgo.ProducerLinger(0),
		// Records are keyed for per-patient order; the default sticky
		// key partitioner hashes the key like the Java client (murmur2).
		kgo.DefaultProduceTopic(c.Topic(TopicRaw)),
	}, extra)
}

// NewTransactSession returns the session of a consume -> produce stage:
// it consumes topics in group with read_committed isolation and produces
// within transactions whose ID is unique per stage instance.
func NewTransactSession(c Config, log *slog.Logger, group, txnID string, topics []string, extra ...kgo.Opt) (*kgo.GroupTransactSession, error) {
	opts, err := base(c, log)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		// Exactly once: the consumed offsets commit in the same transaction
		// as the produced records.
		kgo.TransactionalID(txnID),
		// Only records of committed transactions: an aborted batch of the
		// previous stage must never be processed.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new group starts at the beginning: records written before the
		// stage first ran are still owed processing.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transactions must finish well inside this window, or the broker
		// aborts them; our batches are small.
		kgo.TransactionTimeout(60*time.Second),
		// Each fetch becomes one transaction, and a transaction costs
		// several broker round trips whatever its size. Letting a fetch
		// wait up to 10 ms for 64 KB turns many tiny transactions into
		// fewer larger ones under load, for at most 10 ms of latency per
		// stage when traffic is light.
		kgo.FetchMinBytes(64<<10),
		kgo.FetchMaxWait(10*time.Millisecond),
	)
	return kgo.NewGroupTransactSession(append(opts, extra...)...)
}

// NewConsumer returns a group consumer that commits offsets only when told
// (egress commits after the receiver's ACK or a DLQ write).
func NewConsumer(c Config, log *slog.Logger, group string, topics []string, extra ...kgo.Opt) (*kgo.Client, error) {
	return newClient(c, log, []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets commit only after delivery (at-least-once toward the
		// receiver); autocommit would commit what was merely fetched.
		kgo.DisableAutoCommit(),
	}, extra)
}

// NewReader returns a consumer without a group for tools that read a topic
// (hl7bus tail): from the start or the end, committed records only when
// committed is true.
func NewReader(c Config, log *slog.Logger, topic string, fromStart, committed bool) (*kgo.Client, error) {
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	role := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start)}
	if committed {
		role = append(role, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	return newClient(c, log, role, nil)
}

// EnsureTopics creates the topics that do not exist yet with the
// configured partitions and replication.
func EnsureTopics(ctx context.Context, cl *kgo.Client, c Config, topics ...string) error {
	adm := kadm.NewClient(cl)
	res, err := adm.CreateTopics(ctx, c.Partitions, c.Replication, nil, topics...)
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	var errs []error
	for _, r := range res.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("creating topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}
