package index

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// postgresEnv names the PostgreSQL the suite also runs against; without
// it the PostgreSQL cases skip (interop sets it).
const postgresEnv = "HL7BUS_TEST_POSTGRES_DSN"

type backend struct {
	name string
	open func(t testing.TB) (*Store, string)
}

// backends is every database the suite runs on: SQLite in a temporary
// directory always, PostgreSQL when HL7BUS_TEST_POSTGRES_DSN is set, each
// test in a schema of its own.
func backends() []backend {
	return []backend{
		{DriverSQLite, func(t testing.TB) (*Store, string) {
			path := filepath.Join(t.TempDir(), "index.db")
			return openStore(t, DriverSQLite, path), path
		}},
		{DriverPostgres, func(t testing.TB) (*Store, string) {
			dsn := os.Getenv(postgresEnv)
			if dsn == "" {
				t.Skipf("%s not set: PostgreSQL tests skip", postgresEnv)
			}
			schema := "t_" + randomHex(t, 8)
			admin := openStore(t, DriverPostgres, dsn)
			if _, err := admin.db.Exec(`CREATE SCHEMA ` + schema); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = admin.db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
			sep := " "
			if strings.Contains(dsn, "://") {
				sep = "?"
				if strings.Contains(dsn, "?") {
					sep = "&"
				}
			}
			return openStore(t, DriverPostgres, dsn+sep+"search_path="+schema), ""
		}},
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func openStore(t testing.TB, driver, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func each(t *testing.T, f func(t *testing.T, s *Store, path string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			s, path := b.open(t)
			f(t, s, path)
		})
	}
}

func apply(t *testing.T, s *Store, us ...[]Update) {
	t.Helper()
	var all []Update
	for _, u := range us {
		all = append(all, u...)
	}
	if err := s.Apply(context.Background(), all); err != nil {
		t.Fatal(err)
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	_, err := Open(context.Background(), "mysql", "x")
	if err == nil || !strings.Contains(err.Error(), `"mysql"`) {
		t.Fatalf("err = %v, want the driver named", err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		ms, err := migrations()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("migrate again (%d): %v", i, err)
			}
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != len(ms) || v < 1 {
			t.Fatalf("schema version %d, want %d", v, len(ms))
		}
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
			t.Fatalf("schema_migrations rows = %d (%v), want %d", n, err, len(ms))
		}
	})
}

func TestStatements(t *testing.T) {
	got := statements("-- c\nCREATE TABLE a (x INT);\n\nCREATE INDEX i\n  ON a (x);\n")
	want := []string{"CREATE TABLE a (x INT);", "CREATE INDEX i\n  ON a (x);"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statements = %q, want %q", got, want)
	}
}

// journey is the records of one ORU through the pipeline to two
// destinations.
func journey(p Projector, id, control string, at time.Time) []Update {
	h := hdr
	h.ControlID = control
	var us []Update
	us = append(us, p.Raw(src("raw", 1), &canonical.Raw{MessageID: id, Interface: "lab", ReceivedAt: at, Header: h})...)
	us = append(us, p.Parsed(src("parsed", 1), &canonical.Parsed{MessageID: id, Interface: "lab", ReceivedAt: at, Header: h})...)
	us = append(us, p.Transformed(src("transformed", 1), &canonical.Transformed{MessageID: id, Interface: "lab", ReceivedAt: at, Header: h,
		Patient: &canonical.Patient{Identifiers: []canonical.Identifier{{Value: "MRN-" + control, Authority: "HOSP"}}}})...)
	us = append(us, p.Decision(src("decisions", 1), &canonical.Decision{MessageID: id, Interface: "lab", ControlID: control, MessageType: "ORU^R01",
		DecidedAt: at.Add(time.Millisecond), Outcome: canonical.OutcomeRouted,
		Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}, {Destination: "ehr", Outcome: canonical.OutcomeRouted}}})...)
	return us
}

func delivery(p Projector, id, dest, outcome, ack string, attempt int, at time.Time) []Update {
	return p.Delivery(src("delivery", int64(attempt)), &canonical.Delivery{MessageID: id, Destination: dest, Attempt: attempt, Outcome: outcome, AckCode: ack, At: at})
}

func destStatuses(m MessageRow) string {
	var b strings.Builder
	for _, d := range m.Destinations {
		fmt.Fprintf(&b, "%s=%s ", d.Destination, d.Status)
	}
	return strings.TrimSpace(b.String())
}

func TestApplyAndMessage(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "m1", "C1", t0))
		m, err := s.Message(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != StatusRouted || m.ControlID != "C1" || m.Interface != "lab" || m.SendingFacility != "LABFAC" ||
			m.MessageType != "ORU^R01" || !m.ReceivedAt.Equal(t0) || m.TraceID != "trace1" || m.PatientKey != PatientKey(secret, "HOSP", "MRN-C1") {
			t.Fatalf("message row %+v", m.MessageRow)
		}
		if got := destStatuses(m.MessageRow); got != "ehr=routed lis=routed" {
			t.Fatalf("destinations %s", got)
		}
		if len(m.Pointers) != 4 {
			t.Fatalf("pointers %+v, want raw, parsed, transformed, decision", m.Pointers)
		}
		// ehr delivered after one AE; lis answers AR: partially delivered.
		apply(t, s, delivery(p, "m1", "ehr", canonical.OutcomeRetry, "AE", 1, t0.Add(time.Second)),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 2, t0.Add(2*time.Second)),
			delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "AR", 1, t0.Add(time.Second)),
			p.DeadLetter(Source{Topic: "dlq.egress", Partition: 0, Offset: 7}, &canonical.DeadLetter{MessageID: "m1", ControlID: "C1", Stage: "egress",
				Destination: "lis", ErrorClass: canonical.ErrorPermanent, Reason: "AR", Attempts: 1, LastFailedAt: t0.Add(time.Second)}))
		m, err = s.Message(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != StatusPartiallyDelivered {
			t.Fatalf("status %s, want partially_delivered", m.Status)
		}
		if got := destStatuses(m.MessageRow); got != "ehr=delivered lis=rejected" {
			t.Fatalf("destinations %s", got)
		}
		if d := m.Destinations[0]; d.Attempts != 2 || d.LastOutcome != "delivered AA" {
			t.Fatalf("ehr %+v", d)
		}
		if len(m.DeadLetters) != 1 || m.DeadLetters[0].ID != "egress:0:7" {
			t.Fatalf("dead letters %+v", m.DeadLetters)
		}
		if _, err := s.Message(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestApplyIsIdempotent(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		p := Projector{Secret: secret}
		us := append(journey(p, "m1", "C1", t0), delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second))...)
		apply(t, s, us)
		first, err := s.Message(context.Background(), "m1")
		if err != nil {
			t.Fatal(err)
		}
		apply(t, s, us, us)
		again, err := s.Message(context.Background(), "m1")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%+v", first) != fmt.Sprintf("%+v", again) {
			t.Fatalf("applying twice changed the message:\n%+v\n%+v", first, again)
		}
	})
}

func TestStatusNeverGoesBackwards(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		us := journey(p, "m1", "C1", t0)
		deliveries := append(delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second))...)
		// A rebuild reads delivery before raw and parsed, one batch each.
		apply(t, s, deliveries)
		for _, u := range us {
			apply(t, s, []Update{u})
		}
		m, err := s.Message(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != StatusDelivered || destStatuses(m.MessageRow) != "ehr=delivered lis=delivered" {
			t.Fatalf("status %s, destinations %s: a late record went backwards", m.Status, destStatuses(m.MessageRow))
		}
		if m.StageStatus != StatusRouted || m.ControlID != "C1" {
			t.Fatalf("stage status %s, control ID %q", m.StageStatus, m.ControlID)
		}
		// A late AE attempt after the delivery changes nothing.
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeRetry, "AE", 1, t0.Add(500*time.Millisecond)))
		m, _ = s.Message(ctx, "m1")
		if m.Status != StatusDelivered {
			t.Fatalf("status %s after a stale ack_error", m.Status)
		}
	})
}

func TestReplayCycle(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "m1", "C1", t0),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "", 5, t0.Add(time.Second)))
		replay := []Update{{MessageID: "m1", At: t0.Add(time.Hour), Destination: &DestinationUpdate{Destination: "lis", Status: StatusReplayed}}}
		apply(t, s, replay)
		m, _ := s.Message(ctx, "m1")
		if m.Status != StatusReplayed {
			t.Fatalf("status %s, want replayed", m.Status)
		}
		// A late copy of the old dead letter does not undo the replay.
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "", 5, t0.Add(time.Second)))
		if m, _ = s.Message(ctx, "m1"); m.Status != StatusReplayed {
			t.Fatalf("status %s after a stale dead letter", m.Status)
		}
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 6, t0.Add(time.Hour+time.Second)))
		if m, _ = s.Message(ctx, "m1"); m.Status != StatusDelivered || m.Destinations[1].Attempts != 6 {
			t.Fatalf("status %s, %+v after the replay delivered", m.Status, m.Destinations)
		}
	})
}

// TestReplayIntoRouteReopensDestinations: a message delivered to both
// destinations is replayed into route for lis (the admin API writes an
// item for the message and one for lis); lis now answers AR. The index
// says lis rejected, not the old cycle's delivered.
func TestReplayIntoRouteReopensDestinations(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		apply(t, s, journey(p, "m1", "C1", t0),
			delivery(p, "m1", "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)),
			delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)))
		at := t0.Add(time.Hour)
		item := func(off int64, dest string) []Update {
			return p.Replay(src("replay", off), &canonical.ReplayRecord{Kind: canonical.ReplayKindItem, JobID: "j1", At: at,
				Item: &canonical.ReplayItem{MessageID: "m1", Destination: dest, TargetTopic: "transformed", Source: canonical.RecordRef{Topic: "transformed", Offset: 1}}})
		}
		apply(t, s, item(30, ""), item(31, "lis"))
		m, _ := s.Message(ctx, "m1")
		if m.Status != StatusReplayed || destStatuses(m.MessageRow) != "ehr=delivered lis=replayed" {
			t.Fatalf("after the items: status %s, destinations %s", m.Status, destStatuses(m.MessageRow))
		}
		// Route re-runs lis only (the replay destinations header).
		apply(t, s, p.Decision(src("decisions", 2), &canonical.Decision{MessageID: "m1", Interface: "lab", ControlID: "C1", MessageType: "ORU^R01",
			DecidedAt: at.Add(time.Millisecond), Outcome: canonical.OutcomeRouted,
			Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}}}))
		if m, _ = s.Message(ctx, "m1"); destStatuses(m.MessageRow) != "ehr=delivered lis=routed" {
			t.Fatalf("after route: destinations %s", destStatuses(m.MessageRow))
		}
		// lis answers AR: the delivery, then its dead letter.
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeDeadLettered, "AR", 1, at.Add(time.Second)),
			p.DeadLetter(src("dlq.egress", 5), &canonical.DeadLetter{MessageID: "m1", ControlID: "C1", Stage: "egress", Destination: "lis",
				ErrorClass: canonical.ErrorPermanent, Attempts: 1, LastFailedAt: at.Add(time.Second)}))
		m, _ = s.Message(ctx, "m1")
		if destStatuses(m.MessageRow) != "ehr=delivered lis=rejected" || m.Status != StatusPartiallyDelivered {
			t.Fatalf("after the AR: status %s, destinations %s", m.Status, destStatuses(m.MessageRow))
		}
		// A late copy of the first cycle's delivery changes nothing.
		apply(t, s, delivery(p, "m1", "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Second)))
		if m, _ = s.Message(ctx, "m1"); destStatuses(m.MessageRow) != "ehr=delivered lis=rejected" {
			t.Fatalf("after a stale delivery: destinations %s", destStatuses(m.MessageRow))
		}
	})
}

func TestApplyRefusesBadUpdates(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		good := Update{MessageID: "ok", At: t0, Status: StatusReceived}
		for _, tt := range []struct {
			u    Update
			want string
		}{
			{Update{Status: StatusReceived}, "no message ID"},
			{Update{MessageID: "m", Status: "Delivered"}, `unknown status "Delivered"`},
			{Update{MessageID: "m", Destination: &DestinationUpdate{Status: StatusDelivered}}, "destination update without a destination"},
			{Update{MessageID: "m", Destination: &DestinationUpdate{Destination: "d", Status: StatusPartiallyDelivered}}, "unknown destination status"},
			{Update{DeadLetter: &DeadLetter{Stage: "parse"}}, "dead letter without ID"},
		} {
			err := s.Apply(ctx, []Update{good, tt.u})
			if err == nil || !strings.Contains(err.Error(), "update 1: "+tt.want) {
				t.Errorf("Apply(%+v) = %v, want %q", tt.u, err, tt.want)
			}
		}
		if _, err := s.Message(ctx, "ok"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a refused batch stored part of itself: %v", err)
		}
	})
}

func TestSearch(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		const n = 25
		var us []Update
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("m%02d", i)
			us = append(us, journey(p, id, fmt.Sprintf("C%02d", i), t0.Add(time.Duration(i/2)*time.Minute))...)
			if i%5 == 0 {
				us = append(us, delivery(p, id, "lis", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Hour))...)
				us = append(us, delivery(p, id, "ehr", canonical.OutcomeDelivered, "AA", 1, t0.Add(time.Hour))...)
			}
		}
		// Another interface and facility, and a type of its own.
		h := canonical.Header{SendingFacility: "ADTFAC", MessageCode: "ADT", TriggerEvent: "A08", ControlID: "X1"}
		us = append(us, p.Raw(src("raw", 9), &canonical.Raw{MessageID: "adt1", Interface: "adt", ReceivedAt: t0, Header: h})...)
		apply(t, s, us)

		ids := func(rows []MessageRow) string {
			var out []string
			for _, r := range rows {
				out = append(out, r.MessageID)
			}
			return strings.Join(out, ",")
		}
		// Paging walks every lab message exactly once, newest first, with
		// ties on received_at broken by message ID.
		var all []MessageRow
		cursor := ""
		pages := 0
		for {
			rows, next, err := s.Search(ctx, Query{Interface: "lab", Limit: 7, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, rows...)
			pages++
			if next == "" {
				break
			}
			cursor = next
		}
		if len(all) != n || pages != 4 {
			t.Fatalf("%d rows in %d pages, want %d in 4", len(all), pages, n)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.ReceivedAt.Before(b.ReceivedAt) || (a.ReceivedAt.Equal(b.ReceivedAt) && a.MessageID <= b.MessageID) {
				t.Fatalf("order broken at %d: %s then %s", i, a.MessageID, b.MessageID)
			}
		}
		if len(all[0].Destinations) != 2 {
			t.Fatalf("search rows carry their destinations: %+v", all[0])
		}

		for _, tt := range []struct {
			name string
			q    Query
			want string
		}{
			{"control ID", Query{ControlID: "C07"}, "m07"},
			{"patient with authority", Query{PatientKey: PatientKey(secret, "hosp", "MRN-C03")}, "m03"},
			{"patient without authority", Query{PatientKey: PatientKey(secret, "", "MRN-C03")}, "m03"},
			{"patient under another secret", Query{PatientKey: PatientKey([]byte("other"), "HOSP", "MRN-C03")}, ""},
			{"facility", Query{SendingFacility: "ADTFAC"}, "adt1"},
			{"type", Query{MessageType: "ADT^A08"}, "adt1"},
			{"status", Query{Status: StatusDelivered}, "m20,m15,m10,m05,m00"},
			{"status and interface", Query{Status: StatusReceived, Interface: "adt"}, "adt1"},
			{"time range", Query{Interface: "lab", Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, "m07,m06,m05,m04"},
		} {
			rows, next, err := s.Search(ctx, tt.q)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got := ids(rows); got != tt.want || next != "" {
				t.Errorf("%s: got %q (next %q), want %q", tt.name, got, next, tt.want)
			}
		}

		if _, _, err := s.Search(ctx, Query{Cursor: "not a cursor"}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("bad cursor: %v", err)
		}
		if _, _, err := s.Search(ctx, Query{Status: "done"}); err == nil || !strings.Contains(err.Error(), `"done"`) {
			t.Errorf("unknown status: %v", err)
		}
		rows, _, err := s.Search(ctx, Query{Limit: MaxLimit * 10})
		if err != nil || len(rows) != n+1 {
			t.Errorf("a limit above the cap: %d rows, %v", len(rows), err)
		}
	})
}

func TestLimitOf(t *testing.T) {
	for in, want := range map[int]int{-1: DefaultLimit, 0: DefaultLimit, 10: 10, MaxLimit: MaxLimit, MaxLimit + 1: MaxLimit} {
		if got := limitOf(in); got != want {
			t.Errorf("limitOf(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestDeadLetters(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		p := Projector{Secret: secret}
		var us []Update
		for i := 0; i < 5; i++ {
			us = append(us, p.DeadLetter(Source{Topic: "dlq.egress", Partition: 1, Offset: int64(i)}, &canonical.DeadLetter{
				MessageID: fmt.Sprintf("m%d", i), Stage: "egress", Destination: "lis", ErrorClass: canonical.ErrorPermanent,
				LastFailedAt: t0.Add(time.Duration(i) * time.Second)})...)
		}
		us = append(us, p.DeadLetter(Source{Topic: "dlq.parse", Partition: 0, Offset: 3}, &canonical.DeadLetter{
			Stage: "parse", ErrorClass: canonical.ErrorPermanent, LastFailedAt: t0})...)
		apply(t, s, us, us)
		var got []string
		cursor := ""
		for {
			rows, next, err := s.DeadLetters(ctx, DeadLetterFilter{Stage: "egress"}, Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				got = append(got, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if strings.Join(got, ",") != "egress:1:4,egress:1:3,egress:1:2,egress:1:1,egress:1:0" {
			t.Fatalf("egress dead letters %v", got)
		}
		rows, _, err := s.DeadLetters(ctx, DeadLetterFilter{}, Page{})
		if err != nil || len(rows) != 6 {
			t.Fatalf("all stages: %d rows, %v", len(rows), err)
		}
		if _, _, err := s.DeadLetters(ctx, DeadLetterFilter{}, Page{Cursor: "%%"}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}

// phiCorpus is a patient with a known name, birth date, MRN and national
// ID, and updates projected from records that carry them everywhere a
// record can: payloads, the patient, the ACK error text, the dead letter's
// key and value.
var phiCorpus = []string{"ZZTOPFAMILY", "QQGIVENNAME", "MRN778899", "NAT445566", "19610523"}

func phiUpdates(p Projector) []Update {
	payload := []byte("MSH|^~\\&|LAB|LABFAC|||20260301||ORU^R01|CTRL1|P|2.5\rPID|||MRN778899^^^HOSP~NAT445566^^^NAT||ZZTOPFAMILY^QQGIVENNAME||19610523\r")
	patient := &canonical.Patient{FamilyName: "ZZTOPFAMILY", GivenName: "QQGIVENNAME", BirthDate: "1961-05-23",
		Identifiers: []canonical.Identifier{{Value: "MRN778899", Authority: "HOSP"}, {Value: "NAT445566", Authority: "NAT"}}}
	var us []Update
	us = append(us, p.Raw(src("raw", 1), &canonical.Raw{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr, Payload: payload})...)
	us = append(us, p.Parsed(src("parsed", 1), &canonical.Parsed{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr, Payload: payload})...)
	us = append(us, p.Transformed(src("transformed", 1), &canonical.Transformed{MessageID: "m1", Interface: "lab", ReceivedAt: t0, Header: hdr,
		Message: payload, Patient: patient})...)
	us = append(us, p.Decision(src("decisions", 1), &canonical.Decision{MessageID: "m1", DecidedAt: t0, Outcome: canonical.OutcomeRouted,
		Destinations: []canonical.DestinationDecision{{Destination: "lis", Outcome: canonical.OutcomeRouted}}})...)
	us = append(us, p.Delivery(src("delivery", 1), &canonical.Delivery{MessageID: "m1", Destination: "lis", Attempt: 1,
		Outcome: canonical.OutcomeDeadLettered, AckCode: "AR", Error: "unknown patient ZZTOPFAMILY MRN778899", At: t0})...)
	us = append(us, p.DeadLetter(src("dlq.egress", 1), &canonical.DeadLetter{MessageID: "m1", Stage: "egress", Destination: "lis",
		ErrorClass: canonical.ErrorPermanent, Reason: "AR", Value: payload, Key: []byte("MRN778899"), LastFailedAt: t0})...)
	return us
}

// checkNoPHI fails if b holds any of the corpus, and if it does not hold
// values that were stored (then the check read the wrong bytes and its
// silence proves nothing).
func checkNoPHI(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, v := range phiCorpus {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("%s holds %q", what, v)
		}
	}
	for _, v := range []string{"CTRL1", "LABFAC", PatientKey(secret, "HOSP", "MRN778899")} {
		if !bytes.Contains(b, []byte(v)) {
			t.Errorf("%s does not hold %q: the PHI check reads the wrong bytes", what, v)
		}
	}
}

// TestNoPHIInTheIndex applies the corpus and reads every table back as
// text (a dump, on both backends), and on SQLite also greps the database
// files' bytes.
func TestNoPHIInTheIndex(t *testing.T) {
	each(t, func(t *testing.T, s *Store, path string) {
		ctx := context.Background()
		apply(t, s, phiUpdates(Projector{Secret: secret}))
		rows, _, err := s.Search(ctx, Query{PatientKey: PatientKey(secret, "", "MRN778899")})
		if err != nil || len(rows) != 1 {
			t.Fatalf("the patient is not findable by key: %d rows, %v", len(rows), err)
		}
		checkNoPHI(t, "the tables", dumpTables(t, s))
		if path == "" {
			return
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(path + "*")
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		checkNoPHI(t, "the SQLite files", all)
	})
}

// dumpTables is every row of every index table as text.
func dumpTables(t *testing.T, s *Store) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, table := range []string{"messages", "message_patients", "destinations", "record_pointers", "dead_letters", "dead_letter_replays", "audit_events", "index_state", "schema_migrations"} {
		rows, err := s.db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			for i := range vals {
				vals[i] = new(any)
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(&b, "%v|", *(v.(*any)))
			}
			b.WriteString("\n")
		}
		if err := closeRows(rows); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestConcurrentApply has two writers report the two destinations of the
// same messages at once: lis delivered, ehr dead-lettered, so each message
// must end partially_delivered. Apply reads a message's destinations to
// derive its overall status, so without the write lock (IMMEDIATE on
// SQLite, advisory locks on PostgreSQL) a writer would derive it from a
// stale read and store delivered or dead_lettered. The messages either
// exist already or are created by the two writers racing (a rebuild can
// read delivery before raw), which row locks alone could not serialize.
func TestConcurrentApply(t *testing.T) {
	for _, existing := range []bool{true, false} {
		t.Run(fmt.Sprintf("existing=%v", existing), func(t *testing.T) {
			each(t, func(t *testing.T, s *Store, _ string) {
				ctx := context.Background()
				p := Projector{Secret: secret}
				const n = 40
				if existing {
					var us []Update
					for i := 0; i < n; i++ {
						us = append(us, journey(p, fmt.Sprintf("m%02d", i), fmt.Sprintf("C%02d", i), t0)...)
					}
					apply(t, s, us)
				}
				errs := make(chan error, 2)
				for dest, outcome := range map[string]string{"lis": canonical.OutcomeDelivered, "ehr": canonical.OutcomeDeadLettered} {
					go func() {
						for i := 0; i < n; i += 4 {
							var batch []Update
							for j := i; j < i+4; j++ {
								batch = append(batch, delivery(p, fmt.Sprintf("m%02d", j), dest, outcome, "", 1, t0.Add(time.Second))...)
							}
							if err := s.Apply(ctx, batch); err != nil {
								errs <- err
								return
							}
						}
						errs <- nil
					}()
				}
				for range 2 {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
				rows, _, err := s.Search(ctx, Query{Status: StatusPartiallyDelivered, Limit: MaxLimit})
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != n {
					t.Fatalf("%d of %d messages partially_delivered: a writer derived its status from a stale read", len(rows), n)
				}
			})
		})
	}
}

// TestSQLitePragmas checks that the DSN's pragmas reach the connections
// (a typo in a pragma name is silently ignored by SQLite).
func TestSQLitePragmas(t *testing.T) {
	s := openStore(t, DriverSQLite, filepath.Join(t.TempDir(), "index.db"))
	for pragma, want := range map[string]string{"journal_mode": "wal", "busy_timeout": "10000", "synchronous": "1", "wal_autocheckpoint": "10000"} {
		var got string
		if err := s.db.QueryRow(`PRAGMA ` + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

// TestOpenPostgresErrorsHideThePassword: Open's errors end up in logs, and
// a DSN may carry the database password.
func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"postgres://idx:s3cretpw@127.0.0.1:1/index?sslmode=disable&connect_timeout=2",
		"postgres://idx:s3cretpw@[::1/index",
		"host=127.0.0.1 port=1 user=idx password=s3cretpw sslmode=disable connect_timeout=2",
	} {
		s, err := Open(ctx, DriverPostgres, dsn)
		if err == nil {
			_ = s.Close()
			t.Fatalf("Open(%q) connected to nothing", dsn)
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
