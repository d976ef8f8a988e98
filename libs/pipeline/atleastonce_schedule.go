package pipeline

import (
	"container/heap"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// scheduler decides which fetched record is processed next and how far
// each partition's offset may be committed for AtLeastOnce (DESIGN.md
// states its invariants). Records of one ordering key (the Kafka key) go
// one at a time in offset order; different keys go in any order; the
// committable offset of a partition is that of its lowest unfinished
// record. It does no I/O and is owned by one goroutine (the driver's
// coordinator).
type scheduler[S any] struct {
	parts map[int32]*partState[S]
	// ready holds key heads that may go now, oldest first.
	ready []*Job[S]
	// waiting holds key heads in backoff, soonest first.
	waiting waitHeap[S]
	// pending counts unfinished records and their bytes.
	pending, pendingBytes int
}

// Job is one record on its way through AtLeastOnce. It is touched by
// whichever goroutine holds it: the coordinator while it is queued, the
// stage's Process while it is in flight, so State needs no lock.
type Job[S any] struct {
	// Rec is the record, as fetched.
	Rec *kgo.Record
	// State is the stage's, kept across the tries of the record (egress:
	// the decoded message, its failed attempts, when it first failed).
	State S

	part *partState[S]
	key  string
	// readyAt is when a job in backoff may go again.
	readyAt time.Time
	state   jobState
	index   int // in waiting
}

type jobState int

const (
	queued   jobState = iota // in no list: behind an earlier record of its key
	ready                    // in ready
	waiting                  // in waiting (backoff)
	inFlight                 // with Process
	finished                 // done (egress: delivered or dead-lettered)
)

// partState is one partition's records in offset order.
type partState[S any] struct {
	partition int32
	// entries are the records fetched and not yet passed by the commit
	// point, in offset order.
	entries []*Job[S]
	keys    map[string][]*Job[S] // unfinished records per key, in offset order
	// next is the offset to commit (one past the last record passed); -1
	// before anything finished.
	next  int64
	epoch int32
	dirty bool
	// last is the highest offset added, to drop a record fetched twice.
	last int64
	// revoking: the group is taking the partition away; nothing more of it
	// is processed, and the jobs in flight finish before it is forgotten.
	revoking bool
	gone     bool // revoked: results of its jobs are ignored
}

func newScheduler[S any]() *scheduler[S] { return &scheduler[S]{parts: map[int32]*partState[S]{}} }

// add takes a fetched record. A record with no key is its own key: it
// waits for nothing. (hl7bus records always have one; with ordering: none
// it is the message ID, so such records wait for nothing either.)
func (s *scheduler[S]) add(rec *kgo.Record) {
	p := s.parts[rec.Partition]
	if p == nil {
		p = &partState[S]{partition: rec.Partition, keys: map[string][]*Job[S]{}, next: -1, last: -1}
		s.parts[rec.Partition] = p
	}
	if rec.Offset <= p.last {
		return
	}
	p.last = rec.Offset
	key := string(rec.Key)
	if len(rec.Key) == 0 {
		key = "\x00" + strconv.FormatInt(rec.Offset, 10)
	}
	j := &Job[S]{Rec: rec, part: p, key: key, index: -1}
	p.entries = append(p.entries, j)
	p.keys[key] = append(p.keys[key], j)
	s.pending++
	s.pendingBytes += len(rec.Value)
	if len(p.keys[key]) == 1 {
		j.state = ready
		s.ready = append(s.ready, j)
	}
}

// next returns the oldest ready job, now in flight, or nil.
func (s *scheduler[S]) next() *Job[S] {
	for len(s.ready) > 0 {
		j := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		if j.part.gone || j.part.revoking || j.state != ready {
			continue
		}
		j.state = inFlight
		return j
	}
	return nil
}

// hasReady reports whether next would return a job.
func (s *scheduler[S]) hasReady() bool {
	for len(s.ready) > 0 && (s.ready[0].part.gone || s.ready[0].part.revoking || s.ready[0].state != ready) {
		s.ready[0] = nil
		s.ready = s.ready[1:]
	}
	return len(s.ready) > 0
}

// done records that j is finished (delivered or dead-lettered): the next
// record of its key becomes ready and the commit point moves past every
// finished record at the front of the partition.
func (s *scheduler[S]) done(j *Job[S]) {
	if j.part.gone || j.state != inFlight {
		return
	}
	j.state = finished
	s.pending--
	s.pendingBytes -= len(j.Rec.Value)
	p := j.part
	q := p.keys[j.key]
	q[0] = nil
	q = q[1:]
	if len(q) == 0 {
		delete(p.keys, j.key)
	} else {
		p.keys[j.key] = q
		q[0].state = ready
		s.ready = append(s.ready, q[0])
	}
	n := 0
	for n < len(p.entries) && p.entries[n].state == finished {
		p.next, p.epoch = p.entries[n].Rec.Offset+1, p.entries[n].Rec.LeaderEpoch
		p.entries[n] = nil
		n++
	}
	if n > 0 {
		p.entries = p.entries[n:]
		p.dirty = true
	}
}

// retryAt puts j, still the head of its key, in backoff until at.
func (s *scheduler[S]) retryAt(j *Job[S], at time.Time) {
	if j.part.gone || j.state != inFlight {
		return
	}
	j.state, j.readyAt = waiting, at
	heap.Push(&s.waiting, j)
}

// putBack returns j, not processed (its downstream could not be
// reached), to the front of the ready list: it goes first when the
// driver resumes.
func (s *scheduler[S]) putBack(j *Job[S]) {
	if j.part.gone || j.state != inFlight {
		return
	}
	j.state = ready
	s.ready = append([]*Job[S]{j}, s.ready...)
}

// wake makes every job whose backoff has ended by now ready.
func (s *scheduler[S]) wake(now time.Time) {
	for len(s.waiting) > 0 && !s.waiting[0].readyAt.After(now) {
		j := heap.Pop(&s.waiting).(*Job[S])
		if j.part.gone {
			continue
		}
		j.state = ready
		s.ready = append(s.ready, j)
	}
}

// nextWake is when the soonest backoff ends (zero when none).
func (s *scheduler[S]) nextWake() time.Time {
	if len(s.waiting) == 0 {
		return time.Time{}
	}
	return s.waiting[0].readyAt
}

// commits returns the partitions whose commit point moved since the last
// call, with that point.
func (s *scheduler[S]) commits() map[int32]kgo.EpochOffset {
	var out map[int32]kgo.EpochOffset
	for n, p := range s.parts {
		if p.dirty {
			if out == nil {
				out = map[int32]kgo.EpochOffset{}
			}
			out[n] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.next}
			p.dirty = false
		}
	}
	return out
}

// all returns every partition's commit point (for the final commit).
func (s *scheduler[S]) all() map[int32]kgo.EpochOffset {
	out := map[int32]kgo.EpochOffset{}
	for n, p := range s.parts {
		if p.next >= 0 {
			out[n] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.next}
		}
	}
	return out
}

// startRevoke stops sending records of partitions the group is taking
// away, so that revoke can follow once their jobs in flight are back.
func (s *scheduler[S]) startRevoke(parts []int32) {
	for _, n := range parts {
		p := s.parts[n]
		if p == nil {
			// Records of it fetched meanwhile must wait too.
			p = &partState[S]{partition: n, keys: map[string][]*Job[S]{}, next: -1, last: -1}
			s.parts[n] = p
		}
		p.revoking = true
	}
}

// revoke forgets partitions the group took away and returns their commit
// points. Jobs of theirs still in flight finish unheeded.
func (s *scheduler[S]) revoke(parts []int32) map[int32]kgo.EpochOffset {
	out := map[int32]kgo.EpochOffset{}
	for _, n := range parts {
		p := s.parts[n]
		if p == nil {
			continue
		}
		if p.next >= 0 {
			out[n] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.next}
		}
		p.gone = true
		for _, j := range p.entries {
			if j.state != finished {
				s.pending--
				s.pendingBytes -= len(j.Rec.Value)
			}
		}
		delete(s.parts, n)
	}
	return out
}

// waitHeap orders jobs in backoff by readyAt.
type waitHeap[S any] []*Job[S]

func (h waitHeap[S]) Len() int           { return len(h) }
func (h waitHeap[S]) Less(i, k int) bool { return h[i].readyAt.Before(h[k].readyAt) }
func (h waitHeap[S]) Swap(i, k int) {
	h[i], h[k] = h[k], h[i]
	h[i].index, h[k].index = i, k
}
func (h *waitHeap[S]) Push(x any) {
	j := x.(*Job[S])
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *waitHeap[S]) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}
