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

	"github.com/hl7bus/hl7bus/libs/logattr"
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
	opts = append(opts, sizeOpts(c.WithDefaults().MaxRecordBytes)...)
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

// sizeOpts are the options that let every client write and read records
// of up to limit bytes: the record limit is one policy (the largest
// interface message plus its envelope), and a client whose own limit were
// lower than the topics' would fail or stall on the first large message.
func sizeOpts(limit int) []kgo.Opt {
	// franz-go's defaults: 100 MiB per request written or response read.
	// A fetch response or produce request must hold at least one whole
	// record batch, so both grow with large limits.
	wire := int32(max(100<<20, 2*limit))
	return []kgo.Opt{
		// The largest batch franz-go builds, before compression; a single
		// record larger than this fails at once with MESSAGE_TOO_LARGE
		// (the default 1,000,012 bytes is what stalled parse on a 700 KB
		// message).
		kgo.ProducerBatchMaxBytes(int32(limit)),
		// zstd: HL7 v2 text compresses 5-10x and base64 documents by a
		// quarter, so records cost less disk, network and broker limit;
		// zstd compresses text markedly better than snappy for a modest
		// CPU cost, and every consumer the analysts use (librdkafka, Java,
		// franz-go) reads it. Snappy is the fallback for brokers before
		// Kafka 2.1, which cannot take zstd.
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.SnappyCompression(), kgo.NoCompression()),
		// One partition's fetch may carry a full largest record batch, and
		// one fetch response several of them.
		kgo.FetchMaxPartitionBytes(int32(limit)),
		kgo.FetchMaxBytes(max(50<<20, int32(limit))),
		kgo.BrokerMaxReadBytes(wire),
		kgo.BrokerMaxWriteBytes(wire),
	}
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

// NewProducer returns a client for writes that must be durable before the
// caller goes on (ingress before it ACKs its sender, egress before it
// commits past a dead letter): every produce is acknowledged by all
// in-sync replicas and idempotent (franz-go's defaults, stated here
// because the ACK-after-durable-write promise rests on them). It has no
// default topic: a record without a topic fails (kgo's errNoTopic) instead
// of landing in raw to be processed again. Records are keyed for
// per-patient order; the default sticky key partitioner hashes the key
// like the Java client (murmur2).
func NewProducer(c Config, log *slog.Logger, extra ...kgo.Opt) (*kgo.Client, error) {
	return newClient(c, log, []kgo.Opt{
		// acks=all: a record is durable only once every in-sync replica has it.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Ingress waits for each produce before ACKing its sender, so
		// lingering would add straight to ACK latency; batches still form
		// from concurrent connections while a request is in flight.
		kgo.ProducerLinger(0),
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
	opts = append(opts, membership(c, log, group)...)
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
		// A fetch waits for new records at most 1 s instead of 5 s. The
		// broker answers as soon as records arrive, but a freshly joined
		// member was seen to wait out the whole 5 s on the embedded broker
		// before its first records after a restart; 1 s bounds that, for
		// one empty fetch per second while idle.
		kgo.FetchMaxWait(time.Second),
	}, append(membership(c, log, group), extra...))
}

// membership returns the group options shared by every group member.
//
// With c.Instance set the member is static (KIP-345), under instance ID
// c.Instance: an instance killed and restarted in place rejoins as the same
// member and gets its partitions back at once, where a new dynamic member
// would wait for the dead one's session (45 s) to expire. A static member
// does not leave its group when it closes, so a stopped instance would
// hold its partitions for the whole session timeout too; leaveOnClose
// sends that leave itself, and the group hands the partitions to the
// remaining members at once (rolling updates, scale-in).
//
// Transactional stages use the same instance name in their transactional
// ID, so group membership and transaction fencing agree: the instance that
// takes over an instance ID also fences its predecessor's producer.
func membership(c Config, log *slog.Logger, group string) []kgo.Opt {
	opts := []kgo.Opt{
		// The other members learn of a rebalance at their next heartbeat;
		// 1 s instead of 3 s keeps a handover well inside 5 s, for one
		// small request per second per member.
		kgo.HeartbeatInterval(time.Second),
	}
	if c.Instance != "" {
		opts = append(opts, kgo.InstanceID(c.Instance), kgo.WithHooks(leaveOnClose{c: c, log: log, group: group}))
	}
	return opts
}

// leaveOnClose makes a static member leave its group once its client has
// closed (a graceful stop). A killed process never gets here: its
// successor under the same instance ID replaces it.
type leaveOnClose struct {
	c     Config
	log   *slog.Logger
	group string
}

// OnClientClosed implements kgo.HookClientClosed.
func (h leaveOnClose) OnClientClosed(*kgo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The closed client cannot send any more; a short-lived one can.
	cl, err := newClient(h.c, h.log, nil, nil)
	if err != nil {
		h.log.Warn("leaving the consumer group", logattr.Group(h.group), logattr.Error(err))
		return
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(h.group).InstanceIDs(h.c.Instance))
	if err == nil {
		err = res.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		// Not fatal: the group still expires the member after its
		// session timeout.
		h.log.Warn("leaving the consumer group", logattr.Group(h.group), logattr.Error(err))
	}
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
