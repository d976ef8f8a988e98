package admin

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
		func() error { return c.Resume(ctx, anna, "nope", "") },
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
	if err := c.Resume(ctx, anna, "lis", "back"); err != nil {
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
