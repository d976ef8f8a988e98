package admin

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

// recAuditor records events; fail makes it refuse them.
type recAuditor struct {
	mu     sync.Mutex
	events []canonical.AuditEvent
	fail   error
}

func (a *recAuditor) Audit(_ context.Context, e canonical.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.events = append(a.events, e)
	return nil
}

func (a *recAuditor) all() []canonical.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]canonical.AuditEvent(nil), a.events...)
}

// runControl starts a Control for lis and ris; the test's end stops it.
func runControl(t *testing.T, env *kafkatest.Env, aud Auditor) *Control {
	t.Helper()
	c, err := NewController(env.Kafka, env.Serde, aud, []string{"lis", "ris"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

var anna = Principal{Actor: "ops-anna", Role: RoleOperator, Auth: "token", TokenID: "ABCDEFGH"}

func TestControlPauseResumeReset(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	aud := &recAuditor{}
	c := runControl(t, env, aud)

	states, err := c.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states["lis"].State != canonical.ControlRunning || states["ris"].State != canonical.ControlRunning {
		t.Fatalf("initial states %+v, want lis and ris running", states)
	}
	if err := c.Reset(ctx, anna, "lis", time.Now()); !errors.Is(err, ErrNotPaused) {
		t.Errorf("Reset of a running destination: %v, want ErrNotPaused", err)
	}
	for _, call := range []func() error{
		func() error { return c.Pause(ctx, anna, "nope", "") },
		func() error { return c.Resume(ctx, anna, "nope", "", false) },
		func() error { return c.Reset(ctx, anna, "nope", time.Now()) },
	} {
		if err := call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown destination: %v, want ErrNotFound", err)
		}
	}
	if n := len(aud.all()); n != 0 {
		t.Errorf("%d audit events for refused actions, want none", n)
	}

	// Pause: visible as soon as Pause returns, audited.
	if err := c.Pause(ctx, anna, "lis", "lab maintenance"); err != nil {
		t.Fatal(err)
	}
	states, _ = c.States(ctx)
	if st := states["lis"]; st.State != canonical.ControlPaused || st.Actor != "ops-anna" || st.Reason != "lab maintenance" || st.At.IsZero() {
		t.Errorf("lis after Pause: %+v", st)
	}
	if states["ris"].State != canonical.ControlRunning {
		t.Errorf("ris after lis's Pause: %+v", states["ris"])
	}

	to := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	if err := c.Reset(ctx, anna, "lis", to); err != nil {
		t.Fatal(err)
	}
	states, _ = c.States(ctx)
	reset := states["lis"]
	if reset.State != canonical.ControlPaused || reset.ResetID == "" || reset.ResetTo == nil || !reset.ResetTo.Equal(to) || reset.Reason != "lab maintenance" {
		t.Errorf("lis after Reset: %+v, want still paused with a reset id and reset_to %v", reset, to)
	}
	if err := c.Reset(ctx, anna, "lis", to); err != nil {
		t.Fatal(err)
	}
	states, _ = c.States(ctx)
	if states["lis"].ResetID == reset.ResetID {
		t.Error("a second reset has the first one's ID: egress would not apply it")
	}
	if err := c.Resume(ctx, anna, "lis", "back", false); err != nil {
		t.Fatal(err)
	}
	states, _ = c.States(ctx)
	if st := states["lis"]; st.State != canonical.ControlRunning || st.ResetID != "" || st.ResetTo != nil {
		t.Errorf("lis after Resume: %+v, want running without a reset", st)
	}

	evs := aud.all()
	want := []struct{ action, detail string }{
		{ActionDestinationPause, "lab maintenance"},
		{ActionDestinationReset, "2026-12-01T08:00:00Z"},
		{ActionDestinationReset, "2026-12-01T08:00:00Z"},
		{ActionDestinationResume, "back"},
	}
	if len(evs) != len(want) {
		t.Fatalf("audit events %+v, want %d", evs, len(want))
	}
	for i, w := range want {
		e := evs[i]
		if e.Action != w.action || e.Detail != w.detail || e.Resource != "destination/lis" || e.Actor != "ops-anna" ||
			e.Role != "operator" || e.Auth != "token" || e.Outcome != canonical.AuditOK {
			t.Errorf("audit event %d: %+v, want %s with detail %q", i, e, w.action, w.detail)
		}
	}

	// The topic holds the states keyed by destination: a new Control
	// (another replica, a restart) starts from them.
	recs := env.Read(t, env.Kafka.Topic(kafka.TopicControl), 4)
	for _, r := range recs {
		if string(r.Key) != "lis" {
			t.Errorf("control record keyed %q, want the destination", r.Key)
		}
	}
	if err := c.Pause(ctx, anna, "ris", ""); err != nil {
		t.Fatal(err)
	}
	other := runControl(t, env, &recAuditor{})
	states, err = other.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if states["lis"].State != canonical.ControlRunning || states["ris"].State != canonical.ControlPaused {
		t.Errorf("a new Control reads %+v, want lis running and ris paused", states)
	}
}

// TestControlRefusedWithoutAudit: an action whose audit event cannot be
// written does not happen.
func TestControlRefusedWithoutAudit(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	aud := &recAuditor{fail: errors.New("audit topic unavailable")}
	c := runControl(t, env, aud)
	if err := c.Pause(ctx, anna, "lis", ""); err == nil {
		t.Fatal("Pause succeeded without its audit event")
	}
	states, err := c.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if states["lis"].State != canonical.ControlRunning {
		t.Errorf("lis %+v after a refused Pause, want running", states["lis"])
	}
}

// TestControlStopped: once Run has returned, actions answer
// ErrControlStopped instead of waiting for ever.
func TestControlStopped(t *testing.T) {
	env := kafkatest.New(t)
	c, err := NewController(env.Kafka, env.Serde, &recAuditor{}, []string{"lis"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Logf("Run on an ended context: %v", err)
	}
	if err := c.Pause(context.Background(), anna, "lis", ""); !errors.Is(err, ErrControlStopped) {
		t.Errorf("Pause after Run: %v, want ErrControlStopped", err)
	}
}

func TestNewControllerValidates(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name  string
		dests []string
		want  string
	}{
		{"empty name", []string{"lis", ""}, "destinations[1]: empty name"},
		{"twice", []string{"lis", "lis"}, `destinations[1]: "lis" twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewController(kafka.Config{}, &canonical.Serde{}, &recAuditor{}, tc.dests, log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestControlWithoutAuditor: the admin API's HTTP layer audits control
// actions itself and gives the Control no Auditor; pause and resume work
// and are visible at once.
func TestControlWithoutAuditor(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := runControl(t, env, nil)
	if err := c.Pause(ctx, anna, "lis", "upgrade"); err != nil {
		t.Fatal(err)
	}
	st, err := c.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st["lis"].State != canonical.ControlPaused || st["ris"].State != canonical.ControlRunning {
		t.Errorf("states %+v, want lis paused and ris running", st)
	}
}

// ensureOut creates out.<dest> (the broker's three partitions).
func ensureOut(t *testing.T, env *kafkatest.Env, dest string) {
	t.Helper()
	prod, err := kafka.NewProducer(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := kafka.EnsureTopics(t.Context(), prod, env.Kafka, env.Kafka.OutTopic(dest)); err != nil {
		t.Fatal(err)
	}
}

// applyReset does what egress does when it applies reset id to parts of
// out.<dest>: commit an offset carrying the marker in the destination's
// group (services/egress, applyReset).
func applyReset(t *testing.T, env *kafkatest.Env, dest, id string, parts ...int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs := kadm.Offsets{}
	for _, p := range parts {
		offs.Add(kadm.Offset{Topic: env.Kafka.OutTopic(dest), Partition: p, At: 0, LeaderEpoch: -1, Metadata: "hl7bus-reset:" + id})
	}
	res, err := kadm.NewClient(cl).CommitOffsets(t.Context(), env.Kafka.TopicPrefix+"egress."+dest, offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestResetPendingRefusesResume: a reset egress has not applied on every
// partition is pending (ResetStatus names the partitions), and Resume
// refuses, naming it, until it is applied: an immediate resume can no
// longer drop it. A second pause keeps it; an older reset's marker does
// not count for a newer one.
func TestResetPendingRefusesResume(t *testing.T) {
	env := kafkatest.New(t)
	ensureOut(t, env, "lis")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	aud := &recAuditor{}
	c := runControl(t, env, aud)
	c.resetWait = 300 * time.Millisecond

	if err := c.Pause(ctx, anna, "lis", "lab maintenance"); err != nil {
		t.Fatal(err)
	}
	if rs, err := c.ResetStatus(ctx, "lis"); err != nil || rs.ID != "" || rs.Applied() {
		t.Errorf("reset status of a paused destination never reset: %+v, %v", rs, err)
	}
	to := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	start := time.Now()
	if err := c.Reset(ctx, anna, "lis", to); err != nil {
		t.Fatalf("Reset without egress: %v, want the order written and nil", err)
	}
	if d := time.Since(start); d < c.resetWait {
		t.Errorf("Reset returned after %v: it did not wait for egress", d)
	}
	rs, err := c.ResetStatus(ctx, "lis")
	if err != nil {
		t.Fatal(err)
	}
	if rs.ID == "" || !rs.To.Equal(to) || !slices.Equal(rs.Pending, []int32{0, 1, 2}) || rs.Applied() {
		t.Fatalf("reset status %+v, want pending on 0,1,2", rs)
	}

	err = c.Resume(ctx, anna, "lis", "back", false)
	var rpe *ResetPendingError
	if !errors.Is(err, ErrResetPending) || !errors.As(err, &rpe) {
		t.Fatalf("Resume with the reset pending: %v, want ErrResetPending", err)
	}
	if rpe.ResetID != rs.ID || !slices.Equal(rpe.Partitions, []int32{0, 1, 2}) ||
		!strings.Contains(err.Error(), "reset "+rs.ID) || !strings.Contains(err.Error(), "2026-12-01T08:00:00Z") ||
		!strings.Contains(err.Error(), "force") {
		t.Errorf("refusal %q (%+v): want the reset, its time and force named", err, rpe)
	}

	// Applied on part of the topic: still pending, on the rest.
	applyReset(t, env, "lis", rs.ID, 0, 1)
	if rs, _ := c.ResetStatus(ctx, "lis"); !slices.Equal(rs.Pending, []int32{2}) {
		t.Errorf("pending %v after partitions 0 and 1, want [2]", rs.Pending)
	}
	if err := c.Resume(ctx, anna, "lis", "back", false); !errors.As(err, &rpe) || !slices.Equal(rpe.Partitions, []int32{2}) {
		t.Errorf("Resume with partition 2 pending: %v", err)
	}
	// A second pause must not drop the pending reset.
	if err := c.Pause(ctx, anna, "lis", "still down"); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.ResetStatus(ctx, "lis"); again.ID != rs.ID {
		t.Fatalf("after a second pause the reset is %q, want %q", again.ID, rs.ID)
	}
	states, _ := c.States(ctx)
	if states["lis"].State != canonical.ControlPaused {
		t.Fatalf("lis %+v after refused resumes, want paused", states["lis"])
	}

	applyReset(t, env, "lis", rs.ID, 2)
	if rs, _ := c.ResetStatus(ctx, "lis"); !rs.Applied() {
		t.Fatalf("reset status %+v once every partition has the marker, want applied", rs)
	}
	// A newer reset is pending again: the older one's marker is not its.
	if err := c.Reset(ctx, anna, "lis", to.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	newer, _ := c.ResetStatus(ctx, "lis")
	if newer.ID == rs.ID || len(newer.Pending) != 3 {
		t.Fatalf("newer reset %+v, want a new ID pending everywhere", newer)
	}
	applyReset(t, env, "lis", newer.ID, 0, 1, 2)
	if err := c.Resume(ctx, anna, "lis", "back", false); err != nil {
		t.Fatalf("Resume once the reset is applied: %v", err)
	}
	states, _ = c.States(ctx)
	if st := states["lis"]; st.State != canonical.ControlRunning || st.ResetID != "" {
		t.Errorf("lis after Resume: %+v", st)
	}
	if rs, _ := c.ResetStatus(ctx, "lis"); rs.ID != "" {
		t.Errorf("a running destination reports reset %+v", rs)
	}
	for _, e := range aud.all() {
		if e.Action == ActionDestinationResume && e.Detail != "back" {
			t.Errorf("resume audited as %+v", e)
		}
	}
}

// TestResetWaitsForEgress: Reset returns once egress has applied it on
// every partition, not after its whole bound, so the answer says applied.
func TestResetWaitsForEgress(t *testing.T) {
	env := kafkatest.New(t)
	ensureOut(t, env, "lis")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := runControl(t, env, nil)
	c.resetWait = 20 * time.Second
	if err := c.Pause(ctx, anna, "lis", ""); err != nil {
		t.Fatal(err)
	}
	const lag = 500 * time.Millisecond
	go func() {
		// Egress, late: it applies the reset once it sees it.
		for ctx.Err() == nil {
			st, err := c.States(ctx)
			if err == nil && st["lis"].ResetID != "" {
				time.Sleep(lag)
				applyReset(t, env, "lis", st["lis"].ResetID, 0, 1, 2)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	if err := c.Reset(ctx, anna, "lis", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < lag || d > 10*time.Second {
		t.Errorf("Reset returned after %v, want once egress applied it (%v later)", d, lag)
	}
	if rs, err := c.ResetStatus(ctx, "lis"); err != nil || !rs.Applied() {
		t.Errorf("reset status after Reset: %+v, %v; want applied", rs, err)
	}
}

// TestResumeForceDropsPendingReset: force resumes although the reset is
// pending (the operator's choice, in the trail); a destination whose
// topic does not exist has nothing to reset.
func TestResumeForceDropsPendingReset(t *testing.T) {
	env := kafkatest.New(t)
	ensureOut(t, env, "lis")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	aud := &recAuditor{}
	c := runControl(t, env, aud)
	c.resetWait = 100 * time.Millisecond
	for _, d := range []string{"lis", "ris"} {
		if err := c.Pause(ctx, anna, d, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.Reset(ctx, anna, d, time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if rs, _ := c.ResetStatus(ctx, "ris"); !rs.Applied() {
		t.Errorf("ris (no topic) reset status %+v, want applied: nothing to move", rs)
	}
	if err := c.Resume(ctx, anna, "ris", "", false); err != nil {
		t.Errorf("Resume of ris: %v", err)
	}
	if err := c.Resume(ctx, anna, "lis", "lab back", true); err != nil {
		t.Fatalf("forced Resume: %v", err)
	}
	states, _ := c.States(ctx)
	if st := states["lis"]; st.State != canonical.ControlRunning || st.ResetID != "" {
		t.Errorf("lis after a forced Resume: %+v", st)
	}
	evs := aud.all()
	if last := evs[len(evs)-1]; last.Action != ActionDestinationResume || last.Detail != "force lab back" {
		t.Errorf("forced resume audited as %+v", last)
	}
}
