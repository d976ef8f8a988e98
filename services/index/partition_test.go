package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestULIDAt(t *testing.T) {
	// The ULID specification's example: 1469918176385 ms is 01ARYZ6S41.
	if got, want := ulidAt(time.UnixMilli(1469918176385)), "01ARYZ6S41"+strings.Repeat("0", 16); got != want {
		t.Fatalf("ulidAt = %s, want %s", got, want)
	}
	// Strings sort as times do, across character boundaries and days.
	times := []time.Time{
		time.Unix(0, 0), time.UnixMilli(31), time.UnixMilli(32), time.UnixMilli(1 << 40),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 23, 59, 59, 999e6, time.UTC),
		time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.Date(10889, 8, 1, 0, 0, 0, 0, time.UTC),
	}
	var ids []string
	for _, tm := range times {
		id := ulidAt(tm)
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("ulidAt(%s) = %q: not 26 Crockford characters", tm, id)
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ULIDs of increasing times do not sort: %v", ids)
	}
}

func TestExpand(t *testing.T) {
	in := []string{
		"CREATE TABLE IF NOT EXISTS messages (\n  message_id TEXT NOT NULL PRIMARY KEY\n) /*partitioned*/;",
		"CREATE INDEX IF NOT EXISTS messages_x ON messages (message_id);",
	}
	sqlite, err := dialects[DriverSQLite].expand(in)
	if err != nil || !slices.Equal(sqlite, in) {
		t.Fatalf("sqlite expand = %q, %v; want the statements unchanged", sqlite, err)
	}
	pg, err := dialects[DriverPostgres].expand(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE TABLE IF NOT EXISTS messages (\n  message_id TEXT NOT NULL PRIMARY KEY\n) PARTITION BY RANGE (message_id);",
		"CREATE TABLE IF NOT EXISTS messages_default PARTITION OF messages DEFAULT",
		in[1],
	}
	if !slices.Equal(pg, want) {
		t.Fatalf("postgres expand =\n%q\nwant\n%q", pg, want)
	}
	if _, err := dialects[DriverPostgres].expand([]string{"CREATE INDEX a ON b (c) /*partitioned*/;"}); err == nil {
		t.Fatal("marker on a CREATE INDEX accepted")
	}
}

// TestMigrationsMarkThePartitionedTables keeps partitionedTables (what
// Maintain creates and drops partitions of) and the migrations' markers
// the same set.
func TestMigrationsMarkThePartitionedTables(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var marked []string
	for _, m := range ms {
		for _, st := range statements(m.sql) {
			if strings.Contains(st, partitionMarker) {
				marked = append(marked, createTable.FindStringSubmatch(st)[1])
			}
		}
	}
	if !slices.Equal(marked, partitionedTables) {
		t.Fatalf("tables marked %s: %v; partitionedTables: %v", partitionMarker, marked, partitionedTables)
	}
}

// testULID is a ULID of at's millisecond with n as its randomness.
func testULID(at time.Time, n int) string {
	return ulidAt(at)[:10] + fmt.Sprintf("%016d", n)
}

// partitionOf is the table (partition) of table holding message id's row.
func partitionOf(t *testing.T, s *Store, table, id string) string {
	t.Helper()
	var name string
	if err := s.db.QueryRow(`SELECT tableoid::regclass::text FROM `+table+` WHERE message_id = $1 LIMIT 1`, id).Scan(&name); err != nil {
		t.Fatalf("partition of %s in %s: %v", id, table, err)
	}
	return name
}

func days(t *testing.T, s *Store, table string) []string {
	t.Helper()
	have, err := s.dayPartitions(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range have {
		out = append(out, d.Format("01-02"))
	}
	slices.Sort(out)
	return out
}

func postgresOnly(t *testing.T, f func(t *testing.T, s *Store)) {
	for _, b := range backends() {
		if b.name == DriverPostgres {
			t.Run(b.name, func(t *testing.T) {
				s, _ := b.open(t)
				f(t, s)
			})
		}
	}
}

func TestPartitions(t *testing.T) {
	postgresOnly(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		// Freshly migrated: only the default partitions.
		for _, table := range partitionedTables {
			if got := days(t, s, table); len(got) != 0 {
				t.Fatalf("%s has partitions before Maintain: %v", table, got)
			}
		}
		if err := s.Maintain(ctx, now, 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		want := []string{"03-08", "03-09", "03-10", "03-11", "03-12", "03-13"}
		for _, table := range partitionedTables {
			if got := days(t, s, table); !slices.Equal(got, want) {
				t.Fatalf("%s partitions %v, want %v (retention back to the cutoff's day, %d ahead)", table, got, want, partitionsAhead)
			}
		}
		p := Projector{Secret: secret}
		id := testULID(now, 1)
		apply(t, s, journey(p, id, "C1", now), journey(p, "not-a-ulid", "C2", now),
			// A child split from a batch sits beside its parent.
			journey(p, id+"-2", "C3", now))
		for _, table := range partitionedTables {
			if got := partitionOf(t, s, table, id); got != partitionName(table, dayOf(now)) {
				t.Errorf("%s row of %s in %s, want %s", table, id, got, partitionName(table, dayOf(now)))
			}
			if got := partitionOf(t, s, table, id+"-2"); got != partitionName(table, dayOf(now)) {
				t.Errorf("%s row of %s-2 in %s, want its parent's day", table, id, got)
			}
			if got := partitionOf(t, s, table, "not-a-ulid"); got != defaultPartition(table) {
				t.Errorf("%s row of a non-ULID ID in %s, want %s", table, got, defaultPartition(table))
			}
		}
		// Two days on, 03-08 and 03-09 are wholly older than 48h.
		if err := s.Maintain(ctx, now.Add(2*day), 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		want = []string{"03-10", "03-11", "03-12", "03-13", "03-14", "03-15"}
		for _, table := range partitionedTables {
			if got := days(t, s, table); !slices.Equal(got, want) {
				t.Fatalf("%s partitions after two days %v, want %v", table, got, want)
			}
		}
		if _, err := s.Message(ctx, id); err != nil {
			t.Fatalf("message of a kept day: %v", err)
		}
	})
}

// TestPartitionSkippedWhileTheDefaultHoldsItsDay: rows of a day that had
// no partition yet went to the default; PostgreSQL then refuses that day's
// partition, so Maintain leaves the day in the default (no error, no
// loss) and retention deletes its rows from there.
func TestPartitionSkippedWhileTheDefaultHoldsItsDay(t *testing.T) {
	postgresOnly(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := Projector{Secret: secret}
		id := testULID(now, 7)
		apply(t, s, journey(p, id, "C1", now))
		if err := s.Maintain(ctx, now, 0); err != nil {
			t.Fatal(err)
		}
		if got, want := days(t, s, "messages"), []string{"03-11", "03-12", "03-13"}; !slices.Equal(got, want) {
			t.Fatalf("messages partitions %v, want %v (03-10 is in the default)", got, want)
		}
		if got := partitionOf(t, s, "messages", id); got != "messages_default" {
			t.Fatalf("row in %s", got)
		}
		if err := s.Maintain(ctx, now.Add(3*day), 48*time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Message(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired message in the default partition: %v, want it deleted", err)
		}
	})
}
