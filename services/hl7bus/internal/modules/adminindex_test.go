package modules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/admin/api"
	"github.com/hl7bus/hl7bus/services/index"
	"github.com/jackc/pgx/v5"
)

var (
	aiT0     = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	aiSecret = []byte("admin-index-secret")
)

// postgresEnv names the PostgreSQL the adapter tests also run against
// (scripts/postgres.sh exports a superuser DSN); without it the
// PostgreSQL cases skip.
const postgresEnv = "HL7BUS_TEST_POSTGRES_DSN"

// indexBackend opens an empty, migrated index store on one database.
type indexBackend struct {
	name string
	open func(t *testing.T) *index.Store
}

// indexBackends are the databases the adapter runs over: SQLite in a
// temporary directory, and PostgreSQL in a schema of the test's own when
// HL7BUS_TEST_POSTGRES_DSN is set, so the same assertions hold for both.
func indexBackends() []indexBackend {
	return []indexBackend{
		{index.DriverSQLite, func(t *testing.T) *index.Store {
			return openIndex(t, index.DriverSQLite, filepath.Join(t.TempDir(), "index.db"))
		}},
		{index.DriverPostgres, func(t *testing.T) *index.Store {
			dsn := os.Getenv(postgresEnv)
			if dsn == "" {
				t.Skipf("%s not set: the PostgreSQL cases skip (scripts/postgres.sh run go test ... sets it)", postgresEnv)
			}
			return openIndex(t, index.DriverPostgres, withSearchPath(t, dsn, postgresSchema(t, dsn)))
		}},
	}
}

// postgresSchema creates a schema of random name for one test and drops
// it (with the index's tables) when the test ends.
func postgresSchema(t *testing.T, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", postgresEnv, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

// withSearchPath adds search_path to a URL or key=value DSN, as the
// index's own tests do: the store then creates and reads its tables there.
func withSearchPath(t *testing.T, dsn, schema string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " search_path=" + schema
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openIndex(t *testing.T, driver, dsn string) *index.Store {
	t.Helper()
	ctx := context.Background()
	st, err := index.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// eachIndex runs f once per backend, each with the fixture in a fresh
// store.
func eachIndex(t *testing.T, f func(t *testing.T, ix admin.Index)) {
	for _, b := range indexBackends() {
		t.Run(b.name, func(t *testing.T) {
			f(t, adminIndexFixture(t, b.open(t)))
		})
	}
}

// adminIndexFixture fills st with two messages of one patient (m1
// rejected by lis and dead-lettered, m2 delivered to lis), an audit event
// and a discarded dead letter, and adapts it.
func adminIndexFixture(t *testing.T, st *index.Store) admin.Index {
	t.Helper()
	ctx := context.Background()
	p := index.Projector{Secret: aiSecret}
	src := func(topic string, off int64) index.Source {
		return index.Source{Topic: topic, Partition: 0, Offset: off}
	}
	var us []index.Update
	for i, id := range []string{"m1", "m2"} {
		at := aiT0.Add(time.Duration(i) * time.Minute)
		h := canonical.Header{SendingFacility: "LABFAC", MessageCode: "ADT", TriggerEvent: "A08", ControlID: "C" + id}
		us = append(us, p.Raw(src("raw", int64(i)), &canonical.Raw{MessageID: id, Interface: "adt", ReceivedAt: at, Header: h})...)
		us = append(us, p.Transformed(src("transformed", int64(i)), &canonical.Transformed{MessageID: id, Interface: "adt", ReceivedAt: at, Header: h,
			Patient: &canonical.Patient{Identifiers: []canonical.Identifier{{Value: "MRN42", Authority: "HOSP"}}}})...)
		us = append(us, p.Decision(src("decisions", int64(i)), &canonical.Decision{MessageID: id, DecidedAt: at, Outcome: canonical.OutcomeRouted,
			Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}}})...)
	}
	us = append(us, p.Delivery(src("delivery", 1), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 1,
		Outcome: canonical.OutcomeDeadLettered, AckCode: "AR", At: aiT0.Add(time.Hour)})...)
	us = append(us, p.DeadLetter(src("dlq.egress", 4), &canonical.DeadLetter{MessageID: "m1", ControlID: "Cm1", Stage: "egress", Destination: "lis",
		ErrorClass: canonical.ErrorPermanent, Reason: "AR", LastFailedAt: aiT0.Add(time.Hour)})...)
	us = append(us, p.DeadLetter(src("dlq.egress", 5), &canonical.DeadLetter{MessageID: "m1", Stage: "egress", Destination: "lis",
		ErrorClass: canonical.ErrorPermanent, Reason: "AR", LastFailedAt: aiT0.Add(2 * time.Hour)})...)
	us = append(us, p.Replay(src("replay", 1), &canonical.ReplayRecord{Kind: canonical.ReplayKindDiscard, At: aiT0.Add(3 * time.Hour),
		Discard: &canonical.Discard{DeadLetterID: "egress:0:5", Actor: "op", Reason: "duplicate"}})...)
	us = append(us, p.Delivery(src("delivery", 2), &canonical.Delivery{MessageID: "m2", Destination: "lis", Attempt: 1,
		Outcome: canonical.OutcomeDelivered, AckCode: "AA", At: aiT0.Add(time.Hour), Source: &canonical.RecordRef{Topic: "out.lis", Offset: 9}})...)
	us = append(us, p.Audit(src("audit", 1), &canonical.AuditEvent{EventID: "e1", At: aiT0, Service: "admin", Actor: "ana", Action: "message.content",
		Resource: "m1", Count: 1, Outcome: canonical.AuditOK})...)
	if err := st.Apply(ctx, us); err != nil {
		t.Fatal(err)
	}
	return newAdminIndex(st, aiSecret)
}

func TestAdminIndexSearch(t *testing.T) {
	eachIndex(t, func(t *testing.T, ix admin.Index) {
		ctx := context.Background()
		ids := func(q admin.SearchQuery) []string {
			t.Helper()
			page, err := ix.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range page.Messages {
				out = append(out, m.MessageID+"="+m.Status)
			}
			return out
		}
		tests := []struct {
			name string
			q    admin.SearchQuery
			want []string
		}{
			{"control ID", admin.SearchQuery{ControlID: "Cm1"}, []string{"m1=rejected"}},
			{"patient with authority", admin.SearchQuery{PatientID: "MRN42", PatientAuthority: "HOSP"}, []string{"m2=delivered", "m1=rejected"}},
			{"patient without authority", admin.SearchQuery{PatientID: "MRN42"}, []string{"m2=delivered", "m1=rejected"}},
			{"patient of another authority", admin.SearchQuery{PatientID: "MRN42", PatientAuthority: "OTHER"}, nil},
			{"type and facility", admin.SearchQuery{Type: "ADT^A08", Facility: "LABFAC", Status: "delivered"}, []string{"m2=delivered"}},
		}
		for _, tt := range tests {
			if got := ids(tt.q); len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			}
		}
		page, err := ix.Search(ctx, admin.SearchQuery{Limit: 1})
		if err != nil || page.NextCursor == "" || len(page.Messages) != 1 {
			t.Fatalf("first page %+v %v", page, err)
		}
		m := page.Messages[0]
		if m.Type != "ADT^A08" || m.Interface != "adt" || len(m.Destinations) != 1 || m.Destinations[0] != (api.DestinationStatus{Name: "lis",
			Status: "delivered", Attempts: 1, LastOutcome: "delivered AA", UpdatedAt: aiT0.Add(time.Hour)}) {
			t.Fatalf("message %+v", m)
		}
		var fe *admin.FieldError
		if _, err := ix.Search(ctx, admin.SearchQuery{Cursor: "!!"}); !errors.As(err, &fe) || fe.Param != "cursor" {
			t.Fatalf("bad cursor: %v", err)
		}
		if _, err := ix.Search(ctx, admin.SearchQuery{Status: "lost"}); !errors.As(err, &fe) || fe.Param != "status" {
			t.Fatalf("bad status: %v", err)
		}
		if ix.PatientKey("HOSP", "MRN42") != index.PatientKey(aiSecret, "HOSP", "MRN42") {
			t.Fatal("PatientKey is not the index's")
		}
	})
}

func TestAdminIndexMessageAndDeadLetters(t *testing.T) {
	eachIndex(t, func(t *testing.T, ix admin.Index) {
		ctx := context.Background()
		e, err := ix.Message(ctx, "m2")
		if err != nil {
			t.Fatal(err)
		}
		if e.PatientKey != index.PatientKey(aiSecret, "HOSP", "MRN42") || len(e.Records) != 5 || len(e.DeadLetters) != 0 {
			t.Fatalf("entry %+v", e)
		}
		var out bool
		for _, r := range e.Records {
			out = out || r.Kind == index.KindOut && r.Topic == "out.lis" && r.Offset == 9
		}
		if !out {
			t.Fatalf("records %+v: no out record", e.Records)
		}
		if _, err := ix.Message(ctx, "nope"); !errors.Is(err, admin.ErrNotFound) {
			t.Fatalf("unknown message: %v", err)
		}
		page, err := ix.DeadLetters(ctx, admin.DeadLetterQuery{Stage: "egress"})
		if err != nil || len(page.DeadLetters) != 1 || page.DeadLetters[0].ID != "egress:0:4" {
			t.Fatalf("waiting dead letters %+v %v", page, err)
		}
		page, err = ix.DeadLetters(ctx, admin.DeadLetterQuery{IncludeDiscarded: true})
		if err != nil || len(page.DeadLetters) != 2 {
			t.Fatalf("all dead letters %+v %v", page, err)
		}
		d, err := ix.DeadLetter(ctx, "egress:0:5")
		if err != nil || d.Discarded == nil || *d.Discarded != (api.Discarded{Actor: "op", Reason: "duplicate", At: aiT0.Add(3 * time.Hour)}) {
			t.Fatalf("discarded dead letter %+v %v", d, err)
		}
		if _, err := ix.DeadLetter(ctx, "egress:0:99"); !errors.Is(err, admin.ErrNotFound) {
			t.Fatalf("unknown dead letter: %v", err)
		}
	})
}

func TestAdminIndexReplaySupport(t *testing.T) {
	eachIndex(t, func(t *testing.T, ix admin.Index) {
		ctx := context.Background()
		rows, err := ix.Select(ctx, api.ReplaySelector{Destination: "lis", Since: aiT0}, 1)
		if err != nil {
			t.Fatal(err)
		}
		// limit+1: the caller sees there are more than 1.
		if len(rows) != 2 || rows[0].MessageID != "m1" || rows[1].MessageID != "m2" {
			t.Fatalf("selected %+v", rows)
		}
		rows, err = ix.Select(ctx, api.ReplaySelector{DeadLetters: []string{"egress:0:4"}}, 10)
		if err != nil || len(rows) != 1 || rows[0].MessageID != "m1" || len(rows[0].DeadLetters) != 2 {
			t.Fatalf("by dead letter %+v %v", rows, err)
		}
		var fe *admin.FieldError
		if _, err := ix.Select(ctx, api.ReplaySelector{Status: "lost"}, 10); !errors.As(err, &fe) {
			t.Fatalf("bad status: %v", err)
		}
		newer, err := ix.NewerDelivered(ctx, rows[0].PatientKey, "lis", rows[0].ReceivedAt, "m1")
		if err != nil || newer != "m2" {
			t.Fatalf("newer delivered %q %v, want m2", newer, err)
		}
		ifs, dests, err := ix.Counts(ctx, aiT0.Add(-time.Hour))
		if err != nil || ifs["adt"]["rejected"] != 1 || ifs["adt"]["delivered"] != 1 || dests["lis"]["delivered"] != 1 {
			t.Fatalf("counts %v %v %v", ifs, dests, err)
		}
		audit, err := ix.Audit(ctx, admin.AuditQuery{Actor: "ana"})
		if err != nil || len(audit.Events) != 1 || audit.Events[0].Action != "message.content" || audit.Events[0].Resource != "m1" {
			t.Fatalf("audit %+v %v", audit, err)
		}
	})
}
