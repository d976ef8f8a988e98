package admin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// follower is one replica's view of the replay topic, read from the start
// (committed records only): every job's latest state and the items each
// job has sent. Its offset counts control records too (the commit and
// abort markers of the runner's transactions), so "caught up to the
// topic's last stable offset" is a state it reaches.
type follower struct {
	serde *canonical.Serde
	log   *slog.Logger

	mu    sync.Mutex
	views map[string]*jobView
	// next is the offset after the last record applied.
	next int64
	// changed is closed (and replaced) whenever records are applied.
	changed chan struct{}
}

// jobView is what the topic says of one job.
type jobView struct {
	id  string
	job canonical.ReplayJob
	// seen is whether a job record was read (items can only follow one,
	// but a view starts at whichever comes first).
	seen bool
	// stale is set when a running record followed a terminal one: a
	// runner's progress record crossed the API's cancel. The job stays
	// ended; the runner rewrites the terminal record so compaction, which
	// keeps a key's last record, keeps that one.
	stale bool
	// items are the (message, destination) keys the job has handled:
	// sent, or failed (an item without a target topic: the record could
	// not be read back).
	items map[string]bool
	// sent holds the sources of the records the job has sent. A record
	// sent into a stage has one item for the message and one for each
	// destination it reopens, all with its source: counting sources
	// counts it once.
	sent map[canonical.RecordRef]bool
}

// sentCount is how many records the items say the job sent.
func (v jobView) sentCount() int64 { return int64(len(v.sent)) }

func newFollower(serde *canonical.Serde, log *slog.Logger) *follower {
	return &follower{serde: serde, log: log, views: map[string]*jobView{}, changed: make(chan struct{})}
}

// terminal reports whether a job state is an end.
func terminal(state string) bool { return state != canonical.ReplayJobRunning }

// apply applies fetched records in order. A record that cannot be decoded
// for a cause that may pass (the registry) is retried until ctx ends; one
// that never will is logged and passed over.
func (f *follower) apply(ctx context.Context, recs []*kgo.Record) error {
	for _, rec := range recs {
		var rr *canonical.ReplayRecord
		if !rec.Attrs.IsControl() {
			for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
				d, err := f.serde.Decode(ctx, rec.Value)
				if err == nil {
					rr, _ = d.(*canonical.ReplayRecord)
					break
				}
				if !errors.Is(err, canonical.ErrUnknownSchemaID) {
					f.log.Warn("replay record not readable; passed over", logattr.Topic(rec.Topic), logattr.Offset(rec.Offset), logattr.Error(err))
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
		}
		f.mu.Lock()
		if rr != nil {
			f.applyOne(rr)
		}
		f.next = rec.Offset + 1
		f.mu.Unlock()
	}
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

func (f *follower) applyOne(rr *canonical.ReplayRecord) {
	if rr.JobID == "" {
		return // a discard: the index's business
	}
	v := f.views[rr.JobID]
	if v == nil {
		v = &jobView{id: rr.JobID, items: map[string]bool{}, sent: map[canonical.RecordRef]bool{}}
		f.views[rr.JobID] = v
	}
	switch {
	case rr.Job != nil:
		j := *rr.Job
		switch {
		case v.seen && terminal(v.job.State) && !terminal(j.State):
			// The job ended before this progress record was written: it
			// stays ended, with the counts it reached.
			v.stale = true
			v.job.Sent, v.job.Failed = max(v.job.Sent, j.Sent), max(v.job.Failed, j.Failed)
		default:
			v.job, v.seen, v.stale = j, true, false
		}
	case rr.Item != nil:
		v.items[itemMessage(*rr.Item)+"/"+rr.Item.Destination] = true
		if rr.Item.TargetTopic != "" {
			v.sent[rr.Item.Source] = true
		}
	}
}

// wait returns once the view holds the record at offset off (nothing for
// off < 0), or ctx ends.
func (f *follower) wait(ctx context.Context, off int64) error {
	for {
		f.mu.Lock()
		next, ch := f.next, f.changed
		f.mu.Unlock()
		if next > off {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// changes returns a channel closed at the next change.
func (f *follower) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// view returns a copy of one job's view.
func (f *follower) view(id string) (jobView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.views[id]
	if v == nil || !v.seen {
		return jobView{}, false
	}
	c := *v
	c.items, c.sent = maps.Clone(v.items), maps.Clone(v.sent)
	return c, true
}

// job returns one job as the API shows it.
func (f *follower) job(id string) (api.ReplayJob, bool) {
	v, ok := f.view(id)
	if !ok {
		return api.ReplayJob{}, false
	}
	return v.answer(), true
}

// jobs lists every job, newest first.
func (f *follower) jobs() []api.ReplayJob {
	f.mu.Lock()
	var out []api.ReplayJob
	for _, v := range f.views {
		if v.seen {
			out = append(out, v.answer())
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b api.ReplayJob) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if out == nil {
		out = []api.ReplayJob{}
	}
	return out
}

// runnable returns the running jobs, oldest first, and the ended jobs
// whose last record is stale.
func (f *follower) runnable() (running, stale []string) {
	f.mu.Lock()
	var vs []*jobView
	for _, v := range f.views {
		switch {
		case !v.seen:
		case v.stale:
			stale = append(stale, v.id)
		case v.job.State == canonical.ReplayJobRunning:
			vs = append(vs, v)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(vs, func(a, b *jobView) int {
		if c := a.job.CreatedAt.Compare(b.job.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, v := range vs {
		running = append(running, v.id)
	}
	slices.Sort(stale)
	return running, stale
}

// answer is the view as the API shows it: the selector decoded back from
// its canonical JSON, Sent at least the items seen (the job record is
// written only every few seconds).
func (v jobView) answer() api.ReplayJob {
	j := v.job
	a := api.ReplayJob{ID: v.id, State: j.State, Actor: j.Actor, Target: j.Target, Resend: j.Resend, ConfirmedNewer: j.ConfirmedNewer,
		Rate: j.Rate, Total: j.Total, Sent: max(j.Sent, v.sentCount()), Skipped: j.Skipped, Failed: j.Failed,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, Error: j.Error}
	// A selector that does not decode (written by a newer version) still
	// lists the job, without it.
	_ = json.Unmarshal([]byte(j.Selector), &a.Selector)
	return a
}
