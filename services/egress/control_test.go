package egress_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/egress/egresstest"
)

// ctlEnv is a broker with out.lis and out.ris, the control topic, and a
// producer for both.
type ctlEnv struct {
	t    *testing.T
	env  *kafkatest.Env
	prod *kgo.Client
	lis  *egresstest.MLLPPeer
	ris  *egresstest.MLLPPeer
}

func newCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	env := kafkatest.New(t)
	ctx := t.Context()
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	outs := []string{env.Kafka.OutTopic("lis"), env.Kafka.OutTopic("ris")}
	if err := kafka.EnsureTopics(ctx, prod, env.Kafka, outs...); err != nil {
		t.Fatal(err)
	}
	control := env.Kafka.Topic(kafka.TopicControl)
	if err := kafka.EnsureCompactedTopics(ctx, prod, env.Kafka, control); err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if _, err := env.Serde.Register(ctx, o, schemas.Out); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Serde.Register(ctx, control, schemas.Control); err != nil {
		t.Fatal(err)
	}
	return &ctlEnv{t: t, env: env, prod: prod, lis: egresstest.NewMLLPPeer(t), ris: egresstest.NewMLLPPeer(t)}
}

// send writes one message for dest, control ID ctl, with record time at
// (zero: now). Every message has the same key: one order.
func (c *ctlEnv) send(dest, ctl string, at time.Time) {
	c.t.Helper()
	c.sendKeyed(dest, ctl, "p1", at)
}

// control writes dest's state as the admin API does.
func (c *ctlEnv) control(st canonical.ControlState) {
	c.t.Helper()
	if st.At.IsZero() {
		st.At = time.Now()
	}
	if st.Actor == "" {
		st.Actor = "ops-anna"
	}
	v, err := c.env.Serde.Encode(&st)
	if err != nil {
		c.t.Fatal(err)
	}
	r := &kgo.Record{Topic: c.env.Kafka.Topic(kafka.TopicControl), Key: []byte(st.Destination), Value: v}
	if err := c.prod.ProduceSync(c.t.Context(), r).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// running is one egress instance.
type running struct {
	tel  *telemetry.Telemetry
	logs *lockedBuf
	stop func()
}

// start runs egress for lis and ris until the returned stop (or the
// test's end).
func (c *ctlEnv) start() *running {
	c.t.Helper()
	tel := telemetry.Nop()
	logs := &lockedBuf{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	dests := []egress.Destination{
		{Name: "lis", Protocol: "mllp", Address: c.lis.Addr()},
		{Name: "ris", Protocol: "mllp", Address: c.ris.Addr()},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- egress.New(egress.Config{Destinations: dests, Telemetry: tel}, c.env.Kafka, c.env.Serde, log).Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				c.t.Errorf("egress Run: %v", err)
			}
		})
	}
	c.t.Cleanup(stop)
	return &running{tel: tel, logs: logs, stop: stop}
}

// gauge is the value of metric{destination=dest}, -1 when absent.
func (r *running) gauge(metric, dest string) float64 {
	mfs, err := r.tel.Registry.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == dest {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// attempts is hl7bus_egress_attempts_total of dest, every outcome.
func (r *running) attempts(dest string) float64 {
	mfs, _ := r.tel.Registry.Gather()
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "hl7bus_egress_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == dest {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// received is the control IDs (MSH-10) a peer got, in order.
func received(p *egresstest.MLLPPeer) []string {
	var ids []string
	for _, b := range p.Received() {
		fields := strings.Split(strings.SplitN(string(b), "\r", 2)[0], "|")
		if len(fields) > 9 {
			ids = append(ids, fields[9])
		}
	}
	return ids
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quiet is how long a test watches a paused destination receive nothing:
// several of the driver's hold probes (1 s apart at most).
const quiet = 1500 * time.Millisecond

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// TestPauseHoldsAndResumeDelivers: a paused destination gets nothing, no
// attempt is counted, and on resume everything arrives in order; the
// other destination is never held.
func TestPauseHoldsAndResumeDelivers(t *testing.T) {
	c := newCtlEnv(t)
	eg := c.start()
	c.send("lis", "L1", time.Time{})
	c.send("ris", "R1", time.Time{})
	eventually(t, "L1 and R1", func() bool { return len(received(c.lis)) == 1 && len(received(c.ris)) == 1 })
	if g := eg.gauge("hl7bus_destination_paused", "lis"); g != 0 {
		t.Errorf("paused gauge of a running destination %v, want 0", g)
	}

	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused, Reason: "lab maintenance"})
	eventually(t, "lis paused", func() bool { return eg.gauge("hl7bus_destination_paused", "lis") == 1 })
	for _, id := range seq("L", 2, 6) {
		c.send("lis", id, time.Time{})
	}
	for _, id := range seq("R", 2, 4) {
		c.send("ris", id, time.Time{})
	}
	eventually(t, "ris's messages while lis is paused", func() bool { return len(received(c.ris)) == 4 })
	time.Sleep(quiet)
	if got := received(c.lis); len(got) != 1 {
		t.Fatalf("paused lis received %v", got)
	}
	if n := eg.attempts("lis"); n != 1 {
		t.Errorf("lis has %v attempts, want 1 (a paused destination's messages are no attempt)", n)
	}
	if g := eg.gauge("hl7bus_destination_up", "lis"); g != 1 {
		t.Errorf("lis up gauge %v while paused, want 1: paused is no outage", g)
	}
	if strings.Contains(eg.logs.String(), "lab maintenance") {
		t.Error("the log quotes the operator's reason")
	}
	if !strings.Contains(eg.logs.String(), `"actor":"ops-anna"`) {
		t.Error("the pause is not logged with its actor")
	}

	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})
	eventually(t, "lis's held messages", func() bool { return len(received(c.lis)) == 6 })
	if got, want := strings.Join(received(c.lis), ","), strings.Join(seq("L", 1, 6), ","); got != want {
		t.Errorf("lis received %s, want %s", got, want)
	}
	if g := eg.gauge("hl7bus_destination_paused", "lis"); g != 0 {
		t.Errorf("paused gauge %v after resume, want 0", g)
	}
	if got := strings.Join(received(c.ris), ","); got != strings.Join(seq("R", 1, 4), ",") {
		t.Errorf("ris received %s", got)
	}
}

// TestPausedStaysPausedAcrossRestart: egress reads the control topic to its
// end before delivering, so a paused destination sends nothing after a
// start or a restart.
func TestPausedStaysPausedAcrossRestart(t *testing.T) {
	c := newCtlEnv(t)
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused})
	for _, id := range seq("L", 1, 3) {
		c.send("lis", id, time.Time{})
	}
	c.send("ris", "R1", time.Time{})
	for round := range 2 {
		eg := c.start()
		eventually(t, "ris delivering", func() bool { return len(received(c.ris)) == 1 })
		eventually(t, "lis paused", func() bool { return eg.gauge("hl7bus_destination_paused", "lis") == 1 })
		time.Sleep(quiet)
		if got := received(c.lis); len(got) != 0 {
			t.Fatalf("round %d: paused lis received %v", round, got)
		}
		if round == 1 {
			c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})
			eventually(t, "lis after resume", func() bool { return len(received(c.lis)) == 3 })
		}
		eg.stop()
	}
	if got := strings.Join(received(c.lis), ","); got != "L1,L2,L3" {
		t.Errorf("lis received %s", got)
	}
}

// TestResetRedeliversFromTime: a reset while paused moves the group back
// to the first record at or after the time; after resume those records
// are delivered again, once: a replica restarted while still paused does
// not apply the reset again, nor does one started after the resume.
func TestResetRedeliversFromTime(t *testing.T) {
	c := newCtlEnv(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for _, id := range seq("L", 1, 3) {
		c.send("lis", id, base)
	}
	for _, id := range seq("L", 4, 6) {
		c.send("lis", id, base.Add(10*time.Minute))
	}
	c.send("ris", "R1", time.Time{})
	eg := c.start()
	eventually(t, "L1..L6", func() bool { return len(received(c.lis)) == 6 })

	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused})
	eventually(t, "lis paused", func() bool { return eg.gauge("hl7bus_destination_paused", "lis") == 1 })
	to := base.Add(5 * time.Minute)
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused, ResetID: "r1", ResetTo: &to})

	// The committed offset of L's partition goes back to L4, marked.
	adm := kadm.NewClient(c.prod)
	group := c.env.Kafka.TopicPrefix + "egress.lis"
	var part int32 = -1
	for _, r := range c.env.Read(t, c.env.Kafka.OutTopic("lis"), 6) {
		part = r.Partition
	}
	eventually(t, "the reset commit", func() bool {
		offs, err := adm.FetchOffsets(t.Context(), group)
		if err != nil {
			return false
		}
		o, ok := offs.Lookup(c.env.Kafka.OutTopic("lis"), part)
		return ok && o.At == 3 && o.Metadata == "hl7bus-reset:r1"
	})
	resets := strings.Count(eg.logs.String(), "consumer group reset")
	if resets == 0 {
		t.Fatal("the reset is not logged")
	}
	time.Sleep(quiet)
	if got := received(c.lis); len(got) != 6 {
		t.Fatalf("lis received %v while paused after the reset", got)
	}

	// Restarted while still paused: the reset is seen again and not
	// applied again.
	eg.stop()
	eg = c.start()
	eventually(t, "lis paused", func() bool { return eg.gauge("hl7bus_destination_paused", "lis") == 1 })
	time.Sleep(quiet)
	if n := strings.Count(eg.logs.String(), "consumer group reset"); n != 0 {
		t.Errorf("the restarted replica applied the reset again (%d partitions)", n)
	}

	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})
	eventually(t, "the redelivery", func() bool { return len(received(c.lis)) == 9 })
	eg.stop()
	eg = c.start()
	eventually(t, "lis running", func() bool { return eg.gauge("hl7bus_destination_paused", "lis") == 0 })
	time.Sleep(quiet)
	if got, want := strings.Join(received(c.lis), ","), "L1,L2,L3,L4,L5,L6,L4,L5,L6"; got != want {
		t.Errorf("lis received %s, want %s", got, want)
	}
	if got := received(c.ris); len(got) != 1 {
		t.Errorf("ris received %v, want R1 once: the reset is lis's", got)
	}
}

// sendKeyed is send with ordering key key (so records spread over the
// partitions).
func (c *ctlEnv) sendKeyed(dest, ctl, key string, at time.Time) {
	c.t.Helper()
	payload := "MSH|^~\\&|HIS|H|LIS|L|20261201||ADT^A08|" + ctl + "|P|2.5\rPID|1||ZZSECRET99\r"
	v, err := c.env.Serde.Encode(&canonical.Out{MessageID: "ID" + ctl, ControlID: ctl, OrderingKey: key, Destination: dest,
		ContentType: canonical.ContentTypeV2, Payload: []byte(payload), ReceivedAt: time.Now()})
	if err != nil {
		c.t.Fatal(err)
	}
	r := &kgo.Record{Topic: c.env.Kafka.OutTopic(dest), Key: []byte(key), Value: v, Timestamp: at}
	if err := c.prod.ProduceSync(c.t.Context(), r).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// waitApplied waits, as the admin API's Reset and Resume do, until every
// partition of out.<dest> has a committed offset carrying reset id's
// marker.
func (c *ctlEnv) waitApplied(dest, id string) {
	c.t.Helper()
	adm := kadm.NewClient(c.prod)
	topic := c.env.Kafka.OutTopic(dest)
	eventually(c.t, "reset "+id+" on every partition", func() bool {
		offs, err := adm.FetchOffsets(c.t.Context(), c.env.Kafka.TopicPrefix+"egress."+dest)
		if err != nil {
			return false
		}
		for p := range c.env.Kafka.Partitions {
			if o, ok := offs.Lookup(topic, p); !ok || o.Metadata != "hl7bus-reset:"+id {
				return false
			}
		}
		return true
	})
}

// counts is how often each control ID reached p.
func counts(p *egresstest.MLLPPeer) map[string]int {
	n := map[string]int{}
	for _, id := range received(p) {
		n[id]++
	}
	return n
}

// TestResetThenImmediateResume: with two replicas sharing the group and
// the records spread over the partitions, a resume written the moment
// every partition carries the reset's marker (what the admin API waits
// for before it lets a resume through) delivers the records from
// reset_to again exactly once, and nothing before them.
func TestResetThenImmediateResume(t *testing.T) {
	c := newCtlEnv(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	for i, id := range seq("L", 1, 6) {
		at := base
		if i >= 3 {
			at = base.Add(10 * time.Minute)
		}
		c.sendKeyed("lis", id, keys[i], at)
	}
	eg1, eg2 := c.start(), c.start()
	eventually(t, "L1..L6", func() bool { return len(received(c.lis)) == 6 })

	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused})
	eventually(t, "lis paused on both replicas", func() bool {
		return eg1.gauge("hl7bus_destination_paused", "lis") == 1 && eg2.gauge("hl7bus_destination_paused", "lis") == 1
	})
	to := base.Add(5 * time.Minute)
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused, ResetID: "r2", ResetTo: &to})
	c.waitApplied("lis", "r2")
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})

	eventually(t, "the redelivery", func() bool { return len(received(c.lis)) == 9 })
	time.Sleep(quiet)
	want := map[string]int{"L1": 1, "L2": 1, "L3": 1, "L4": 2, "L5": 2, "L6": 2}
	if got := counts(c.lis); !maps.Equal(got, want) {
		t.Errorf("lis received %v, want %v", got, want)
	}
}

// TestResetAppliesAtStart: a reset ordered while no egress ran is applied
// when egress starts (the group's first assignment), before it delivers.
func TestResetAppliesAtStart(t *testing.T) {
	c := newCtlEnv(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	c.send("lis", "L1", base)
	c.send("lis", "L2", base.Add(10*time.Minute))
	eg := c.start()
	eventually(t, "L1, L2", func() bool { return len(received(c.lis)) == 2 })
	eg.stop()
	to := base.Add(5 * time.Minute)
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlPaused, ResetID: "r9", ResetTo: &to})
	eg = c.start()
	c.waitApplied("lis", "r9")
	if !strings.Contains(eg.logs.String(), "consumer group reset") {
		t.Error("the reset is not logged")
	}
	c.control(canonical.ControlState{Destination: "lis", State: canonical.ControlRunning})
	eventually(t, "L2 again", func() bool { return len(received(c.lis)) == 3 })
	if got := strings.Join(received(c.lis), ","); got != "L1,L2,L2" {
		t.Errorf("lis received %s", got)
	}
}

// lockedBuf collects log output from several goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
