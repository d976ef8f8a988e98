package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Tokens of the fake authenticator: the token text is the role's name.
var roleTokens = map[string]Principal{
	"viewer":   {Actor: "vera", Role: RoleViewer, Auth: "token", TokenID: "VIEWER01"},
	"analyst":  {Actor: "ana", Role: RoleAnalyst, Auth: "token", TokenID: "ANALYST1"},
	"operator": {Actor: "otto", Role: RoleOperator, Auth: "token", TokenID: "OPERATOR"},
	"auditor":  {Actor: "aude", Role: RoleAuditor, Auth: "token", TokenID: "AUDITOR1"},
	"admin":    {Actor: "adam", Role: RoleAdmin, Auth: "token", TokenID: "ADMIN001"},
}

type fakeAuth struct{}

func (fakeAuth) Authenticate(r *http.Request) (Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p, known := roleTokens[tok]; ok && known {
		return p, nil
	}
	return Principal{}, ErrUnauthenticated
}

// fakeAudit keeps events; fail makes every write fail.
type fakeAudit struct {
	mu     sync.Mutex
	events []canonical.AuditEvent
	fail   bool
}

func (a *fakeAudit) Audit(_ context.Context, e canonical.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return errors.New("audit topic unreachable")
	}
	a.events = append(a.events, e)
	return nil
}

// actions are the events' actions except token.use.
func (a *fakeAudit) actions() []canonical.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []canonical.AuditEvent
	for _, e := range a.events {
		if e.Action != ActionTokenUse {
			out = append(out, e)
		}
	}
	return out
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeIndex answers from fixed data and remembers the last queries.
type fakeIndex struct {
	mu     sync.Mutex
	search SearchQuery
	dlq    DeadLetterQuery
	audit  AuditQuery
	entry  *IndexEntry
	// block, when set, holds Search until it is closed; entered gets a
	// value when a Search is held.
	block   chan struct{}
	entered chan struct{}
}

func (f *fakeIndex) PatientKey(authority, id string) string {
	return fmt.Sprintf("k%x", len(authority)*1000+len(id))
}

func (f *fakeIndex) Search(ctx context.Context, q SearchQuery) (api.MessagePage, error) {
	if f.block != nil {
		f.entered <- struct{}{}
		select {
		case <-f.block:
		case <-ctx.Done():
			return api.MessagePage{}, ctx.Err()
		}
	}
	f.mu.Lock()
	f.search = q
	f.mu.Unlock()
	return api.MessagePage{Messages: []api.Message{{MessageID: "01M", ControlID: "C1", Interface: "adt-in", Status: "delivered", ReceivedAt: t0}}, NextCursor: "next"}, nil
}

func (f *fakeIndex) Message(_ context.Context, id string) (*IndexEntry, error) {
	if f.entry == nil || f.entry.MessageID != id {
		return nil, ErrNotFound
	}
	e := *f.entry
	return &e, nil
}

func (f *fakeIndex) DeadLetters(_ context.Context, q DeadLetterQuery) (api.DeadLetterPage, error) {
	f.mu.Lock()
	f.dlq = q
	f.mu.Unlock()
	return api.DeadLetterPage{DeadLetters: []api.DeadLetter{{ID: "egress:0:5", MessageID: "01M", Stage: "egress", Destination: "lab"}}}, nil
}

func (f *fakeIndex) DeadLetter(_ context.Context, id string) (*api.DeadLetter, error) {
	if id != "egress:0:5" {
		return nil, ErrNotFound
	}
	return &api.DeadLetter{ID: id, MessageID: "01M", Stage: "egress"}, nil
}

func (f *fakeIndex) Audit(_ context.Context, q AuditQuery) (api.AuditPage, error) {
	f.mu.Lock()
	f.audit = q
	f.mu.Unlock()
	return api.AuditPage{Events: []api.AuditEvent{{EventID: "E1", Action: ActionContentRead, Actor: "ana"}}}, nil
}

func (f *fakeIndex) Counts(context.Context, time.Time) (map[string]map[string]int64, map[string]map[string]int64, error) {
	return map[string]map[string]int64{"adt-in": {"delivered": 7}}, map[string]map[string]int64{"lab": {"delivered": 5, "dead_lettered": 1}}, nil
}

func (f *fakeIndex) Select(context.Context, api.ReplaySelector, int) ([]IndexEntry, error) {
	return nil, nil
}

func (f *fakeIndex) NewerDelivered(context.Context, string, string, time.Time, string) (string, error) {
	return "", nil
}

// fakeReplayer records calls.
type fakeReplayer struct {
	mu       sync.Mutex
	started  int
	warn     bool
	runErr   error
	discards []string
}

func (f *fakeReplayer) Plan(context.Context, Principal, api.ReplayRequest) (*api.ReplayPlan, error) {
	return &api.ReplayPlan{Count: 3, Sample: []api.ReplayItem{{MessageID: "01M", TargetTopic: "hl7bus.transformed"}}}, nil
}

func (f *fakeReplayer) Start(_ context.Context, p Principal, req api.ReplayRequest) (*api.ReplayJob, *api.ReplayPlan, error) {
	if f.warn && !req.ConfirmNewer {
		return nil, &api.ReplayPlan{Count: 1, Warnings: []api.ReplayWarning{{MessageID: "01M", Destination: "lab", NewerMessageID: "01N"}}}, ErrConfirmNewer
	}
	f.mu.Lock()
	f.started++
	f.mu.Unlock()
	return &api.ReplayJob{ID: "J1", State: "running", Actor: p.Actor, Total: 3}, nil, nil
}

func (f *fakeReplayer) Jobs(context.Context) ([]api.ReplayJob, error) {
	return []api.ReplayJob{{ID: "J1", State: "running"}}, nil
}

func (f *fakeReplayer) Job(_ context.Context, id string) (*api.ReplayJob, error) {
	if id != "J1" {
		return nil, ErrNotFound
	}
	return &api.ReplayJob{ID: "J1", State: "running"}, nil
}

func (f *fakeReplayer) Cancel(_ context.Context, _ Principal, id string) (*api.ReplayJob, error) {
	if id != "J1" {
		return nil, ErrNotFound
	}
	return &api.ReplayJob{ID: "J1", State: "cancelled"}, nil
}

func (f *fakeReplayer) Discard(_ context.Context, _ Principal, ids []string, _ string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discards = append(f.discards, ids...)
	return len(ids), nil
}

func (f *fakeReplayer) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	return nil
}

// fakeController keeps states in memory.
type fakeController struct {
	mu     sync.Mutex
	states map[string]canonical.ControlState
	// pending are the partitions a reset has not reached yet.
	pending []int32
}

func (f *fakeController) States(context.Context) (map[string]canonical.ControlState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]canonical.ControlState{}
	for k, v := range f.states {
		out[k] = v
	}
	return out, nil
}

func (f *fakeController) set(name, state string, p Principal, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states == nil {
		f.states = map[string]canonical.ControlState{}
	}
	f.states[name] = canonical.ControlState{Destination: name, State: state, Actor: p.Actor, Reason: reason, At: t0}
}

func (f *fakeController) Pause(_ context.Context, p Principal, d, reason string) error {
	f.set(d, canonical.ControlPaused, p, reason)
	return nil
}

// Resume refuses while a reset set by Reset is pending (f.pending),
// unless force.
func (f *fakeController) Resume(_ context.Context, p Principal, d, reason string, force bool) error {
	f.mu.Lock()
	st := f.states[d]
	pending := f.pending
	f.mu.Unlock()
	if st.ResetID != "" && len(pending) > 0 && !force {
		return &ResetPendingError{Destination: d, ResetID: st.ResetID, To: *st.ResetTo, Partitions: pending}
	}
	f.set(d, canonical.ControlRunning, p, reason)
	return nil
}

func (f *fakeController) Reset(_ context.Context, _ Principal, d string, to time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.states[d]
	if st.State != canonical.ControlPaused {
		return ErrNotPaused
	}
	st.ResetID, st.ResetTo = "r1", &to
	f.states[d] = st
	return nil
}

// ResetStatus answers f.pending as the partitions the reset has not
// reached.
func (f *fakeController) ResetStatus(_ context.Context, d string) (ResetStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.states[d]
	if st.State != canonical.ControlPaused || st.ResetID == "" {
		return ResetStatus{}, nil
	}
	return ResetStatus{ID: st.ResetID, To: *st.ResetTo, Pending: f.pending}, nil
}

func (f *fakeController) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// fakeRecords serves records from memory; a missing offset is gone.
type fakeRecords struct {
	recs map[string]*kgo.Record
}

func recKey(topic string, p int32, off int64) string { return fmt.Sprintf("%s/%d/%d", topic, p, off) }

func (f *fakeRecords) Read(_ context.Context, topic string, p int32, off int64) (*kgo.Record, error) {
	if r, ok := f.recs[recKey(topic, p, off)]; ok {
		return r, nil
	}
	return nil, ErrRecordGone
}

// fixture is a server over fakes.
type fixture struct {
	t     *testing.T
	srv   *Server
	index *fakeIndex
	audit *fakeAudit
	repl  *fakeReplayer
	ctl   *fakeController
	tel   *telemetry.Telemetry
	logs  *bytes.Buffer
	h     http.Handler
}

// patientName is in the fixture's content records: it must show in
// content reads only.
const patientName = "EVERYWOMAN^EVE"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	serde := canonical.NewSerde(cl)
	ctx := context.Background()
	for topic, name := range map[string]string{"hl7bus.raw": schemas.Raw, "hl7bus.decisions": schemas.Decisions, "hl7bus.delivery": schemas.Delivery} {
		if _, err := serde.Register(ctx, topic, name); err != nil {
			t.Fatal(err)
		}
	}
	enc := func(r canonical.Record) *kgo.Record {
		b, err := serde.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Value: b}
	}
	payload := "MSH|^~\\&|LAB|HOSP|||20260304||ADT^A01|C1|P|2.5\rPID|1||12345^^^HOSP||" + patientName + "\r"
	recs := &fakeRecords{recs: map[string]*kgo.Record{
		recKey("hl7bus.raw", 0, 10): enc(&canonical.Raw{MessageID: "01M", Interface: "adt-in", ReceivedAt: t0, Protocol: "mllp", Payload: []byte(payload)}),
		recKey("hl7bus.decisions", 1, 20): enc(&canonical.Decision{MessageID: "01M", Stage: canonical.StageRoute, DecidedAt: t0, ConfigVersion: "v1", Outcome: canonical.OutcomeRouted,
			Routes:       []canonical.RouteDecision{{Route: "labs", Matched: true, Destinations: []string{"lab"}}},
			Destinations: []canonical.DestinationDecision{{Destination: "lab", Outcome: canonical.OutcomeRouted}}}),
		recKey("hl7bus.delivery", 2, 30): enc(&canonical.Delivery{MessageID: "01M", Destination: "lab", Attempt: 1, Outcome: canonical.OutcomeDeadLettered,
			AckCode: "AR", Error: "MSA-3 said: unknown patient " + patientName, LatencyMS: 12, At: t0}),
	}}
	f := &fixture{
		t:     t,
		index: &fakeIndex{},
		audit: &fakeAudit{},
		repl:  &fakeReplayer{},
		ctl:   &fakeController{},
		tel:   telemetry.Nop(),
		logs:  &bytes.Buffer{},
	}
	f.index.entry = &IndexEntry{
		Message:    api.Message{MessageID: "01M", ControlID: "C1", Interface: "adt-in", Status: "dead_lettered", ReceivedAt: t0},
		PatientKey: "kpat",
		Records: []api.Record{
			{Kind: "raw", Topic: "hl7bus.raw", Partition: 0, Offset: 10, At: t0},
			{Kind: kindDecision, Topic: "hl7bus.decisions", Partition: 1, Offset: 20, At: t0},
			{Kind: kindDelivery, Topic: "hl7bus.delivery", Partition: 2, Offset: 30, At: t0},
			{Kind: "parsed", Topic: "hl7bus.parsed", Partition: 0, Offset: 99, At: t0}, // deleted by retention
		},
		DeadLetters: []api.DeadLetter{{ID: "egress:0:5", MessageID: "01M", Stage: "egress"}},
	}
	f.srv = New(Config{Address: "127.0.0.1:0"}, Deps{
		Log:          slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Telemetry:    f.tel,
		Auth:         fakeAuth{},
		Audit:        f.audit,
		Index:        f.index,
		Records:      recs,
		Serde:        serde,
		Replayer:     f.repl,
		Controller:   f.ctl,
		Destinations: []DestinationInfo{{Name: "lab", Protocol: "mllp"}, {Name: "ehr", Protocol: "http"}},
		Interfaces:   []InterfaceInfo{{Name: "adt-in", Protocol: "mllp", Address: ":2575"}},
		Instance:     "test",
	})
	f.srv.now = func() time.Time { return t0 }
	f.h = f.srv.Handler()
	return f
}

// do sends a request as token (the role name; "" for none) and returns
// the recorder.
func (f *fixture) do(method, target, token, body string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// decode reads a JSON answer into v.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer %d is not JSON of %T: %v\n%s", rec.Code, v, err, rec.Body)
	}
	return v
}
