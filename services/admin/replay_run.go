package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// How the replay jobs run.
//
// Every replica follows the replay topic (one partition, compacted) from
// the start, committed records only: that is its job list (follower).
// Every replica also joins the group <prefix>admin.replay-runner on that
// topic; the member assigned partition 0 holds the runner's lease and is
// the only one that sends. The group's rebalance protocol is the lease:
// the revoke callback stops the runner and waits for it (its transaction
// in hand ends first), so the next member is given the partition only
// after the last one stopped sending.
//
// The runner sends with a transactional producer whose ID is the same on
// every replica (<prefix>admin.replay-runner): a new leader's producer ID
// fences the last one's, and aborts a transaction it left open (a replica
// that died mid-batch), before the new leader reads the topic up to its
// last stable offset. Each batch is one transaction holding the records
// re-sent, an item record for each (written before its record, in the same
// transaction), and every 2 s the job record with its counts: the items a
// job has on the topic are exactly what it has sent, so a leader resuming
// a job skips those (not merely the first `sent`: the job record lags its
// items by up to 2 s, and the index's statuses, which a filter may select
// on, change as the job sends). Resuming re-plans the job's selector; a
// filter's until was frozen at start, so the selection is the same,
// oldest first.
//
// Cancel is the API writing the job record with state cancelled. The
// runner checks its view before every batch and stops; its last record
// says cancelled with the final counts. A progress record that crossed
// the cancel on the topic does not revive the job (follower.applyOne);
// the runner rewrites the terminal record after it (repair), so the
// compacted topic keeps the end.

// Runner tuning.
const (
	// progressEvery is how often a running job's record is rewritten.
	progressEvery = 2 * time.Second
	// maxBatch bounds the records of one transaction.
	maxBatch = 100
	// retryWait is the pause after a batch or a lead that failed.
	retryWait = time.Second
	// batchTimeout bounds one transaction, which is never cut short by a
	// lost lease (a transaction abandoned halfway would leave the producer
	// unusable).
	batchTimeout = 30 * time.Second
)

type replayMetrics struct {
	sent   *prometheus.CounterVec
	leader *prometheus.GaugeVec
}

func newReplayMetrics(t *telemetry.Telemetry) replayMetrics {
	return replayMetrics{
		sent: t.CounterVec(prometheus.CounterOpts{Name: "hl7bus_replay_records_total",
			Help: "Records replay jobs re-sent (sent), or could not read back (failed), by target kind."}, "target", "outcome"),
		leader: t.GaugeVec(prometheus.GaugeOpts{Name: "hl7bus_replay_runner_leader",
			Help: "1 on the admin replica that holds the replay runner's lease."}),
	}
}

// targetKind is a metric label: parse, transform, route, destination or
// dead_letter (never a job ID or destination name).
func targetKind(target string) string {
	switch target {
	case "":
		return "dead_letter"
	case api.TargetParse, api.TargetTransform, api.TargetRoute:
		return target
	}
	return "destination"
}

// Run follows the replay topic and, while this replica holds the runner's
// lease, runs the jobs, until ctx ends. It creates the replay topic when
// missing and registers its schema. It closes the clients when it returns.
func (r *Replay) Run(ctx context.Context) error {
	defer r.Close()
	adm, err := kafka.NewAdmin(r.kc, r.log)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer adm.Close()
	if err := kafka.EnsureCompactedTopics(ctx, adm, r.kc, r.topic); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if _, err := r.cfg.Serde.Register(ctx, r.topic, schemas.Replay); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	follow, err := kafka.NewAdmin(r.kc, r.log,
		kgo.ConsumeTopics(r.topic),
		// The job list is the whole topic.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Never an aborted batch of a runner: its items were not sent.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The transaction markers count in the follower's offset, so it
		// can tell it has reached the last stable offset.
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer follow.Close()
		errc <- r.followLoop(ctx, follow)
	}()
	defer wg.Wait()
	if err := r.catchUp(ctx, adm); err != nil {
		cancel()
		return nil //nolint:nilerr // only ctx ends a catch-up
	}
	close(r.ready)

	l := &lease{}
	grp, err := kafka.NewConsumer(r.kc, r.log, r.kc.TopicPrefix+"admin.replay-runner", []string{r.topic},
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if slices.Contains(m[r.topic], 0) {
				l.acquire(ctx, r.lead)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if slices.Contains(m[r.topic], 0) {
				l.release()
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if slices.Contains(m[r.topic], 0) {
				l.release()
			}
		}),
	)
	if err != nil {
		cancel()
		return fmt.Errorf("replay: %w", err)
	}
	// The group is only a lease: the records are the follower's to read.
	grp.PauseFetchTopics(r.topic)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	grp.Close()
	l.release()
	return runErr
}

// followLoop applies the replay topic to the follower until ctx ends.
func (r *Replay) followLoop(ctx context.Context, cl *kgo.Client) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch error", logattr.Topic(t), logattr.Partition(p), logattr.Error(err))
		})
		if err := r.follow.apply(ctx, fs.Records()); err != nil {
			return nil //nolint:nilerr // apply fails only when ctx ends
		}
	}
}

// catchUp waits until the follower has read the replay topic up to its
// last stable offset now.
func (r *Replay) catchUp(ctx context.Context, cl *kgo.Client) error {
	for {
		offs, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, r.topic)
		if err == nil {
			err = offs.Error()
		}
		if err == nil {
			o, ok := offs.Lookup(r.topic, 0)
			if !ok {
				return r.follow.wait(ctx, -1)
			}
			return r.follow.wait(ctx, o.Offset-1)
		}
		r.log.Warn("listing the replay topic's offsets", logattr.Topic(r.topic), logattr.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryWait):
		}
	}
}

// lease runs the leader while this replica holds partition 0.
type lease struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *lease) acquire(parent context.Context, lead func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		lead(ctx)
	}()
}

// release stops the leader and waits for it.
func (l *lease) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
	l.cancel, l.done = nil, nil
}

// lead runs jobs until ctx ends (the lease is lost), starting over after a
// failure with a new producer.
func (r *Replay) lead(ctx context.Context) {
	r.metrics.leader.WithLabelValues().Set(1)
	r.leading.Store(true)
	defer func() {
		r.leading.Store(false)
		r.metrics.leader.WithLabelValues().Set(0)
	}()
	r.log.Info("replay runner lease taken", logattr.Instance(r.kc.Instance))
	defer r.log.Info("replay runner lease given up", logattr.Instance(r.kc.Instance))
	for ctx.Err() == nil {
		err := r.leadOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("replay runner failed; starting over", logattr.Error(err), logattr.Backoff(retryWait))
		select {
		case <-ctx.Done():
		case <-time.After(retryWait):
		}
	}
}

// leadOnce fences the last leader, catches up, and runs jobs.
func (r *Replay) leadOnce(ctx context.Context) error {
	prod, err := kafka.NewProducer(r.kc, r.log,
		// One ID for every replica: the leader's producer fences the one
		// before it and aborts what it left open.
		kgo.TransactionalID(r.kc.TopicPrefix+"admin.replay-runner"),
	)
	if err != nil {
		return err
	}
	defer prod.Close()
	if _, _, err := prod.ProducerID(ctx); err != nil {
		return fmt.Errorf("initializing the transactional producer: %w", err)
	}
	if err := r.catchUp(ctx, prod); err != nil {
		return err
	}
	for {
		running, stale := r.follow.runnable()
		for _, id := range stale {
			if err := r.repair(ctx, prod, id); err != nil {
				return err
			}
		}
		if len(running) == 0 {
			ch := r.follow.changes()
			if running, stale = r.follow.runnable(); len(running)+len(stale) == 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-ch:
				}
			}
			continue
		}
		if err := r.runJob(ctx, prod, running[0]); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// repair rewrites an ended job's record after a progress record that
// crossed its end.
func (r *Replay) repair(ctx context.Context, prod *kgo.Client, id string) error {
	v, ok := r.follow.view(id)
	if !ok || !v.stale {
		return nil
	}
	now := r.now().UTC()
	v.job.UpdatedAt = now
	rec, err := r.encode(jobKey(id), jobRecord(id, v.job, now))
	if err != nil {
		return err
	}
	return r.transact(ctx, prod, []*kgo.Record{rec}, nil)
}

// runJob runs one job until it is done, cancelled, or the lease is lost.
// A job whose selector cannot be planned any more fails (state failed,
// the error in the record); an error of Kafka is returned, the job still
// running.
func (r *Replay) runJob(ctx context.Context, prod *kgo.Client, id string) error {
	v, ok := r.follow.view(id)
	if !ok || v.job.State != canonical.ReplayJobRunning {
		return nil
	}
	job := v.job
	var sel api.ReplaySelector
	if err := json.Unmarshal([]byte(job.Selector), &sel); err != nil {
		job.State, job.Error = canonical.ReplayJobFailed, "the selector is not readable"
		return r.finish(ctx, prod, id, job)
	}
	pl, err := r.plan(ctx, api.ReplayRequest{Selector: sel, Target: job.Target, Resend: job.Resend})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if fe, ok := errors.AsType[*FieldError](err); ok {
		// The configuration changed under the job (a destination gone,
		// a lower max_messages).
		job.State, job.Error = canonical.ReplayJobFailed, "the selector no longer plans: "+fe.Error()
		return r.finish(ctx, prod, id, job)
	}
	if err != nil {
		return err // the index: try again
	}
	// The items on the topic are what the job has handled: sent, or
	// failed (a failed item is in the same transaction as the job record
	// that counts it, so job.Failed already does).
	handled := v.items
	job.Sent = v.sentCount()
	var todo []planItem
	for _, it := range pl.items {
		if !handled[itemMessage(it.ReplayItem)+"/"+it.Destination] {
			todo = append(todo, it)
		}
	}
	r.log.Info("replay job running", logattr.ReplayJob(id), logattr.Limit(len(todo)))
	start := time.Now()
	done := 0 // records handled in this run, for the pace
	lastProgress := time.Time{}
	for len(todo) > 0 {
		if cur, ok := r.follow.view(id); !ok || cur.job.State != canonical.ReplayJobRunning {
			if !ok {
				return nil
			}
			job.State = cur.job.State
			return r.finish(ctx, prod, id, job)
		}
		// Pace: record n (0-based) of this run goes no sooner than
		// start + n/rate.
		now := time.Now()
		allowed := int(now.Sub(start).Seconds()*job.Rate) + 1 - done
		if allowed <= 0 {
			next := start.Add(time.Duration(float64(done) / job.Rate * float64(time.Second)))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.follow.changes():
			case <-time.After(time.Until(next)):
			}
			continue
		}
		batch := todo[:min(allowed, maxBatch, len(todo))]
		recs, sentN, failed, err := r.build(ctx, id, job.Target, batch)
		if err != nil {
			return err
		}
		job.Sent += int64(sentN)
		job.Failed += int64(failed)
		var progress *kgo.Record
		// A batch with failures carries the job record that counts them,
		// in the same transaction as their items: a runner resuming the
		// job skips those items and must find them counted already.
		if time.Since(lastProgress) >= progressEvery || len(batch) == len(todo) || failed > 0 {
			at := r.now().UTC()
			job.UpdatedAt = at
			if len(batch) == len(todo) {
				job.State = canonical.ReplayJobDone
			}
			if progress, err = r.encode(jobKey(id), jobRecord(id, job, at)); err != nil {
				return err
			}
		}
		if err := r.transact(ctx, prod, recs, progress); err != nil {
			return err
		}
		if progress != nil {
			lastProgress = time.Now()
		}
		r.metrics.sent.WithLabelValues(targetKind(job.Target), "sent").Add(float64(sentN))
		r.metrics.sent.WithLabelValues(targetKind(job.Target), "failed").Add(float64(failed))
		todo = todo[len(batch):]
		done += len(batch)
	}
	if job.State != canonical.ReplayJobDone {
		// Nothing (more) to send.
		job.State = canonical.ReplayJobDone
		return r.finish(ctx, prod, id, job)
	}
	r.log.Info("replay job done", logattr.ReplayJob(id))
	return nil
}

// finish writes a job's last record.
func (r *Replay) finish(ctx context.Context, prod *kgo.Client, id string, job canonical.ReplayJob) error {
	at := r.now().UTC()
	job.UpdatedAt = at
	rec, err := r.encode(jobKey(id), jobRecord(id, job, at))
	if err != nil {
		return err
	}
	r.log.Info("replay job ended", logattr.ReplayJob(id), logattr.Reason(job.State))
	return r.transact(ctx, prod, []*kgo.Record{rec}, nil)
}

// transact writes recs (and last, when set) in one transaction.
func (r *Replay) transact(ctx context.Context, prod *kgo.Client, recs []*kgo.Record, last *kgo.Record) error {
	if last != nil {
		recs = append(recs, last)
	}
	if len(recs) == 0 {
		return nil
	}
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	if err := prod.BeginTransaction(); err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	perr := prod.ProduceSync(work, recs...).FirstErr()
	end := kgo.TryCommit
	if perr != nil {
		end = kgo.TryAbort
	}
	if err := prod.EndTransaction(work, end); err != nil {
		return fmt.Errorf("ending a transaction: %w", errors.Join(perr, err))
	}
	if perr != nil {
		return fmt.Errorf("sending replayed records: %w", perr)
	}
	// The runner decides from the follower's view (what a job has sent,
	// whether it ended): it must hold what was just written, or the next
	// look would send the last batch again.
	last = nil
	for _, rec := range recs {
		if rec.Topic == r.topic && (last == nil || rec.Offset > last.Offset) {
			last = rec
		}
	}
	if last != nil {
		return r.follow.wait(ctx, last.Offset)
	}
	return nil
}

// build reads each item's record back and makes the records to send: the
// item record, one item record for each destination it reopens
// (planItem.Reopens), then the record itself; sent counts the records
// sent. A record gone from its topic (retention) or a dead letter that
// does not decode is counted failed and gets an item with no target topic
// (the index projects nothing for it): a runner resuming the job passes
// over it instead of failing it again. Another error is returned (it may
// pass).
func (r *Replay) build(ctx context.Context, job, target string, items []planItem) (recs []*kgo.Record, sent, failed int, err error) {
	at := r.now().UTC()
	item := func(it canonical.ReplayItem) (*kgo.Record, error) {
		return r.encode(itemKey(job, itemMessage(it), it.Destination),
			&canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: job, At: at, Item: &it})
	}
	fail := func(it planItem) error {
		failed++
		f := it.ReplayItem
		f.TargetTopic = ""
		ir, err := item(f)
		if err != nil {
			return err
		}
		recs = append(recs, ir)
		return nil
	}
	for _, it := range items {
		rec, err := r.cfg.Records.Read(ctx, it.Source.Topic, it.Source.Partition, it.Source.Offset)
		if errors.Is(err, ErrRecordGone) {
			if err := fail(it); err != nil {
				return nil, 0, 0, err
			}
			continue
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("reading %s/%d/%d: %w", it.Source.Topic, it.Source.Partition, it.Source.Offset, err)
		}
		out := &kgo.Record{Topic: it.TargetTopic, Key: rec.Key, Value: rec.Value}
		hs := rec.Headers
		if it.DeadLetterID != "" {
			d, err := r.cfg.Serde.Decode(ctx, rec.Value)
			if errors.Is(err, canonical.ErrUnknownSchemaID) {
				return nil, 0, 0, fmt.Errorf("decoding dead letter %s: %w", it.DeadLetterID, err)
			}
			dl, ok := d.(*canonical.DeadLetter)
			if err != nil || !ok || dl.SourceTopic == "" {
				r.log.Warn("dead letter not readable; not replayed", logattr.Topic(it.Source.Topic), logattr.Offset(it.Source.Offset))
				if err := fail(it); err != nil {
					return nil, 0, 0, err
				}
				continue
			}
			out.Topic, out.Key, out.Value, hs = dl.SourceTopic, dl.Key, dl.Value, mapHeaders(dl.Headers)
		}
		for _, h := range hs {
			// A record replayed before carries the earlier job's headers.
			if h.Key != kafka.HeaderReplayJob && h.Key != kafka.HeaderReplayDestinations {
				out.Headers = append(out.Headers, h)
			}
		}
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: kafka.HeaderReplayJob, Value: []byte(job)})
		if len(it.Only) > 0 {
			out.Headers = append(out.Headers, kgo.RecordHeader{Key: kafka.HeaderReplayDestinations, Value: []byte(strings.Join(it.Only, ","))})
		}
		main := it.ReplayItem
		main.TargetTopic = out.Topic
		ir, err := item(main)
		if err != nil {
			return nil, 0, 0, err
		}
		recs = append(recs, ir)
		for _, d := range it.Reopens {
			if d == main.Destination {
				continue
			}
			ri := main
			ri.Destination = d
			if ir, err = item(ri); err != nil {
				return nil, 0, 0, err
			}
			recs = append(recs, ir)
		}
		recs = append(recs, out)
		sent++
	}
	return recs, sent, failed, nil
}

// mapHeaders turns a dead letter's headers back into record headers, in
// key order (a map has none).
func mapHeaders(m map[string][]byte) []kgo.RecordHeader {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	hs := make([]kgo.RecordHeader, 0, len(keys))
	for _, k := range keys {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: m[k]})
	}
	return hs
}
