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
