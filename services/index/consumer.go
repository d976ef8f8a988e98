package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/telemetry"
)

// serviceName is the index's health part, metrics client label and the
// <name> of its consumer group <prefix>index.
const serviceName = "index"

// Service is the index consumer (`hl7bus index`): it reads every topic
// that says something about a message, projects the records, and applies
// them to the store in batches, committing offsets only after a batch is
// stored (at-least-once; Apply is idempotent).
type Service struct {
	cfg    Config
	kc     kafka.Config
	serde  *canonical.Serde
	log    *slog.Logger
	tel    *telemetry.Telemetry
	proj   Projector
	topics []string

	updates prometheus.Counter
	skipped *prometheus.CounterVec
	batch   prometheus.Observer
	// groupInfo is 1 for the consumer group the index reads in: a
	// rebuild moves the index to a group of its own for good, so lag
	// alerts join on this rather than on the name <prefix>index.
	groupInfo *prometheus.GaugeVec

	// ready is closed once the consumer is created (tests wait on it).
	ready chan struct{}
}

var skippedOpts = prometheus.CounterOpts{Name: "hl7bus_index_skipped_records_total",
	Help: "Records the index could not decode and skipped, by topic."}

var groupInfoOpts = prometheus.GaugeOpts{Name: "hl7bus_index_consumer_group_info",
	Help: "1 for the consumer group the index reads the topics in (<prefix>index, or <prefix>index.rebuild-<time> after a rebuild)."}

// ReadSecret reads the patient-key secret: the file's bytes as they are.
// Its errors name the config key index.secret_file.
func ReadSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("index.secret_file: not set (the patient-key secret is required)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("index.secret_file: %w", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("index.secret_file: %s is empty", path)
	}
	return b, nil
}

// New returns the index consumer; Run starts it. It reads the secret at
// once, so a missing one fails the start rather than the first record.
func New(cfg Config, kc kafka.Config, serde *canonical.Serde, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	cfg = cfg.WithDefaults()
	if cfg.DSN == "" {
		return nil, errors.New("index.dsn: not set")
	}
	if _, err := dialectOf(cfg.Driver); err != nil {
		return nil, fmt.Errorf("index.driver: %w", err)
	}
	secret, err := ReadSecret(cfg.SecretFile)
	if err != nil {
		return nil, err
	}
	if tel == nil {
		tel = telemetry.Nop()
	}
	s := &Service{cfg: cfg, kc: kc, serde: serde, log: log.With(logattr.Stage(serviceName)), tel: tel,
		proj: Projector{Secret: secret}, ready: make(chan struct{}),
		updates: tel.CounterVec(prometheus.CounterOpts{Name: "hl7bus_index_updates_total",
			Help: "Index updates stored (a record projects to one or a few)."}).WithLabelValues(),
		skipped: tel.CounterVec(skippedOpts, "topic"),
		batch: tel.HistogramVec(prometheus.HistogramOpts{Name: "hl7bus_index_batch_seconds",
			Help: "Time to store one batch of index updates.", Buckets: telemetry.LatencyBuckets}).WithLabelValues(),
		groupInfo: tel.GaugeVec(groupInfoOpts, "group"),
	}
	for _, t := range []string{kafka.TopicRaw, kafka.TopicParsed, kafka.TopicTransformed, kafka.TopicDecisions,
		kafka.TopicDelivery, kafka.TopicReplay, kafka.TopicAudit} {
		s.topics = append(s.topics, "^"+regexp.QuoteMeta(kc.Topic(t))+"$")
	}
	// Every stage's dead letters, including stages added later.
	s.topics = append(s.topics, "^"+regexp.QuoteMeta(kc.DLQTopic(""))+"[^.]+$")
	return s, nil
}

// Topics are the patterns (regular expressions) of the topics the index
// consumes.
func (s *Service) Topics() []string { return s.topics }

// Run opens and migrates the store, rebuilds it when Config.Rebuild asks,
// and indexes the topics until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	store, err := Open(ctx, s.cfg.Driver, s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	group, err := s.group(ctx, store)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	s.groupInfo.WithLabelValues(group).Set(1)
	// Checks that only warn or tidy up run beside the loop, so a slow
	// cluster does not hold the start.
	var checks sync.WaitGroup
	cctx, stopChecks := context.WithCancel(ctx)
	checks.Go(func() { s.startChecks(cctx, group) })
	defer func() {
		stopChecks()
		checks.Wait()
	}()
	s.tel.Health.Register(serviceName)
	defer s.tel.Health.Set(serviceName, false)
	inst := kafka.Instrument(s.tel, serviceName)
	cl, err := kafka.NewConsumer(s.kc, s.log, group, s.topics, append(inst.Opts(),
		// The topics are patterns: dlq.<stage> of any stage, found as
		// stages create them.
		kgo.ConsumeRegex(),
		// A dlq topic created after start is found within this (franz-go
		// re-reads metadata every 5 minutes by default).
		kgo.MetadataMaxAge(10*time.Second),
		// Partitions move only between batches, after their offsets are
		// committed: a batch is never half-owned.
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return fmt.Errorf("index: consumer: %w", err)
	}
	// The loop may stop holding a poll it did not flush (a failed
	// batch at shutdown): Close alone would wait for an AllowRebalance.
	defer cl.CloseAllowingRebalance()
	// Partitions for the coming days exist before the first Apply, and
	// retention runs beside the loop (its deletes are batched, each its
	// own transaction, so Apply interleaves).
	if err := s.upkeep(ctx, store, time.Now()); err != nil {
		s.log.Error("index maintenance failed; retrying in an hour", logattr.Error(err))
	}
	mctx, stopMaintain := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() {
		defer close(maintained)
		s.maintain(mctx, store)
	}()
	defer func() {
		stopMaintain()
		<-maintained
	}()
	s.tel.Health.Set(serviceName, true)
	close(s.ready)
	s.log.Info("indexing", logattr.Group(group))
	return s.consume(ctx, cl, store)
}

// maintainEvery is how often partitions are created ahead and expired
// rows deleted: daily partitions are made days ahead, so an hour is
// plenty, and retention is not more precise than that.
const maintainEvery = time.Hour

// upkeep is one round of maintenance: the messages' and dead letters'
// retention and partitions (Maintain), then the audit trail's own
// retention (PurgeAudit). Both run whatever the other returned.
func (s *Service) upkeep(ctx context.Context, store *Store, now time.Time) error {
	return errors.Join(store.Maintain(ctx, now, s.cfg.Retention), store.PurgeAudit(ctx, now, s.cfg.AuditRetention))
}

func (s *Service) maintain(ctx context.Context, store *Store) {
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := s.upkeep(ctx, store, now); err != nil && ctx.Err() == nil {
				s.log.Error("index maintenance failed; retrying in an hour", logattr.Error(err))
			}
		}
	}
}

// group is the consumer group to read in: <prefix>index, or the one the
// last rebuild started (stored with the data it rebuilt, so a rebuild
// stopped half-way goes on where it was). With Rebuild, a fresh group,
// which starts at the topics' beginning, on an emptied store.
func (s *Service) group(ctx context.Context, store *Store) (string, error) {
	if s.cfg.Rebuild {
		g := s.kc.TopicPrefix + serviceName + ".rebuild-" + time.Now().UTC().Format("20060102T150405.000000Z")
		if err := store.Rebuild(ctx, g); err != nil {
			return "", err
		}
		s.log.Warn("index emptied; rebuilding from the topics", logattr.Group(g))
		return g, nil
	}
	g, err := store.ConsumerGroup(ctx)
	if err != nil || g != "" {
		return g, err
	}
	return s.kc.TopicPrefix + serviceName, nil
}

// checkTimeout bounds the start checks: they only warn or tidy up, and
// the next start tries again.
const checkTimeout = 30 * time.Second

// startChecks runs once at start, beside the loop: it deletes the index's
// stale consumer groups and warns when index.retention is not the raw
// topic's retention. Neither can fail the index; failures are logged.
func (s *Service) startChecks(ctx context.Context, group string) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cl, err := kafka.NewAdmin(s.kc, s.log)
	if err != nil {
		s.log.Warn("index start checks: no admin client", logattr.Error(err))
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	s.dropStaleGroups(ctx, adm, group)
	s.checkRetention(ctx, adm)
}

// isIndexGroup says whether g is one of the index's consumer groups:
// <prefix>index or a rebuild's <prefix>index.rebuild-<time>.
func (s *Service) isIndexGroup(g string) bool {
	base := s.kc.TopicPrefix + serviceName
	return g == base || strings.HasPrefix(g, base+".rebuild-")
}

// dropStaleGroups deletes the index's consumer groups other than the one
// it reads in (index_state names that one, so every instance's next start
// uses it too): the group before a rebuild, and earlier rebuilds'. Left in
// place, their committed offsets fall further behind the topics every
// day, and a lag alert on the index's groups fires for an index that is
// fine. The broker refuses to delete a group with members (an instance
// still running in it, not yet restarted): that one is logged and deleted
// by a later start. Deleting one by mistake would lose nothing: a group
// without offsets starts at the topics' beginning, and Apply is
// idempotent.
func (s *Service) dropStaleGroups(ctx context.Context, adm *kadm.Client, group string) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		s.log.Warn("listing consumer groups to delete the index's stale ones", logattr.Error(err))
		return
	}
	var stale []string
	for _, g := range listed.Groups() {
		if g != group && s.isIndexGroup(g) {
			stale = append(stale, g)
		}
	}
	if len(stale) == 0 {
		return
	}
	res, err := adm.DeleteGroups(ctx, stale...)
	if err != nil {
		s.log.Warn("deleting the index's stale consumer groups", logattr.Error(err))
		return
	}
	for _, r := range res.Sorted() {
		switch {
		case r.Err == nil:
			s.log.Info("deleted a stale index consumer group", logattr.Group(r.Group))
		case errors.Is(r.Err, kerr.GroupIDNotFound):
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			s.log.Warn("a stale index consumer group still has members (an index instance not restarted since the rebuild); a later start deletes it",
				logattr.Group(r.Group))
		default:
			s.log.Warn("deleting a stale index consumer group", logattr.Group(r.Group), logattr.Error(r.Err))
		}
	}
}

// checkRetention warns when index.retention is not the raw topic's
// retention.ms (-1, keep forever, is index.retention 0). Longer, and
// messages are listed whose content and replay are gone; shorter, and
// messages still on the topics can no longer be found. Only raw is
// asked: every stage's topic is created the same way, so raw stands for
// them.
func (s *Service) checkRetention(ctx context.Context, adm *kadm.Client) {
	raw := s.kc.Topic(kafka.TopicRaw)
	topic, ok, err := topicRetention(ctx, adm, raw)
	if err != nil {
		s.log.Warn("reading the raw topic's retention.ms to compare with index.retention", logattr.Topic(raw), logattr.Error(err))
		return
	}
	if ok && topic != s.cfg.Retention {
		s.log.Warn("index.retention differs from the topics' retention.ms; set it to the same value (0 for retention.ms -1)",
			logattr.Topic(raw), logattr.Retention("retention_ms", topic), logattr.Retention("index_retention", s.cfg.Retention))
	}
}

// topicRetention is a topic's retention.ms as a duration, 0 for -1 (keep
// forever); ok is false when the topic does not report it.
func topicRetention(ctx context.Context, adm *kadm.Client, topic string) (d time.Duration, ok bool, err error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, false, err
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, false, err
	}
	if rc.Err != nil {
		return 0, false, rc.Err
	}
	for _, c := range rc.Configs {
		if c.Key != "retention.ms" || c.Value == nil {
			continue
		}
		ms, err := strconv.ParseInt(*c.Value, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("retention.ms %q: %w", *c.Value, err)
		}
		if ms < 0 {
			return 0, true, nil
		}
		return time.Duration(ms) * time.Millisecond, true, nil
	}
	return 0, false, nil
}

// consume is the loop: poll, project, and every BatchSize updates or
// FlushInterval store the batch and commit what it came from.
func (s *Service) consume(ctx context.Context, cl *kgo.Client, store *Store) error {
	var (
		pending  []*kgo.Record
		updates  []Update
		deadline time.Time
	)
	flush := func(ctx context.Context) error {
		if len(pending) > 0 {
			if err := s.apply(ctx, store, updates); err != nil {
				return err
			}
			if err := cl.CommitRecords(ctx, pending...); err != nil && ctx.Err() == nil {
				// Harmless: the records are read again and Apply is
				// idempotent.
				s.log.Warn("committing index offsets", logattr.Error(err))
			}
		}
		pending, updates, deadline = pending[:0], updates[:0], time.Time{}
		cl.AllowRebalance()
		return nil
	}
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := cl.PollRecords(pollCtx, max(1, s.cfg.BatchSize-len(updates)))
		cancel()
		if ctx.Err() != nil {
			// What is stored stays; what is not is read again next time.
			fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer fcancel()
			if err := flush(fctx); err != nil {
				s.log.Warn("storing the last index batch at shutdown", logattr.Error(err))
			}
			return nil
		}
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetching", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			updates = append(updates, s.project(ctx, r)...)
			pending = append(pending, r)
		})
		if len(pending) > 0 && deadline.IsZero() {
			deadline = time.Now().Add(s.cfg.FlushInterval)
		}
		if len(pending) == 0 || len(updates) >= s.cfg.BatchSize || !time.Now().Before(deadline) {
			if err := flush(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
}

// apply stores a batch, retrying with backoff while the database refuses
// (it is down, or locked): the index falls behind instead of losing
// updates, and shows not ready meanwhile.
func (s *Service) apply(ctx context.Context, store *Store, updates []Update) error {
	wait := 100 * time.Millisecond
	for {
		start := time.Now()
		err := store.Apply(ctx, updates)
		if err == nil {
			s.batch.Observe(time.Since(start).Seconds())
			s.updates.Add(float64(len(updates)))
			s.tel.Health.Set(serviceName, true)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.tel.Health.Set(serviceName, false)
		s.log.Warn("storing index updates failed; retrying", logattr.Error(err), logattr.Backoff(wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// decodeTries bounds the retries of a record whose writer schema the
// registry does not give (an outage, or a producer racing its
// registration) before the record is skipped.
const decodeTries = 3

// project decodes one record and projects it. A record that does not
// decode is logged by its place and a reason class (never its content or
// the decoder's text, which may quote it), counted, and skipped: one bad
// record must not stop the index.
func (s *Service) project(ctx context.Context, r *kgo.Record) []Update {
	if len(r.Value) == 0 {
		return nil // a tombstone of the compacted replay topic
	}
	var rec canonical.Record
	var err error
	wait := 200 * time.Millisecond
	for try := 1; ; try++ {
		rec, err = s.serde.Decode(ctx, r.Value)
		if err == nil || !errors.Is(err, canonical.ErrUnknownSchemaID) || try == decodeTries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
	if err != nil {
		reason := "undecodable"
		switch {
		case errors.Is(err, canonical.ErrWireFormat):
			reason = "not_wire_format"
		case errors.Is(err, canonical.ErrUnknownSchemaID):
			reason = "unknown_schema"
		}
		s.skipped.WithLabelValues(r.Topic).Inc()
		s.log.Warn("skipping a record the index cannot decode", logattr.Topic(r.Topic), logattr.Partition(r.Partition),
			logattr.Offset(r.Offset), logattr.Reason(reason))
		return nil
	}
	src := Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, TraceID: traceID(r.Headers)}
	switch v := rec.(type) {
	case *canonical.Raw:
		return s.proj.Raw(src, v)
	case *canonical.Parsed:
		return s.proj.Parsed(src, v)
	case *canonical.Transformed:
		return s.proj.Transformed(src, v)
	case *canonical.Decision:
		return s.proj.Decision(src, v)
	case *canonical.Delivery:
		return s.proj.Delivery(src, v)
	case *canonical.DeadLetter:
		return s.proj.DeadLetter(src, v)
	case *canonical.ReplayRecord:
		return s.proj.Replay(src, v)
	case *canonical.AuditEvent:
		return s.proj.Audit(src, v)
	}
	return nil
}

// traceID is the trace ID of a W3C traceparent header
// (00-<trace id>-<span id>-<flags>), "" without one.
func traceID(hs []kgo.RecordHeader) string {
	for _, h := range hs {
		if h.Key != "traceparent" {
			continue
		}
		parts := strings.Split(string(h.Value), "-")
		if len(parts) == 4 && len(parts[1]) == 32 {
			return parts[1]
		}
	}
	return ""
}
