package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
)

// aloEnv is a topic filled with keyed records and a checker of what the
// drivers do with them.
type aloEnv struct {
	t     *testing.T
	env   *kafkatest.Env
	topic string
	group string
	// offsets are each key's records, in offset order: key -> partition/offset.
	offsets map[string][]po
	total   int

	mu sync.Mutex
	// done counts each record's Done outcomes.
	done map[po]int
	// busy is the keys being processed now.
	busy     map[string]bool
	inFlight int
	maxFly   int
	finished int
	allDone  chan struct{}
	failures []string
}

type po struct {
	p int32
	o int64
}

func newALOEnv(t *testing.T, keys, records int) *aloEnv {
	t.Helper()
	env := kafkatest.New(t)
	ctx := context.Background()
	e := &aloEnv{t: t, env: env, topic: env.Kafka.Topic("alo"), group: env.Kafka.TopicPrefix + "alo-test",
		offsets: map[string][]po{}, done: map[po]int{}, busy: map[string]bool{}, allDone: make(chan struct{})}
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafka.EnsureTopics(ctx, prod, env.Kafka, e.topic); err != nil {
		t.Fatal(err)
	}
	for i := range records {
		key := fmt.Sprintf("k%d", i%keys)
		r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: e.topic, Key: []byte(key), Value: []byte(fmt.Sprint(i))}).First()
		if err != nil {
			t.Fatal(err)
		}
		e.offsets[key] = append(e.offsets[key], po{r.Partition, r.Offset})
	}
	e.total = records
	return e
}

// start notes that rec is being processed: no other record of its key may
// be, and every earlier record of its key must be done already.
func (e *aloEnv) start(rec *kgo.Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := string(rec.Key)
	if e.busy[k] {
		e.failures = append(e.failures, fmt.Sprintf("two records of key %s processed at once (offset %d)", k, rec.Offset))
	}
	e.busy[k] = true
	for _, x := range e.offsets[k] {
		if x.o >= rec.Offset {
			break
		}
		if e.done[x] == 0 {
			e.failures = append(e.failures, fmt.Sprintf("key %s: offset %d processed before offset %d was done", k, rec.Offset, x.o))
		}
	}
	e.inFlight++
	e.maxFly = max(e.maxFly, e.inFlight)
}

// end notes the outcome of rec's try.
func (e *aloEnv) end(rec *kgo.Record, o pipeline.Outcome) pipeline.Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.busy[string(rec.Key)] = false
	e.inFlight--
	if o.Kind == pipeline.Done {
		x := po{rec.Partition, rec.Offset}
		if e.done[x] == 0 {
			e.finished++
			if e.finished == e.total {
				close(e.allDone)
			}
		}
		e.done[x]++
	}
	return o
}

func (e *aloEnv) consumer(d *pipeline.AtLeastOnce[int]) *kgo.Client {
	e.t.Helper()
	cl, err := kafka.NewConsumer(e.env.Kafka, slog.New(slog.DiscardHandler), e.group, []string{e.topic}, d.ClientOpts()...)
	if err != nil {
		e.t.Fatal(err)
	}
	return cl
}

// run starts d on a client of its own; stop ends it and returns Run's error.
func (e *aloEnv) run(d *pipeline.AtLeastOnce[int]) (stop func() error) {
	cl := e.consumer(d)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx, cl) }()
	return func() error {
		cancel()
		err := <-errc
		cl.Close()
		return err
	}
}

// wait waits for every record to be done (or fails after a generous bound).
func (e *aloEnv) wait(ch <-chan struct{}, what string) {
	e.t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		e.mu.Lock()
		defer e.mu.Unlock()
		e.t.Fatalf("%s: not after 60s (%d of %d records done)", what, e.finished, e.total)
	}
}

// check fails the test with what the checker saw, and checks that the
// group's committed offsets are one past each partition's last record.
func (e *aloEnv) check(wantMaxFly int) {
	e.t.Helper()
	e.mu.Lock()
	for _, f := range e.failures {
		e.t.Error(f)
	}
	if e.maxFly > wantMaxFly {
		e.t.Errorf("%d records in process at once, want at most %d", e.maxFly, wantMaxFly)
	}
	e.mu.Unlock()
	for _, f := range e.behind() {
		e.t.Error(f)
	}
}

// behind lists the partitions whose committed offset is not their end.
func (e *aloEnv) behind() []string {
	e.t.Helper()
	adm, err := kafka.NewAdmin(e.env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	ac := kadm.NewClient(adm)
	ends, err := ac.ListEndOffsets(ctx, e.topic)
	if err != nil {
		e.t.Fatal(err)
	}
	committed, err := ac.FetchOffsets(ctx, e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	ends.Each(func(l kadm.ListedOffset) {
		c, _ := committed.Lookup(e.topic, l.Partition)
		if l.Offset > 0 && c.At != l.Offset {
			out = append(out, fmt.Sprintf("partition %d committed at %d, want its end %d", l.Partition, c.At, l.Offset))
		}
	})
	return out
}

// waitCommitted waits until the group has committed every partition's end
// (records done by a member that lost their partition before its commit
// point passed them are processed again by the new owner first).
func (e *aloEnv) waitCommitted() {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(e.behind()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling a condition, not timing
	}
}

// Keys run in parallel, one record of a key at a time and in offset
// order; a record retried later holds only its key; every record is done
// and the commit point reaches each partition's end.
func TestAtLeastOnceOrderRetriesCommits(t *testing.T) {
	e := newALOEnv(t, 7, 120)
	var tries sync.Map // po -> tries so far
	d := pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[int]{
		Topic: e.topic, Parallel: 3,
		Process: func(_ context.Context, slot int, j *pipeline.Job[int]) pipeline.Outcome {
			e.start(j.Rec)
			j.State++ // State is kept across the tries of one record
			n, _ := tries.LoadOrStore(po{j.Rec.Partition, j.Rec.Offset}, new(atomic.Int32))
			if c := n.(*atomic.Int32).Add(1); int(c) != j.State {
				t.Errorf("offset %d: try %d but its State says %d", j.Rec.Offset, c, j.State)
			}
			if slot < 0 || slot >= 3 {
				t.Errorf("slot %d", slot)
			}
			// Every third record fails twice before it is done.
			if j.Rec.Offset%3 == 0 && j.State <= 2 {
				return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.RetryLater, At: time.Now().Add(5 * time.Millisecond)})
			}
			return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Done})
		},
	})
	stop := e.run(d)
	e.wait(e.allDone, "all records done")
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	e.check(3)
	e.mu.Lock()
	defer e.mu.Unlock()
	for x, n := range e.done {
		if n != 1 {
			t.Errorf("partition %d offset %d done %d times, want once", x.p, x.o, n)
		}
	}
}

// While held, the driver processes one record at a time (the probe, the
// same record put back at the front); an outcome with Resume ends the hold
// and everything flows.
func TestAtLeastOnceHold(t *testing.T) {
	const parallel = 3
	e := newALOEnv(t, 5, 40)
	var (
		up       atomic.Bool
		calls    atomic.Int64
		probes   atomic.Int64 // probes in process now
		maxProbe atomic.Int64
		holds    atomic.Int64
	)
	held, overlap := make(chan struct{}), make(chan struct{})
	var heldOnce, overlapOnce sync.Once
	d := pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[int]{
		Topic: e.topic, Parallel: parallel, HoldMin: time.Millisecond, HoldMax: 4 * time.Millisecond,
		Process: func(_ context.Context, _ int, j *pipeline.Job[int]) pipeline.Outcome {
			// Calls after the first `parallel` start once the driver has
			// seen a Hold (every record is held while down): probes.
			// A probe stays a moment, so that a second one handed out
			// beside it would be seen at once (the wait only bounds the
			// correct case; a broken driver is caught without it).
			if n := calls.Add(1); n > parallel && !up.Load() {
				cur := probes.Add(1)
				if cur > 1 {
					maxProbe.Store(cur)
					overlapOnce.Do(func() { close(overlap) })
				} else {
					select {
					case <-overlap:
					case <-time.After(10 * time.Millisecond):
					}
				}
				probes.Add(-1)
			}
			e.start(j.Rec)
			if !up.Load() {
				if holds.Add(1) == 20 {
					heldOnce.Do(func() { close(held) })
				}
				return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Hold, Err: errors.New("down")})
			}
			return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Done, Resume: true})
		},
	})
	stop := e.run(d)
	e.wait(held, "20 holds")
	e.mu.Lock()
	if e.finished != 0 {
		t.Errorf("%d records done while down", e.finished)
	}
	e.mu.Unlock()
	up.Store(true)
	e.wait(e.allDone, "all records done after the hold")
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m := maxProbe.Load(); m > 1 {
		t.Errorf("%d probes in process at once while held, want 1", m)
	}
	e.check(parallel)
}

// A Fatal outcome stops the driver with its error, and the commit point
// does not pass the record.
func TestAtLeastOnceFatal(t *testing.T) {
	e := newALOEnv(t, 1, 10) // one key: one partition, in order
	boom := errors.New("boom")
	var fatalAt atomic.Int64
	fatalAt.Store(-1)
	d := pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[int]{
		Topic: e.topic,
		Process: func(_ context.Context, _ int, j *pipeline.Job[int]) pipeline.Outcome {
			e.start(j.Rec)
			if j.Rec.Offset == e.offsets["k0"][4].o {
				fatalAt.Store(j.Rec.Offset)
				return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Fatal, Err: boom})
			}
			return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Done})
		},
	})
	cl := e.consumer(d)
	defer cl.Close()
	err := d.Run(context.Background(), cl)
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the fatal error", err)
	}
	adm, aerr := kafka.NewAdmin(e.env.Kafka, slog.New(slog.DiscardHandler))
	if aerr != nil {
		t.Fatal(aerr)
	}
	defer adm.Close()
	committed, cerr := kadm.NewClient(adm).FetchOffsets(context.Background(), e.group)
	if cerr != nil {
		t.Fatal(cerr)
	}
	p := e.offsets["k0"][0].p
	if c, _ := committed.Lookup(e.topic, p); c.At != fatalAt.Load() {
		t.Errorf("committed at %d, want the fatal record's offset %d", c.At, fatalAt.Load())
	}
}

// A second member joins while the first is busy: the partitions it takes
// are revoked from the first, whose records in process finish and are
// committed. Every record is done at least once, each key's records in
// order (checked at each start), and the group commits every partition's
// end.
func TestAtLeastOnceRevocation(t *testing.T) {
	e := newALOEnv(t, 9, 150)
	some, joined := make(chan struct{}), make(chan struct{})
	var someOnce, joinedOnce sync.Once
	var byMember [2]atomic.Int64
	process := func(member int, ctx context.Context, j *pipeline.Job[int]) pipeline.Outcome {
		e.start(j.Rec)
		byMember[member].Add(1)
		e.mu.Lock()
		n := e.finished
		e.mu.Unlock()
		if n >= 20 {
			someOnce.Do(func() { close(some) })
		}
		if member == 1 {
			joinedOnce.Do(func() { close(joined) })
		}
		// Once the second member is on its way, the first keeps its
		// records waiting until the second has taken partitions from it:
		// the revocation then drops records waiting for a retry.
		select {
		case <-some:
			select {
			case <-joined:
			default:
				return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.RetryLater, At: time.Now().Add(5 * time.Millisecond)})
			}
		default:
		}
		if j.Rec.Offset%5 == 0 && j.State == 0 {
			j.State++
			return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.RetryLater, At: time.Now().Add(20 * time.Millisecond)})
		}
		// Slow enough that the rebalance finds records in process.
		select {
		case <-ctx.Done():
			return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Aborted})
		case <-time.After(2 * time.Millisecond):
		}
		return e.end(j.Rec, pipeline.Outcome{Kind: pipeline.Done})
	}
	member := func(m int) *pipeline.AtLeastOnce[int] {
		return pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[int]{Topic: e.topic, Parallel: 2,
			Process: func(ctx context.Context, _ int, j *pipeline.Job[int]) pipeline.Outcome { return process(m, ctx, j) }})
	}
	d1, d2 := member(0), member(1)
	stop1 := e.run(d1)
	e.wait(some, "20 records done by the first member")
	stop2 := e.run(d2)
	e.wait(e.allDone, "all records done by the two members")
	e.waitCommitted()
	if err := stop2(); err != nil {
		t.Errorf("second Run: %v", err)
	}
	if err := stop1(); err != nil {
		t.Errorf("first Run: %v", err)
	}
	e.check(4)
	if byMember[0].Load() == 0 || byMember[1].Load() == 0 {
		t.Errorf("records processed by member: %d and %d; the second never took a partition", byMember[0].Load(), byMember[1].Load())
	}
}

func TestAtLeastOnceNoProcess(t *testing.T) {
	d := pipeline.NewAtLeastOnce(pipeline.AtLeastOnceConfig[int]{Topic: "t"})
	if err := d.Run(context.Background(), nil); !errors.Is(err, pipeline.ErrNoProcess) {
		t.Errorf("Run without Process = %v, want ErrNoProcess", err)
	}
}
