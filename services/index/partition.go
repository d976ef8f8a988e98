package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// On PostgreSQL the tables keyed by message ID are range-partitioned by
// message_id, one partition a day (see DESIGN.md, "Retention and
// partitions"). Message IDs are ULIDs, whose first 10 characters are the
// millisecond of ingress in Crockford base32, so they sort by time and a
// day's messages, and the <ulid>-<n> children split from them, lie between
// the ULIDs of two midnights. Retention then drops a day's partitions
// whole instead of deleting its rows one by one.

// partitionedTables are the tables 0001 marks partitionMarker, in the
// order retention drops their partitions: messages first, because every
// search starts from messages, so a message never shows without the
// destinations of it that are about to go.
var partitionedTables = []string{"messages", "message_patients", "destinations", "record_pointers"}

// partitionsAhead is how many days after today Maintain creates
// partitions for: rows of a day without its partition land in the DEFAULT
// partition, and a day partition can no longer be created once the
// default holds rows of that day, so they must exist before the day
// starts. Three days leave room for a Maintain that fails for two.
const partitionsAhead = 3

// ddlLockTimeout bounds how long a partition's CREATE or DROP waits for
// the parent table's lock: both take an exclusive lock that queues every
// later Apply and search behind them, so waiting long for a slow reader
// would stall the index. A timed-out step is retried by the next Maintain.
const ddlLockTimeout = "5s"

const day = 24 * time.Hour

// crockford is the ULID alphabet (Crockford's base32). It is in ASCII
// order, so ULIDs compare as strings the way their times compare.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulidAt is the smallest ULID of t's millisecond: the 48-bit Unix
// millisecond in 10 characters, then 16 zeros of randomness. Every ULID
// made at or after t compares at or above it.
func ulidAt(t time.Time) string {
	ms := uint64(t.UnixMilli())
	var b [26]byte
	for i := 0; i < 10; i++ {
		b[i] = crockford[(ms>>(45-5*i))&31]
	}
	for i := 10; i < 26; i++ {
		b[i] = '0'
	}
	return string(b[:])
}

// dayOf is the UTC midnight starting t's day.
func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// partitionName is the name of table's partition for the day starting at
// midnight d: messages_p20260301.
func partitionName(table string, d time.Time) string {
	return table + "_p" + d.Format("20060102")
}

// defaultPartition is the name of table's DEFAULT partition.
func defaultPartition(table string) string { return table + "_default" }

// dayPartitions lists table's daily partitions (by the names
// partitionName gives; partitions named otherwise, e.g. an operator's, are
// left alone) with the day each covers.
func (s *Store) dayPartitions(ctx context.Context, table string) (map[string]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = to_regclass(?)`), table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	out := map[string]time.Time{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list partitions of %s: %w", table, err)
		}
		suffix, ok := strings.CutPrefix(name, table+"_p")
		if !ok {
			continue
		}
		d, err := time.Parse("20060102", suffix)
		if err != nil {
			continue
		}
		out[name] = d
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	return out, nil
}

// ddl runs one partition statement in a transaction of its own with
// ddlLockTimeout.
func (s *Store) ddl(ctx context.Context, stmt string) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `SET LOCAL lock_timeout = '`+ddlLockTimeout+`'`); err != nil {
		return err
	}
	if _, err = tx.ExecContext(ctx, stmt); err != nil {
		return err
	}
	return tx.Commit()
}

// ensurePartitions creates the daily partitions of every partitioned
// table from the first day retention keeps (today when it keeps
// everything) to partitionsAhead days after today. Creating the past days
// too matters for a rebuild: it replays the topics' whole retention into
// an empty index, and those days should land in partitions that retention
// can drop, not in the default. A day the DEFAULT partition already holds
// rows of is skipped (PostgreSQL refuses the partition then): its rows
// stay in the default, and purgeMessages deletes them by received_at.
func (s *Store) ensurePartitions(ctx context.Context, now time.Time, retention time.Duration) error {
	first, last := dayOf(now), dayOf(now).AddDate(0, 0, partitionsAhead)
	if retention > 0 {
		first = dayOf(now.Add(-retention))
	}
	var errs []error
	for _, table := range partitionedTables {
		have, err := s.dayPartitions(ctx, table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
			name := partitionName(table, d)
			if _, ok := have[name]; ok {
				continue
			}
			lo, hi := ulidAt(d), ulidAt(d.AddDate(0, 0, 1))
			// Checked first through the default's primary key, because
			// PostgreSQL checks by scanning the whole default partition
			// under the parent's lock, on every failed attempt.
			var one int
			err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT 1 FROM `+defaultPartition(table)+
				` WHERE message_id >= ? AND message_id < ? LIMIT 1`), lo, hi).Scan(&one)
			if err == nil {
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				errs = append(errs, fmt.Errorf("create partition %s: check default partition: %w", name, err))
				continue
			}
			err = s.ddl(ctx, `CREATE TABLE IF NOT EXISTS `+name+` PARTITION OF `+table+
				` FOR VALUES FROM ('`+lo+`') TO ('`+hi+`')`)
			var pg *pgconn.PgError
			if errors.As(err, &pg) && pg.Code == "23514" {
				// A row of that day reached the default between the check
				// and the CREATE: same as above, the day stays there.
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("create partition %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dropPartitions drops every daily partition whose whole day ended at or
// before cutoff: all its messages' IDs, so their ingress times, are
// older. A day straddling the cutoff stays until it is wholly older, so
// PostgreSQL keeps up to a day more than the retention.
func (s *Store) dropPartitions(ctx context.Context, cutoff time.Time) error {
	var errs []error
	for _, table := range partitionedTables {
		have, err := s.dayPartitions(ctx, table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for name, d := range have {
			if d.AddDate(0, 0, 1).After(cutoff) {
				continue
			}
			if err := s.ddl(ctx, `DROP TABLE IF EXISTS `+name); err != nil {
				errs = append(errs, fmt.Errorf("drop partition %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
