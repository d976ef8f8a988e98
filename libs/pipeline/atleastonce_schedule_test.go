package pipeline

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSchedulerInvariants drives the scheduler with random fetches,
// completions, retries, unsent returns and revocations, and checks after
// every step the invariants DESIGN.md states (the scheduler of AtLeastOnce,
// moved here from egress with these checks):
//
//	(a) the records of one key finish in offset order, and at most one of
//	    them is in flight or in backoff at a time;
//	(b) a partition's commit point never passes a record that is not
//	    finished, and never goes back;
//	(c) a key held in backoff never stops another key: whenever a sender
//	    is free and some key's head is neither in flight nor in backoff,
//	    next returns a job;
//	(d) every record finishes exactly once, and in the end each commit
//	    point is one past the partition's last record.
func TestSchedulerInvariants(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkScheduler(t, seed) })
	}
}

func checkScheduler(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	const partitions = 3
	keys := 1 + rng.IntN(6)
	records := 20 + rng.IntN(80)
	senders := 1 + rng.IntN(4)
	revokeAt := -1
	if rng.IntN(4) == 0 {
		revokeAt = rng.IntN(records)
	}

	s := newScheduler[struct{}]()
	now := time.Unix(0, 0)
	// The topic as the broker has it, fetched in order per partition; some
	// offsets are skipped, as transaction markers do.
	var topic [partitions][]*kgo.Record
	for i := 0; i < records; i++ {
		p := rng.IntN(partitions)
		off := int64(0)
		if n := len(topic[p]); n > 0 {
			off = topic[p][n-1].Offset + 1 + int64(rng.IntN(2))
		}
		var key []byte
		if k := rng.IntN(keys + 1); k < keys { // some records have no key
			key = []byte(fmt.Sprintf("patient-%d", k))
		}
		topic[p] = append(topic[p], &kgo.Record{Partition: int32(p), Offset: off, Key: key, Value: []byte("v")})
	}
	var fetchedUpTo [partitions]int
	finished := map[*kgo.Record]int{}
	lastDone := map[string]int64{} // partition/key -> offset of the last record finished
	commit := map[int32]int64{}
	revoked := map[int32]bool{}
	revoking := int32(-1)
	var inFlight []*Job[struct{}]
	steps := 0

	keyOf := func(r *kgo.Record) string {
		if len(r.Key) == 0 {
			return fmt.Sprintf("%d/offset-%d", r.Partition, r.Offset)
		}
		return fmt.Sprintf("%d/%s", r.Partition, r.Key)
	}
	check := func(what string) {
		t.Helper()
		// (a) one key, one record out at a time.
		out := map[string]bool{}
		for _, j := range inFlight {
			if out[keyOf(j.Rec)] {
				t.Fatalf("step %d %s: two records of key %s out at once", steps, what, keyOf(j.Rec))
			}
			out[keyOf(j.Rec)] = true
		}
		for _, j := range s.waiting {
			if out[keyOf(j.Rec)] {
				t.Fatalf("step %d %s: key %s in backoff and in flight", steps, what, keyOf(j.Rec))
			}
			out[keyOf(j.Rec)] = true
		}
		// (b) the commit point is behind every unfinished record.
		for p, o := range s.all() {
			if o.Offset < commit[p] {
				t.Fatalf("step %d %s: partition %d commit point went back from %d to %d", steps, what, p, commit[p], o.Offset)
			}
			commit[p] = o.Offset
			for _, r := range topic[p][:fetchedUpTo[p]] {
				if finished[r] == 0 && r.Offset < o.Offset {
					t.Fatalf("step %d %s: partition %d commit point %d passes unfinished offset %d", steps, what, p, o.Offset, r.Offset)
				}
			}
		}
		// (c) a free sender and a key whose head may go: next has a job.
		if len(inFlight) < senders {
			heads := map[string]bool{}
			for p := range topic {
				if revoked[int32(p)] || revoking == int32(p) {
					continue
				}
				for _, r := range topic[p][:fetchedUpTo[p]] {
					k := keyOf(r)
					if finished[r] == 0 && !heads[k] {
						heads[k] = true
						if !out[k] && !s.hasReady() {
							t.Fatalf("step %d %s: key %s could go but nothing is ready (held behind another key)", steps, what, k)
						}
					}
				}
			}
		}
	}

	for ; steps < 20000; steps++ {
		allFetched := true
		for p := range topic {
			if fetchedUpTo[p] < len(topic[p]) {
				allFetched = false
			}
		}
		if allFetched && len(inFlight) == 0 && s.pending == 0 && revoking < 0 {
			break
		}
		switch a := rng.IntN(10); {
		case a < 3 && !allFetched: // a fetch: a few records of some partitions
			for p := range topic {
				n := min(fetchedUpTo[p]+rng.IntN(4), len(topic[p]))
				for _, r := range topic[p][fetchedUpTo[p]:n] {
					if !revoked[int32(p)] {
						s.add(r)
					}
				}
				// Sometimes a record comes twice (a refetch): ignored.
				if n > 0 && rng.IntN(8) == 0 && !revoked[int32(p)] {
					s.add(topic[p][n-1])
				}
				fetchedUpTo[p] = n
			}
			check("fetch")
		case a < 6 && len(inFlight) < senders: // a free sender takes the next job
			if j := s.next(); j != nil {
				if j.Rec.Partition == revoking {
					t.Fatalf("step %d: a record of partition %d sent while it is being revoked", steps, revoking)
				}
				inFlight = append(inFlight, j)
			}
			check("next")
		case a < 8 && len(inFlight) > 0: // a result, in any order
			i := rng.IntN(len(inFlight))
			j := inFlight[i]
			inFlight = append(inFlight[:i], inFlight[i+1:]...)
			switch rng.IntN(4) {
			case 0, 1:
				if !j.part.gone {
					k := keyOf(j.Rec)
					if last, ok := lastDone[k]; ok && j.Rec.Offset <= last {
						t.Fatalf("step %d: key %s finished offset %d after %d", steps, k, j.Rec.Offset, last)
					}
					lastDone[k] = j.Rec.Offset
					finished[j.Rec]++
				}
				s.done(j)
			case 2:
				s.retryAt(j, now.Add(time.Duration(1+rng.IntN(5))*time.Second))
			case 3:
				s.putBack(j)
			}
			check("result")
		case a == 8: // time passes
			now = now.Add(time.Duration(rng.IntN(3)) * time.Second)
			s.wake(now)
			check("wake")
		default:
			busy := false
			for _, j := range inFlight {
				busy = busy || j.Rec.Partition == revoking
			}
			switch {
			case revokeAt >= 0 && steps >= revokeAt && revoking < 0 && len(revoked) == 0:
				// The group takes a partition away: first nothing more of
				// it is sent, then, once its jobs in flight are back, it
				// is forgotten with its commit point.
				revoking = int32(rng.IntN(partitions))
				s.startRevoke([]int32{revoking})
				check("start revoke")
			case revoking >= 0 && !busy:
				offs := s.revoke([]int32{revoking})
				if o, ok := offs[revoking]; ok && o.Offset != commit[revoking] {
					t.Fatalf("revoke returned commit point %d, last seen %d", o.Offset, commit[revoking])
				}
				revoked[revoking] = true
				revoking = -1
				check("revoke")
			case len(inFlight) == 0 && len(s.waiting) > 0:
				now = s.nextWake()
				s.wake(now)
				check("wake")
			}
		}
	}
	// (d) everything finished once; commit points at the end.
	for p := range topic {
		if revoked[int32(p)] || len(topic[p]) == 0 {
			continue
		}
		for _, r := range topic[p] {
			if finished[r] != 1 {
				t.Fatalf("partition %d offset %d finished %d times", p, r.Offset, finished[r])
			}
		}
		last := topic[p][len(topic[p])-1].Offset
		if got := s.all()[int32(p)].Offset; got != last+1 {
			t.Fatalf("partition %d: final commit point %d, want %d", p, got, last+1)
		}
	}
	if s.pending != 0 || s.pendingBytes != 0 {
		t.Fatalf("pending %d records, %d bytes at the end", s.pending, s.pendingBytes)
	}
}

// With one sender, a key in backoff leaves the sender to the other keys.
func TestSchedulerHeldKeyDoesNotBlockOthers(t *testing.T) {
	s := newScheduler[struct{}]()
	rec := func(off int64, key string) *kgo.Record {
		return &kgo.Record{Partition: 0, Offset: off, Key: []byte(key)}
	}
	for i, k := range []string{"p1", "p2", "p1", "p2", "p3"} {
		s.add(rec(int64(i), k))
	}
	now := time.Unix(0, 0)
	a := s.next()
	if string(a.Rec.Key) != "p1" || a.Rec.Offset != 0 {
		t.Fatalf("first job %d %s", a.Rec.Offset, a.Rec.Key)
	}
	s.retryAt(a, now.Add(time.Minute)) // AE: p1 waits
	var order []string
	for j := s.next(); j != nil; j = s.next() {
		order = append(order, fmt.Sprintf("%s@%d", j.Rec.Key, j.Rec.Offset))
		s.done(j)
	}
	if got := fmt.Sprint(order); got != "[p2@1 p3@4 p2@3]" {
		t.Errorf("while p1 waits: %s, want [p2@1 p3@4 p2@3]", got)
	}
	if c := s.all()[0].Offset; c != -1 && c != 0 {
		t.Errorf("commit point %d passes p1's unfinished offset 0", c)
	}
	s.wake(now.Add(time.Minute))
	j := s.next()
	if j != a {
		t.Fatalf("after the backoff, next = %v, want p1@0", j)
	}
	s.done(j)
	j = s.next()
	if j == nil || j.Rec.Offset != 2 {
		t.Fatalf("p1's second record did not follow its first")
	}
	s.done(j)
	if c := s.all()[0].Offset; c != 5 {
		t.Errorf("commit point %d, want 5", c)
	}
}
