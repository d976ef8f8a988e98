package admin

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// memRecords is a RecordReader over the records a test produced.
type memRecords struct {
	mu   sync.Mutex
	recs map[string]*kgo.Record
}

func (m *memRecords) Read(_ context.Context, topic string, p int32, off int64) (*kgo.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.recs[fmt.Sprintf("%s/%d/%d", topic, p, off)]; r != nil {
		return r, nil
	}
	return nil, ErrRecordGone
}

// replayEnv is a broker with n transformed records, an index of them
// (each message delivered to lis, not yet to ehr), and the records
// behind it.
type replayEnv struct {
	env     *kafkatest.Env
	index   *planIndex
	records *memRecords
}

func newReplayEnv(t *testing.T, n int) *replayEnv {
	t.Helper()
	env := kafkatest.New(t)
	cl, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, env.Kafka, env.Kafka.Topic(kafka.TopicTransformed)); err != nil {
		t.Fatal(err)
	}
	e := &replayEnv{env: env, index: &planIndex{}, records: &memRecords{recs: map[string]*kgo.Record{}}}
	topic := env.Kafka.Topic(kafka.TopicTransformed)
	for i := range n {
		id := fmt.Sprintf("M%03d", i)
		rec := &kgo.Record{Topic: topic, Key: []byte("patient-" + id), Value: []byte("value-" + id),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-" + id)}, {Key: kafka.HeaderReplayJob, Value: []byte("an-older-job")}}}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		e.records.recs[fmt.Sprintf("%s/%d/%d", topic, rec.Partition, rec.Offset)] = rec
		e.index.entries = append(e.index.entries, IndexEntry{Message: api.Message{MessageID: id, ReceivedAt: time.Unix(int64(i), 0),
			Destinations: []api.DestinationStatus{dest("lis", "delivered"), dest("ehr", "dead_lettered")}},
			Records: []api.Record{{Topic: topic, Partition: rec.Partition, Offset: rec.Offset}}})
	}
	return e
}

// replica starts one admin replica's Replay; stop ends its Run and waits.
func (e *replayEnv) replica(t *testing.T, instance string) (r *Replay, stop func()) {
	t.Helper()
	r, err := NewReplayer(ReplayerConfig{Kafka: e.env.Kafka, Serde: e.env.Serde, Index: e.index, Records: e.records, Audit: &replayAudit{},
		Destinations: []string{"lis", "ehr"}, Instance: instance, Limits: ReplayConfig{MaxRate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run of %s: %v", instance, err)
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replayed reads every committed record of topic now.
func (e *replayEnv) replayed(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kafka.NewAdmin(e.env.Kafka, slog.New(slog.DiscardHandler), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	// Whatever arrives within a quiet 500 ms.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return out
		}
		out = append(out, fs.Records()...)
	}
}

func header(r *kgo.Record, key string) (string, int) {
	v, n := "", 0
	for _, h := range r.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

func job(t *testing.T, r *Replay, id string) api.ReplayJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	j, err := r.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return *j
}

func startJob(t *testing.T, r *Replay, rate float64) *api.ReplayJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, plan, err := r.Start(ctx, Principal{Actor: "ann", Role: RoleOperator},
		api.ReplayRequest{Selector: api.ReplaySelector{Since: time.Unix(0, 0)}, Target: api.TargetRoute, Rate: rate, Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != canonical.ReplayJobRunning || j.Total != plan.Count || j.Skipped != plan.Skipped || j.Selector.Until.IsZero() {
		t.Fatalf("job %+v, plan %+v", j, plan)
	}
	return j
}

func TestReplayJobRuns(t *testing.T) {
	const n, rate = 10, 20.0
	e := newReplayEnv(t, n)
	r, _ := e.replica(t, "a")
	began := time.Now()
	j := startJob(t, r, rate)
	if j.Total != n || j.Skipped != n {
		t.Fatalf("total %d skipped %d", j.Total, j.Skipped)
	}
	eventually(t, 20*time.Second, "job done", func() bool { return job(t, r, j.ID).State == canonical.ReplayJobDone })
	// Record i goes no sooner than i/rate after the first: 9/20 s.
	if el, min := time.Since(began), time.Duration(float64(n-1)/rate*float64(time.Second)); el < min {
		t.Errorf("%d records at %g/s in %v, under %v", n, rate, el, min)
	}
	got := job(t, r, j.ID)
	if got.Sent != n || got.Failed != 0 || got.Actor != "ann" || got.Target != "route" {
		t.Errorf("job %+v", got)
	}
	recs := e.replayed(t, e.env.Kafka.Topic(kafka.TopicTransformed))
	var replays int
	seen := map[string]bool{}
	for _, rec := range recs {
		jobID, _ := header(rec, kafka.HeaderReplayJob)
		if jobID == "an-older-job" {
			continue // an original
		}
		replays++
		id := string(rec.Value)[len("value-"):]
		seen[id] = true
		if jobID != j.ID || string(rec.Key) != "patient-"+id {
			t.Errorf("%s: job %q key %q", id, jobID, rec.Key)
		}
		if v, k := header(rec, kafka.HeaderReplayJob); k != 1 || v != j.ID {
			t.Errorf("%s: %d job headers", id, k)
		}
		if v, _ := header(rec, "traceparent"); v != "00-"+id {
			t.Errorf("%s: traceparent %q", id, v)
		}
		if v, _ := header(rec, kafka.HeaderReplayDestinations); v != "ehr" {
			t.Errorf("%s: replay destinations %q, want ehr (lis has it)", id, v)
		}
	}
	if replays != n || len(seen) != n {
		t.Errorf("%d records replayed (%d messages), want %d", replays, len(seen), n)
	}
	// The items: per record one for the message, keyed
	// item/<job>/<message>/-, and one for ehr, the destination it goes
	// to again (item/<job>/<message>/ehr): the index opens ehr's new
	// cycle with it, so the re-send's outcome replaces the old one.
	items := map[string]bool{}
	for _, rec := range e.replayed(t, e.env.Kafka.Topic(kafka.TopicReplay)) {
		d, err := e.env.Serde.Decode(context.Background(), rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if rr := d.(*canonical.ReplayRecord); rr.Kind == canonical.ReplayKindItem {
			if want := itemKey(j.ID, rr.Item.MessageID, rr.Item.Destination); string(rec.Key) != want || rr.JobID != j.ID ||
				rr.Item.Source.Topic != e.env.Kafka.Topic(kafka.TopicTransformed) || rr.Item.TargetTopic != e.env.Kafka.Topic(kafka.TopicTransformed) ||
				(rr.Item.Destination != "" && rr.Item.Destination != "ehr") {
				t.Errorf("item %q %+v", rec.Key, rr.Item)
			}
			items[string(rec.Key)] = true
		}
	}
	for i := range n {
		id := fmt.Sprintf("M%03d", i)
		if !items[itemKey(j.ID, id, "")] || !items[itemKey(j.ID, id, "ehr")] {
			t.Errorf("%s: no item of the message, or none of ehr", id)
		}
	}
	if len(items) != 2*n {
		t.Errorf("%d items, want %d", len(items), 2*n)
	}
	jobs, err := r.Jobs(context.Background())
	if err != nil || len(jobs) != 1 || jobs[0].ID != j.ID {
		t.Errorf("jobs %+v %v", jobs, err)
	}
}

func TestReplayCancel(t *testing.T) {
	const n = 40
	e := newReplayEnv(t, n)
	r, _ := e.replica(t, "a")
	j := startJob(t, r, 10)
	eventually(t, 20*time.Second, "records sent", func() bool { return job(t, r, j.ID).Sent >= 3 })
	c, err := r.Cancel(context.Background(), Principal{Actor: "bob", Role: RoleOperator}, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != canonical.ReplayJobCancelled {
		t.Fatalf("cancel answered %+v", c)
	}
	count := func() int {
		k := 0
		for _, rec := range e.replayed(t, e.env.Kafka.Topic(kafka.TopicTransformed)) {
			if v, _ := header(rec, kafka.HeaderReplayJob); v == j.ID {
				k++
			}
		}
		return k
	}
	after := count()
	time.Sleep(time.Second) // 10 more at 10/s, were it still running
	if again := count(); again != after || again >= n {
		t.Errorf("%d records at the cancel, %d a second later (of %d)", after, again, n)
	}
	if got := job(t, r, j.ID); got.State != canonical.ReplayJobCancelled || got.Sent != int64(after) {
		t.Errorf("job %+v, %d sent", got, after)
	}
	// Cancelling again answers the job as it is.
	if c, err := r.Cancel(context.Background(), Principal{Actor: "bob"}, j.ID); err != nil || c.State != canonical.ReplayJobCancelled {
		t.Errorf("second cancel %+v %v", c, err)
	}
	if _, err := r.Cancel(context.Background(), Principal{Actor: "bob"}, "nope"); err != ErrNotFound {
		t.Errorf("unknown job: %v", err)
	}
}

// TestReplayTakeover: the replica holding the runner's lease stops
// mid-job; the other takes the lease, resumes the job and sends only what
// was not sent.
func TestReplayTakeover(t *testing.T) {
	const n = 30
	e := newReplayEnv(t, n)
	a, stopA := e.replica(t, "a")
	eventually(t, 20*time.Second, "a leads", a.leading.Load)
	b, _ := e.replica(t, "b")
	<-b.ready
	j := startJob(t, a, 20)
	eventually(t, 20*time.Second, "records sent", func() bool { return job(t, a, j.ID).Sent >= 5 })
	if b.leading.Load() {
		t.Fatal("b leads while a does")
	}
	stopA()
	if sent := job(t, a, j.ID).Sent; sent >= n {
		t.Fatalf("a sent all %d before it stopped: nothing to take over", sent)
	}
	eventually(t, 30*time.Second, "b leads", b.leading.Load)
	eventually(t, 30*time.Second, "job done", func() bool { return job(t, b, j.ID).State == canonical.ReplayJobDone })
	perMessage := map[string]int{}
	for _, rec := range e.replayed(t, e.env.Kafka.Topic(kafka.TopicTransformed)) {
		if v, _ := header(rec, kafka.HeaderReplayJob); v == j.ID {
			perMessage[string(rec.Value)]++
		}
	}
	if len(perMessage) != n {
		t.Errorf("%d messages replayed, want %d", len(perMessage), n)
	}
	for m, k := range perMessage {
		if k != 1 {
			t.Errorf("%s sent %d times", m, k)
		}
	}
	if got := job(t, b, j.ID); got.Sent != n {
		t.Errorf("job %+v", got)
	}
}

// TestReplayDeadLettersAndDiscard: a dead letter goes back to its source
// topic with its own key, value and headers; a plan with a newer-message
// warning needs confirm_newer; a discard is a record on the replay topic.
func TestReplayDeadLettersAndDiscard(t *testing.T) {
	e := newReplayEnv(t, 0)
	ctx := context.Background()
	dlq := e.env.Kafka.DLQTopic("egress")
	if _, err := e.env.Serde.Register(ctx, dlq, schemas.DeadLetter); err != nil {
		t.Fatal(err)
	}
	out := e.env.Kafka.OutTopic("lis")
	adm, err := kafka.NewAdmin(e.env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := kafka.EnsureTopics(ctx, adm, e.env.Kafka, out); err != nil {
		t.Fatal(err)
	}
	v, err := e.env.Serde.Encode(&canonical.DeadLetter{MessageID: "M1", Stage: "egress", SourceTopic: out, SourcePartition: 2, SourceOffset: 5,
		Key: []byte("pk"), Value: []byte("the out record"), Headers: map[string][]byte{"traceparent": []byte("00-x")}, Destination: "lis"})
	if err != nil {
		t.Fatal(err)
	}
	e.records.recs[dlq+"/1/7"] = &kgo.Record{Topic: dlq, Partition: 1, Offset: 7, Value: v}
	e.index.deadLetters = map[string]*api.DeadLetter{"egress:1:7": {ID: "egress:1:7", MessageID: "M1", Stage: "egress", Destination: "lis"}}
	e.index.entries = []IndexEntry{{Message: api.Message{MessageID: "M1"}, PatientKey: "pk-M1"}}
	e.index.newer = map[string]string{"pk-M1/lis": "M2"}
	r, _ := e.replica(t, "a")
	req := api.ReplayRequest{Selector: api.ReplaySelector{DeadLetters: []string{"egress:1:7"}}, Confirm: true}
	if _, plan, err := r.Start(ctx, Principal{Actor: "ann"}, req); err != ErrConfirmNewer || plan == nil || len(plan.Warnings) != 1 {
		t.Fatalf("start without confirm_newer: %v, plan %+v", err, plan)
	}
	req.ConfirmNewer = true
	j, _, err := r.Start(ctx, Principal{Actor: "ann"}, req)
	if err != nil {
		t.Fatal(err)
	}
	if !j.ConfirmedNewer || j.Target != "" {
		t.Errorf("job %+v", j)
	}
	eventually(t, 20*time.Second, "job done", func() bool { return job(t, r, j.ID).State == canonical.ReplayJobDone })
	recs := e.replayed(t, out)
	if len(recs) != 1 {
		t.Fatalf("%d records on %s", len(recs), out)
	}
	if rec := recs[0]; string(rec.Key) != "pk" || string(rec.Value) != "the out record" {
		t.Errorf("record %q %q", rec.Key, rec.Value)
	}
	if v, _ := header(recs[0], "traceparent"); v != "00-x" {
		t.Errorf("traceparent %q", v)
	}
	if v, _ := header(recs[0], kafka.HeaderReplayJob); v != j.ID {
		t.Errorf("job header %q", v)
	}

	if n, err := r.Discard(ctx, Principal{Actor: "ann"}, []string{"egress:1:7"}, "sent by hand"); err != nil || n != 1 {
		t.Fatalf("discard %d %v", n, err)
	}
	var discards []*canonical.Discard
	for _, rec := range e.replayed(t, e.env.Kafka.Topic(kafka.TopicReplay)) {
		d, err := e.env.Serde.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if rr := d.(*canonical.ReplayRecord); rr.Kind == canonical.ReplayKindDiscard {
			if string(rec.Key) != "discard/egress:1:7" {
				t.Errorf("discard key %q", rec.Key)
			}
			discards = append(discards, rr.Discard)
		}
	}
	if len(discards) != 1 || *discards[0] != (canonical.Discard{DeadLetterID: "egress:1:7", MessageID: "M1", Reason: "sent by hand", Actor: "ann"}) {
		t.Errorf("discards %+v", discards)
	}
}

// TestReplayGoneCountedOnce: records gone by retention fail the job's
// items once, even when another runner resumes the job after them: the
// failed items are on the replay topic (with no target topic, which the
// index projects to nothing) and the job record counting them is in the
// same transaction.
func TestReplayGoneCountedOnce(t *testing.T) {
	const n, gone = 30, 3
	e := newReplayEnv(t, n)
	// The oldest three are gone: the first run meets them.
	topic := e.env.Kafka.Topic(kafka.TopicTransformed)
	for _, ent := range e.index.entries[:gone] {
		rec := ent.Records[0]
		delete(e.records.recs, fmt.Sprintf("%s/%d/%d", topic, rec.Partition, rec.Offset))
	}
	a, stopA := e.replica(t, "a")
	eventually(t, 20*time.Second, "a leads", a.leading.Load)
	b, _ := e.replica(t, "b")
	<-b.ready
	j := startJob(t, a, 20)
	eventually(t, 20*time.Second, "records sent", func() bool { return job(t, a, j.ID).Sent >= 5 })
	if got := job(t, a, j.ID); got.Failed != gone {
		t.Errorf("before the takeover: job %+v, want %d failed", got, gone)
	}
	stopA()
	eventually(t, 30*time.Second, "b leads", b.leading.Load)
	eventually(t, 30*time.Second, "job done", func() bool { return job(t, b, j.ID).State == canonical.ReplayJobDone })
	if got := job(t, b, j.ID); got.Failed != gone || got.Sent != n-gone {
		t.Errorf("job %+v, want %d sent and %d failed", got, n-gone, gone)
	}
	failed := map[string]bool{}
	for _, rec := range e.replayed(t, e.env.Kafka.Topic(kafka.TopicReplay)) {
		d, err := e.env.Serde.Decode(context.Background(), rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if rr := d.(*canonical.ReplayRecord); rr.Kind == canonical.ReplayKindItem && rr.Item.TargetTopic == "" {
			failed[rr.Item.MessageID+"/"+rr.Item.Destination] = true
		}
	}
	if len(failed) != gone || !failed["M000/"] || !failed["M002/"] {
		t.Errorf("failed items %v", failed)
	}
}
