package index

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// rowsOf counts a message's rows in each table keyed by message ID.
func rowsOf(t *testing.T, s *Store, id string) string {
	t.Helper()
	var out string
	for _, table := range partitionedTables {
		var n int
		if err := s.db.QueryRow(s.d.rebind(`SELECT COUNT(*) FROM `+table+` WHERE message_id = ?`), id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s=%d ", table, n)
	}
	return out
}

func deadLetter(id string, at time.Time) Update {
	return Update{DeadLetter: &DeadLetter{ID: id, Stage: "egress", Destination: "lis", Reason: "AR", FailedAt: at}}
}

// TestMaintainRetention runs retention on both backends: what is older
// than the retention goes with every row of it, what is newer stays
// whole. The cases are chosen so both backends agree (PostgreSQL drops
// whole days, SQLite deletes rows; see TestPartitions for the days).
func TestMaintainRetention(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		const retention = 48 * time.Hour // cutoff 03-08 12:00
		// Partitions for the older days, as a Maintain back then made them.
		if err := s.Maintain(ctx, now.Add(-5*day), 0); err != nil {
			t.Fatal(err)
		}
		p := Projector{Secret: secret}
		old, kept := testULID(now.Add(-5*day+time.Hour), 1), testULID(now.Add(-2*day+time.Hour), 2)
		var us [][]Update
		for id, at := range map[string]time.Time{old: now.Add(-5*day + time.Hour), kept: now.Add(-2*day + time.Hour),
			"legacy-old": now.Add(-5 * day), "legacy-new": now.Add(-time.Hour)} {
			us = append(us, journey(p, id, "C-"+id, at),
				delivery(p, id, "lis", canonical.OutcomeDelivered, "AA", 1, at.Add(time.Second)),
				delivery(p, id, "ehr", canonical.OutcomeDeadLettered, "AR", 1, at.Add(time.Second)))
		}
		// Messages the index saw no raw record of: they age by their
		// last update.
		us = append(us, delivery(p, "orphan-old", "lis", canonical.OutcomeDelivered, "AA", 1, now.Add(-4*day)),
			delivery(p, "orphan-new", "lis", canonical.OutcomeDelivered, "AA", 1, now.Add(-time.Hour)),
			[]Update{deadLetter("egress:0:1", now.Add(-3*day)), deadLetter("egress:0:2", now.Add(-time.Hour))})
		apply(t, s, us...)

		before := map[string]string{}
		all := []string{old, kept, "legacy-old", "legacy-new", "orphan-old", "orphan-new"}
		for _, id := range all {
			before[id] = rowsOf(t, s, id)
		}
		// Retention 0 keeps everything, however old.
		if err := s.Maintain(ctx, now.Add(1000*day), 0); err != nil {
			t.Fatal(err)
		}
		for _, id := range all {
			if got := rowsOf(t, s, id); got != before[id] {
				t.Fatalf("retention 0 changed %s: %s, was %s", id, got, before[id])
			}
		}
		for i := 0; i < 2; i++ { // the second run finds nothing more to do
			if err := s.Maintain(ctx, now, retention); err != nil {
				t.Fatalf("maintain (%d): %v", i, err)
			}
		}
		gone := "messages=0 message_patients=0 destinations=0 record_pointers=0 "
		for _, id := range []string{old, "legacy-old", "orphan-old"} {
			if got := rowsOf(t, s, id); got != gone {
				t.Errorf("expired %s: %s, want no rows", id, got)
			}
		}
		for _, id := range []string{kept, "legacy-new", "orphan-new"} {
			if got := rowsOf(t, s, id); got != before[id] {
				t.Errorf("kept %s: %s, want %s", id, got, before[id])
			}
		}
		m, err := s.Message(ctx, kept)
		if err != nil || m.Status != "partially_delivered" || len(m.Pointers) == 0 {
			t.Fatalf("kept message after retention: %+v, %v", m, err)
		}
		dls, _, err := s.DeadLetters(ctx, DeadLetterFilter{}, Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range dls {
			ids = append(ids, d.ID)
		}
		if fmt.Sprint(ids) != "[egress:0:2]" {
			t.Fatalf("dead letters after retention: %v, want only the newer", ids)
		}
		if err := s.Maintain(ctx, now, -time.Hour); err == nil {
			t.Fatal("negative retention accepted")
		}
	})
}

// TestPurgeInBatches deletes more expired messages than one batch holds.
func TestPurgeInBatches(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := Projector{Secret: secret}
		var us [][]Update
		for i := 0; i < 7; i++ {
			us = append(us, journey(p, fmt.Sprintf("m-%d", i), "C", now.Add(-time.Duration(i+1)*time.Hour)))
		}
		us = append(us, journey(p, "m-new", "C", now))
		apply(t, s, us...)
		if err := s.purgeMessages(ctx, now, 2); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("messages left: %d (%v), want 1", n, err)
		}
		if _, err := s.Message(ctx, "m-new"); err != nil {
			t.Fatalf("message received at the cutoff: %v, want kept", err)
		}
	})
}

// count runs a COUNT(*) query.
func count(t *testing.T, s *Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(s.d.rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// replaysOf lists the jobs dead_letter_replays holds for a dead letter.
func replaysOf(t *testing.T, s *Store, id string) int {
	t.Helper()
	return count(t, s, `SELECT COUNT(*) FROM dead_letter_replays WHERE dead_letter_id = ?`, id)
}

// TestRetentionDeadLetterReplays: the replays of a dead letter go with
// it, in the same retention run; a dead letter only a discard made (its
// dlq record never read) goes by its discard time; a replay whose dead
// letter the index never had goes by its own time; the rest stays.
func TestRetentionDeadLetterReplays(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		const retention = 48 * time.Hour
		old, recent := now.Add(-3*day), now.Add(-time.Hour)
		replay := func(dl, job string, at time.Time) Update {
			return Update{At: at, Replay: &DeadLetterReplay{DeadLetterID: dl, JobID: job, At: at}}
		}
		discard := func(dl string, at time.Time) Update {
			return Update{At: at, Discard: &Discard{DeadLetterID: dl, Actor: "ops", Reason: "test", At: at}}
		}
		apply(t, s, []Update{
			// Expired, replayed twice (once after the cutoff): all three rows go.
			deadLetter("egress:0:1", old), replay("egress:0:1", "job-a", old.Add(time.Hour)), replay("egress:0:1", "job-b", recent),
			// Kept, with its replay.
			deadLetter("egress:0:2", recent), replay("egress:0:2", "job-b", recent),
			// Only discards: an old one goes, a recent one stays.
			discard("egress:0:3", old), discard("egress:0:4", recent),
			// Replays of dead letters the index never had: old goes, recent stays.
			replay("egress:0:5", "job-a", old), replay("egress:0:6", "job-b", recent),
		})
		if err := s.Maintain(ctx, now, retention); err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int{ // dead letter rows, replay rows
			"egress:0:1": {0, 0}, "egress:0:2": {1, 1}, "egress:0:3": {0, 0}, "egress:0:4": {1, 0},
			"egress:0:5": {0, 0}, "egress:0:6": {0, 1},
		}
		for id, w := range want {
			got := [2]int{count(t, s, `SELECT COUNT(*) FROM dead_letters WHERE id = ?`, id), replaysOf(t, s, id)}
			if got != w {
				t.Errorf("%s after retention: %d dead letters, %d replays; want %d, %d", id, got[0], got[1], w[0], w[1])
			}
		}
		// The kept dead letter still lists its replay.
		d, err := s.DeadLetter(ctx, "egress:0:2")
		if err != nil || len(d.Replayed) != 1 {
			t.Fatalf("kept dead letter: %+v, %v", d, err)
		}
	})
}

// TestPurgeDeadLettersInBatches deletes more expired dead letters (with
// replays) than one batch holds.
func TestPurgeDeadLettersInBatches(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		var us []Update
		for i := 0; i < 7; i++ {
			id := fmt.Sprintf("egress:0:%d", i)
			at := now.Add(-time.Duration(i+1) * time.Hour)
			us = append(us, deadLetter(id, at), Update{At: at, Replay: &DeadLetterReplay{DeadLetterID: id, JobID: "j", At: at}},
				Update{At: at, Replay: &DeadLetterReplay{DeadLetterID: "gone:0:" + fmt.Sprint(i), JobID: "j", At: at}})
		}
		us = append(us, deadLetter("egress:1:0", now))
		apply(t, s, us)
		if err := s.purgeDeadLetters(ctx, now, 2); err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM dead_letters`); n != 1 {
			t.Errorf("dead letters left: %d, want 1 (the one failed at the cutoff)", n)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM dead_letter_replays`); n != 0 {
			t.Errorf("replays left: %d, want 0", n)
		}
	})
}

// TestPurgeAudit: audit events older than the audit retention go, in
// batches, whatever the messages' retention; 0 keeps them all; a
// negative retention is refused.
func TestPurgeAudit(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		var us []Update
		// retentionBatch+5 old events, so the purge takes two batches.
		for i := 0; i < retentionBatch+5; i++ {
			at := now.Add(-400*day - time.Duration(i)*time.Second)
			us = append(us, Update{At: at, Audit: &AuditRow{EventID: fmt.Sprintf("old-%04d", i), At: at, Actor: "ana", Action: "message.read"}})
		}
		us = append(us, Update{At: now.Add(-364 * day), Audit: &AuditRow{EventID: "kept", At: now.Add(-364 * day), Actor: "ana", Action: "replay.start"}})
		apply(t, s, us)
		total := count(t, s, `SELECT COUNT(*) FROM audit_events`)
		// Maintain (the messages' retention) leaves the audit trail alone.
		if err := s.Maintain(ctx, now, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.PurgeAudit(ctx, now, 0); err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, `SELECT COUNT(*) FROM audit_events`); n != total {
			t.Fatalf("audit events after Maintain and retention 0: %d, want all %d", n, total)
		}
		if err := s.PurgeAudit(ctx, now, 365*day); err != nil {
			t.Fatal(err)
		}
		evs, _, err := s.Audit(ctx, AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].EventID != "kept" {
			t.Fatalf("audit events after retention: %d (%+v), want only the one within it", len(evs), evs)
		}
		if err := s.PurgeAudit(ctx, now, -time.Hour); err == nil {
			t.Fatal("negative audit retention accepted")
		}
	})
}
