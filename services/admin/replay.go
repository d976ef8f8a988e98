package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Files of the replay jobs: replay.go (the API side: Plan, Start, Jobs,
// Cancel, Discard), replay_plan.go (what a selector sends), replay_follow.go
// (every replica's view of the replay topic), replay_run.go (the runner's
// lease and the jobs it runs). The concurrency is described in
// replay_run.go's comment.

// ReplayerConfig is what NewReplayer needs.
type ReplayerConfig struct {
	// Kafka is the cluster and topic prefix; the replay topic is
	// <prefix>replay, the runner's group <prefix>admin.replay-runner.
	Kafka kafka.Config
	// Serde encodes and decodes the replay records (Run registers the
	// replay schema) and decodes dead letters.
	Serde *canonical.Serde
	// Index selects what a job sends; Records reads it back from Kafka.
	Index   Index
	Records RecordReader
	// Audit, when set, receives replay.plan, replay.start, replay.cancel
	// and dead_letter.discard from the Replay itself. Leave it nil behind
	// the HTTP Server, which audits these actions (with the caller's
	// address) around its calls: set, every action is audited twice.
	Audit Auditor
	// Limits bound the jobs (zero fields take the defaults).
	Limits ReplayConfig
	// Destinations are the configured destinations: a target or selector
	// naming another is refused.
	Destinations []string
	// Instance names this replica (static group membership of the
	// runner's group); replicas must differ.
	Instance string
	// Log receives the jobs' logs; Telemetry their metrics (both
	// optional).
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
}

// Replay is the Replayer: it plans and starts replay jobs, keeps every
// replica's list of them from the replay topic, and on the replica that
// holds the runner's lease runs them.
type Replay struct {
	cfg    ReplayerConfig
	kc     kafka.Config
	topic  string
	limits ReplayConfig
	log    *slog.Logger
	// prod writes the API's records (job starts and cancels, discards):
	// acks=all, idempotent, not transactional.
	prod   *kgo.Client
	follow *follower
	// ready is closed once Run has registered the replay schema and read
	// the replay topic up to where it ended at start.
	ready   chan struct{}
	metrics replayMetrics
	now     func() time.Time

	closeOnce sync.Once
	// leading is set while this replica holds the runner's lease.
	leading atomic.Bool

	// mu guards lastWrite: the offset of this replica's last write to the
	// replay topic, which Jobs and Job wait to see (read your writes).
	mu        sync.Mutex
	lastWrite int64
}

var _ Replayer = (*Replay)(nil)

// NewReplayer returns the Replayer; Run must run for Start, Jobs, Job,
// Cancel and Discard to answer (they wait for its view of the topic), and
// its return (or Close) closes its Kafka clients.
func NewReplayer(c ReplayerConfig) (*Replay, error) {
	switch {
	case c.Serde == nil:
		return nil, errors.New("replayer: no serde")
	case c.Index == nil:
		return nil, errors.New("replayer: no index")
	case c.Records == nil:
		return nil, errors.New("replayer: no record reader")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Telemetry == nil {
		c.Telemetry = telemetry.Nop()
	}
	l := c.Limits
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultMaxMessages
	}
	if l.MaxRate <= 0 {
		l.MaxRate = DefaultMaxRate
	}
	if l.Rate <= 0 {
		l.Rate = min(DefaultRate, l.MaxRate)
	}
	kc := c.Kafka.WithDefaults()
	if c.Instance != "" {
		kc.Instance = c.Instance
	}
	prod, err := kafka.NewProducer(kc, c.Log)
	if err != nil {
		return nil, fmt.Errorf("replayer: %w", err)
	}
	r := &Replay{cfg: c, kc: kc, topic: kc.Topic(kafka.TopicReplay), limits: l, log: c.Log, prod: prod,
		ready: make(chan struct{}), metrics: newReplayMetrics(c.Telemetry), now: time.Now, lastWrite: -1}
	r.follow = newFollower(c.Serde, c.Log)
	return r, nil
}

// Close closes the Kafka clients NewReplayer made. Run calls it when it
// returns; it is safe to call more than once.
func (r *Replay) Close() { r.closeOnce.Do(r.prod.Close) }

// Plan is a dry run: what req would send, without sending anything
// (audited replay.plan when ReplayerConfig.Audit is set).
func (r *Replay) Plan(ctx context.Context, p Principal, req api.ReplayRequest) (*api.ReplayPlan, error) {
	pl, err := r.plan(ctx, req)
	if err != nil {
		return nil, err
	}
	plan := pl.answer()
	if err := r.audit(ctx, p, "replay.plan", "", req.Selector, plan.Count, ""); err != nil {
		return nil, err
	}
	return plan, nil
}

// Start plans req again and starts the job: it answers ErrConfirmNewer
// with the plan when the plan has warnings and req.ConfirmNewer is not
// set, and otherwise the job as the replay topic now holds it. A filter
// without until gets until = now, so the job (and a runner resuming it
// later) sends what matched when it started, not what arrived since.
func (r *Replay) Start(ctx context.Context, p Principal, req api.ReplayRequest) (*api.ReplayJob, *api.ReplayPlan, error) {
	if err := r.waitReady(ctx); err != nil {
		return nil, nil, err
	}
	now := r.now().UTC()
	if isFilter(req.Selector) && req.Selector.Until.IsZero() {
		req.Selector.Until = now
	}
	pl, err := r.plan(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	plan := pl.answer()
	if len(plan.Warnings) > 0 && !req.ConfirmNewer {
		return nil, plan, ErrConfirmNewer
	}
	id := ulid.Make().String()
	sel, err := selectorJSON(req.Selector)
	if err != nil {
		return nil, nil, err
	}
	job := canonical.ReplayJob{State: canonical.ReplayJobRunning, Actor: p.Actor, Role: string(p.Role), Selector: sel,
		Target: pl.target, Resend: req.Resend, ConfirmedNewer: req.ConfirmNewer, Rate: pl.rate,
		Total: plan.Count, Skipped: plan.Skipped, Failed: plan.NotReplayable, CreatedAt: now, UpdatedAt: now}
	// Audited before it starts: a job nobody can trace must not run.
	if err := r.audit(ctx, p, "replay.start", id, req.Selector, plan.Count, ""); err != nil {
		return nil, nil, err
	}
	if err := r.write(ctx, jobRecord(id, job, now)); err != nil {
		return nil, nil, fmt.Errorf("starting replay job: %w", err)
	}
	j, err := r.Job(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return j, plan, nil
}

// Jobs lists the jobs, newest first, as the replay topic holds them
// (including this replica's own writes).
func (r *Replay) Jobs(ctx context.Context) ([]api.ReplayJob, error) {
	if err := r.caughtUp(ctx); err != nil {
		return nil, err
	}
	return r.follow.jobs(), nil
}

// Job returns one job, ErrNotFound for an unknown ID.
func (r *Replay) Job(ctx context.Context, id string) (*api.ReplayJob, error) {
	if err := r.caughtUp(ctx); err != nil {
		return nil, err
	}
	j, ok := r.follow.job(id)
	if !ok {
		return nil, ErrNotFound
	}
	return &j, nil
}

// Cancel ends a running job: it writes the job with state cancelled, which
// the runner sees and stops at (its last record then says cancelled with
// the final counts). A job already ended is answered as it is.
func (r *Replay) Cancel(ctx context.Context, p Principal, id string) (*api.ReplayJob, error) {
	if err := r.caughtUp(ctx); err != nil {
		return nil, err
	}
	v, ok := r.follow.view(id)
	if !ok {
		return nil, ErrNotFound
	}
	if v.job.State != canonical.ReplayJobRunning {
		if err := r.audit(ctx, p, "replay.cancel", id, api.ReplaySelector{}, 0, "already "+v.job.State); err != nil {
			return nil, err
		}
		return r.Job(ctx, id)
	}
	if err := r.audit(ctx, p, "replay.cancel", id, api.ReplaySelector{}, v.job.Total, ""); err != nil {
		return nil, err
	}
	now := r.now().UTC()
	job := v.job
	job.State, job.UpdatedAt = canonical.ReplayJobCancelled, now
	job.Sent = max(job.Sent, v.sentCount())
	if err := r.write(ctx, jobRecord(id, job, now)); err != nil {
		return nil, fmt.Errorf("cancelling replay job: %w", err)
	}
	return r.Job(ctx, id)
}

// Discard sets dead letters aside (a discard record each, keyed
// discard/<id>): reason is required and every ID must be a known dead
// letter, or nothing is discarded. It returns how many it discarded.
func (r *Replay) Discard(ctx context.Context, p Principal, ids []string, reason string) (int, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return 0, &FieldError{Param: "reason", Msg: "required: say why the dead letters are set aside"}
	}
	if len(ids) == 0 {
		return 0, &FieldError{Param: "ids", Msg: "name at least one dead letter"}
	}
	if len(ids) > r.limits.MaxMessages {
		return 0, &FieldError{Param: "ids", Msg: fmt.Sprintf("more than %d dead letters; discard fewer at a time", r.limits.MaxMessages)}
	}
	seen := map[string]bool{}
	var dls []*api.DeadLetter
	var order []string
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		dl, err := r.cfg.Index.DeadLetter(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return 0, &FieldError{Param: "ids", Msg: "no dead letter " + id}
		}
		if err != nil {
			return 0, fmt.Errorf("looking up dead letter %s: %w", id, err)
		}
		dls, order = append(dls, dl), append(order, id)
	}
	if err := r.waitReady(ctx); err != nil {
		return 0, err
	}
	now := r.now().UTC()
	var recs []*kgo.Record
	for i, dl := range dls {
		id := order[i]
		rec, err := r.encode(discardKey(id), &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: now,
			Discard: &canonical.Discard{DeadLetterID: id, MessageID: dl.MessageID, Reason: reason, Actor: p.Actor}})
		if err != nil {
			return 0, err
		}
		recs = append(recs, rec)
	}
	if err := r.audit(ctx, p, "dead_letter.discard", strings.Join(slices.Sorted(maps.Keys(seen)), ","), api.ReplaySelector{DeadLetters: ids}, int64(len(recs)), reason); err != nil {
		return 0, err
	}
	if err := r.writeAll(ctx, recs); err != nil {
		return 0, fmt.Errorf("discarding dead letters: %w", err)
	}
	return len(recs), nil
}

// audit writes one audit event of this service, when the Replay audits.
func (r *Replay) audit(ctx context.Context, p Principal, action, resource string, sel api.ReplaySelector, count int64, detail string) error {
	if r.cfg.Audit == nil {
		return nil
	}
	s := ""
	if !isZeroSelector(sel) {
		var err error
		if s, err = selectorJSON(sel); err != nil {
			return err
		}
	}
	e := canonical.AuditEvent{EventID: ulid.Make().String(), At: r.now().UTC(), Service: "admin", Actor: p.Actor, Role: string(p.Role),
		Auth: p.Auth, Action: action, Resource: resource, Selector: s, Count: count, Outcome: canonical.AuditOK, Detail: detail}
	if err := r.cfg.Audit.Audit(ctx, e); err != nil {
		return fmt.Errorf("auditing %s: %w", action, err)
	}
	return nil
}

// selectorJSON is the selector's canonical JSON: encoding/json writes a
// struct's fields in their declared order, so the same selector always
// gives the same text. The selector has no patient identifier field, so
// nothing in it needs keying.
func selectorJSON(sel api.ReplaySelector) (string, error) {
	b, err := json.Marshal(sel)
	if err != nil {
		return "", fmt.Errorf("encoding the selector: %w", err)
	}
	return string(b), nil
}

func isZeroSelector(s api.ReplaySelector) bool {
	return len(s.MessageIDs) == 0 && len(s.DeadLetters) == 0 && !isFilter(s) && s.Destination == ""
}

// encode makes a replay-topic record.
func (r *Replay) encode(key string, rec *canonical.ReplayRecord) (*kgo.Record, error) {
	v, err := r.cfg.Serde.Encode(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding a replay record: %w", err)
	}
	return &kgo.Record{Topic: r.topic, Key: []byte(key), Value: v}, nil
}

// write writes one replay record with the API's producer.
func (r *Replay) write(ctx context.Context, rec *canonical.ReplayRecord) error {
	kr, err := r.encode(recordKey(rec), rec)
	if err != nil {
		return err
	}
	return r.writeAll(ctx, []*kgo.Record{kr})
}

// writeAll writes records with the API's producer and remembers the last
// offset, for the read-your-writes barrier.
func (r *Replay) writeAll(ctx context.Context, recs []*kgo.Record) error {
	if err := r.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	r.mu.Lock()
	for _, rec := range recs {
		r.lastWrite = max(r.lastWrite, rec.Offset)
	}
	r.mu.Unlock()
	return nil
}

// waitReady waits for Run to be ready.
func (r *Replay) waitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("replay jobs not ready: %w", ctx.Err())
	}
}

// caughtUp waits until this replica's view of the replay topic holds its
// own last write.
func (r *Replay) caughtUp(ctx context.Context) error {
	if err := r.waitReady(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	off := r.lastWrite
	r.mu.Unlock()
	return r.follow.wait(ctx, off)
}

// Keys of the replay topic (kafka.TopicReplay).
func jobKey(id string) string { return "job/" + id }

func itemKey(job, message, dest string) string {
	if dest == "" {
		dest = "-"
	}
	return "item/" + job + "/" + message + "/" + dest
}

func discardKey(id string) string { return "discard/" + id }

func recordKey(rec *canonical.ReplayRecord) string {
	switch {
	case rec.Job != nil:
		return jobKey(rec.JobID)
	case rec.Item != nil:
		return itemKey(rec.JobID, itemMessage(*rec.Item), rec.Item.Destination)
	case rec.Discard != nil:
		return discardKey(rec.Discard.DeadLetterID)
	}
	return ""
}

// itemMessage is the message part of an item's key: its message ID, or
// for a dead letter without one (bytes no stage could read) its dead
// letter ID, so two such dead letters of one job keep apart.
func itemMessage(it canonical.ReplayItem) string {
	if it.MessageID == "" {
		return it.DeadLetterID
	}
	return it.MessageID
}

func jobRecord(id string, job canonical.ReplayJob, at time.Time) *canonical.ReplayRecord {
	return &canonical.ReplayRecord{Kind: canonical.ReplayKindJob, JobID: id, At: at, Job: &job}
}
