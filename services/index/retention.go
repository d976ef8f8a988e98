package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// retentionBatch is how many messages one retention transaction deletes:
// enough that a day's worth goes in few transactions, few enough that
// each holds SQLite's write lock (and Apply behind it) for only tens of
// milliseconds.
const retentionBatch = 1000

// Maintain is the index's periodic upkeep; the consumer calls it at start,
// before its first Apply, and then periodically (hourly is plenty). now is
// the current time, retention the topics' retention (Config.Retention; 0
// keeps everything).
//
// On PostgreSQL it creates the daily partitions of the days retention
// keeps and of the next partitionsAhead days, drops the partitions whose
// whole day is older than retention, and deletes the old rows the DEFAULT
// partition holds (IDs that are not ULIDs). On SQLite it deletes the rows
// of messages received before now-retention. On both it deletes dead
// letters that failed before then (their dlq records are gone from Kafka
// too) with the replays that re-sent them. Deletes go in batches of
// retentionBatch messages or dead letters, each its own transaction, so
// Apply keeps running between them. Audit events have a retention of
// their own: PurgeAudit.
//
// A step that fails does not stop the others; the errors are joined, and
// the next Maintain retries what is left.
func (s *Store) Maintain(ctx context.Context, now time.Time, retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("index maintenance: retention %s: must not be negative", retention)
	}
	var errs []error
	if s.d.partitioned {
		errs = append(errs, s.ensurePartitions(ctx, now, retention))
	}
	if retention > 0 {
		cutoff := now.Add(-retention)
		if s.d.partitioned {
			errs = append(errs, s.dropPartitions(ctx, cutoff))
		}
		errs = append(errs, s.purgeMessages(ctx, cutoff, retentionBatch))
		errs = append(errs, s.purgeDeadLetters(ctx, cutoff, retentionBatch))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("index maintenance: %w", err)
	}
	return nil
}

// expired selects messages received before the cutoff. A message the
// index never saw the raw record of (received_at 0: only later records,
// e.g. a rebuild that found raw already expired) goes by its last update
// instead, so it cannot stay forever.
const expired = `received_at < ? AND (received_at <> 0 OR updated_at < ?)`

// purgeMessages deletes every row of the messages that expired, batch
// messages a transaction, until none is left. On PostgreSQL it reads the
// candidates from the DEFAULT partition only: the daily partitions go
// whole (dropPartitions), and deleting their rows one by one would be the
// work partitioning exists to avoid.
func (s *Store) purgeMessages(ctx context.Context, cutoff time.Time, batch int) error {
	from := "messages"
	if s.d.partitioned {
		from = defaultPartition("messages")
	}
	for {
		n, err := s.purgeBatch(ctx, from, micros(cutoff), batch)
		if err != nil {
			return fmt.Errorf("delete expired messages: %w", err)
		}
		if n < batch {
			return nil
		}
	}
}

// purgeBatch deletes up to batch expired messages with their patient
// keys, destinations and record pointers in one transaction, and says how
// many candidates it found.
func (s *Store) purgeBatch(ctx context.Context, from string, cutoff int64, batch int) (n int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ids, err := queryIDs(ctx, tx, s.d.rebind(`SELECT message_id FROM `+from+` WHERE `+expired+` LIMIT ?`), cutoff, cutoff, batch)
	if err != nil {
		return 0, err
	}
	n = len(ids)
	if n == 0 {
		return 0, tx.Rollback()
	}
	if s.d.lockIDs {
		// Apply merges under these locks (DESIGN.md, "Concurrent
		// writers"); once they are held, read again which candidates are
		// still expired, since a late record may have updated one between
		// the read above and the lock. SQLite needs neither: the
		// transaction began IMMEDIATE, so it has held the write lock
		// since before the read.
		if err := s.lockMessages(ctx, tx, ids); err != nil {
			return 0, err
		}
		ids, err = queryIDs(ctx, tx, s.d.rebind(`SELECT message_id FROM messages WHERE message_id IN (`+placeholders(len(ids))+`) AND `+expired),
			append(anys(ids), cutoff, cutoff)...)
		if err != nil {
			return 0, err
		}
	}
	if len(ids) > 0 {
		in := placeholders(len(ids))
		// Children first, messages last: a reader in between sees either
		// the whole message or, at worst, a message without its rows,
		// never rows without their message.
		for _, table := range []string{"message_patients", "destinations", "record_pointers", "messages"} {
			if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM `+table+` WHERE message_id IN (`+in+`)`), anys(ids)...); err != nil {
				return 0, fmt.Errorf("%s: %w", table, err)
			}
		}
	}
	return n, tx.Commit()
}

// queryIDs reads one column of strings.
func queryIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return nil, err
		}
		out = append(out, id)
	}
	return out, closeRows(rows)
}

// deadLetterExpired selects dead letters whose dlq record is gone from
// Kafka: failed before the cutoff, or, for a row only a discard made (the
// discard was read but its dead letter never was, e.g. a rebuild that
// found the dlq record already expired: failed_at 0), discarded before
// it. A row with neither time is kept.
const deadLetterExpired = `(failed_at > 0 AND failed_at < ?) OR (failed_at = 0 AND discarded_at > 0 AND discarded_at < ?)`

// purgeDeadLetters deletes the expired dead letters with the replays that
// re-sent them, batch dead letters a transaction (dead_letters is not
// partitioned: its IDs are dlq record positions, not ULIDs, and it holds
// few rows), then the replays whose dead letter the index no longer has
// (never indexed, or deleted by a rebuild's run) that are older than the
// cutoff.
func (s *Store) purgeDeadLetters(ctx context.Context, cutoff time.Time, batch int) error {
	c := micros(cutoff)
	for {
		n, err := s.purgeDeadLetterBatch(ctx, c, batch)
		if err != nil {
			return fmt.Errorf("delete expired dead letters: %w", err)
		}
		if n < batch {
			break
		}
	}
	return s.deleteBatches(ctx, "delete orphaned dead-letter replays", `DELETE FROM dead_letter_replays WHERE (dead_letter_id, job_id) IN
 (SELECT r.dead_letter_id, r.job_id FROM dead_letter_replays r WHERE r.at < ?
  AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.id = r.dead_letter_id) LIMIT ?)`, c, batch)
}

// purgeDeadLetterBatch deletes up to batch expired dead letters and their
// replays in one transaction, replays first, so a reader never sees a
// replay without its dead letter, and says how many it found.
func (s *Store) purgeDeadLetterBatch(ctx context.Context, cutoff int64, batch int) (n int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ids, err := queryIDs(ctx, tx, s.d.rebind(`SELECT id FROM dead_letters WHERE `+deadLetterExpired+` LIMIT ?`), cutoff, cutoff, batch)
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, tx.Rollback()
	}
	in := placeholders(len(ids))
	if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM dead_letter_replays WHERE dead_letter_id IN (`+in+`)`), anys(ids)...); err != nil {
		return 0, fmt.Errorf("dead_letter_replays: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM dead_letters WHERE id IN (`+in+`)`), anys(ids)...); err != nil {
		return 0, fmt.Errorf("dead_letters: %w", err)
	}
	return len(ids), tx.Commit()
}

// PurgeAudit deletes the audit events older than now-retention, in
// batches of retentionBatch rows, each its own statement (Apply runs
// between them). retention is Config.AuditRetention, separate from the
// messages' retention because an audit trail is usually kept for longer
// (years, by law or policy); 0 keeps everything. The consumer calls it
// beside Maintain.
func (s *Store) PurgeAudit(ctx context.Context, now time.Time, retention time.Duration) error {
	if retention < 0 {
		return fmt.Errorf("index audit retention: %s: must not be negative", retention)
	}
	if retention == 0 {
		return nil
	}
	// (at, event_id) is indexed (audit_events_at), so each batch is an
	// index range, not a scan.
	return s.deleteBatches(ctx, "delete expired audit events", `DELETE FROM audit_events WHERE event_id IN
 (SELECT event_id FROM audit_events WHERE at < ? ORDER BY at LIMIT ?)`, micros(now.Add(-retention)), retentionBatch)
}

// deleteBatches runs a DELETE whose last argument is its batch size (a
// LIMIT) until it deletes fewer rows than that.
func (s *Store) deleteBatches(ctx context.Context, what, q string, args ...any) error {
	batch := args[len(args)-1].(int)
	q = s.d.rebind(q)
	for {
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if n < int64(batch) {
			return nil
		}
	}
}
