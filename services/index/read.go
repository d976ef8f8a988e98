package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditQuery selects audit events; empty fields do not filter. Results
// come newest first (at, then event ID, descending).
type AuditQuery struct {
	Actor, Action string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Limit is capped at MaxLimit; 0 means DefaultLimit.
	Limit  int
	Cursor string
}

// Audit returns one page of the audit events q selects and the cursor of
// the next page ("" after the last).
func (s *Store) Audit(ctx context.Context, q AuditQuery) ([]AuditRow, string, error) {
	var where []string
	var args []any
	if q.Actor != "" {
		where = append(where, "actor = ?")
		args = append(args, q.Actor)
	}
	if q.Action != "" {
		where = append(where, "action = ?")
		args = append(args, q.Action)
	}
	if !q.Since.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, micros(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "at < ?")
		args = append(args, micros(q.Until))
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("audit: %w", err)
		}
		where = append(where, "(at < ? OR (at = ? AND event_id < ?))")
		args = append(args, at, at, id)
	}
	limit := limitOf(q.Limit)
	query := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY at DESC, event_id DESC LIMIT ` + strconv.Itoa(limit+1)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	var out []AuditRow
	for rows.Next() {
		var a AuditRow
		var at int64
		if err := rows.Scan(&a.EventID, &at, &a.Service, &a.Actor, &a.Role, &a.Auth, &a.Action, &a.Resource, &a.Selector,
			&a.Count, &a.Outcome, &a.Remote, &a.Detail); err != nil {
			_ = rows.Close()
			return nil, "", fmt.Errorf("audit: %w", err)
		}
		a.At = fromMicros(at)
		out = append(out, a)
	}
	if err := closeRows(rows); err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(micros(last.At), last.EventID)
	}
	return out, next, nil
}

// Counts are the messages received at or after since, by overall status,
// per interface; and their destinations' copies, by status, per
// destination.
func (s *Store) Counts(ctx context.Context, since time.Time) (interfaces, destinations map[string]map[string]int64, err error) {
	interfaces, err = s.counts(ctx, `SELECT interface, status, COUNT(*) FROM messages WHERE received_at >= ? GROUP BY interface, status`, since)
	if err != nil {
		return nil, nil, fmt.Errorf("counts by interface: %w", err)
	}
	destinations, err = s.counts(ctx, `SELECT d.destination, d.status, COUNT(*) FROM destinations d
JOIN messages m ON m.message_id = d.message_id WHERE m.received_at >= ? GROUP BY d.destination, d.status`, since)
	if err != nil {
		return nil, nil, fmt.Errorf("counts by destination: %w", err)
	}
	return interfaces, destinations, nil
}

func (s *Store) counts(ctx context.Context, q string, since time.Time) (map[string]map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), micros(since))
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]int64{}
	for rows.Next() {
		var name, status string
		var n int64
		if err := rows.Scan(&name, &status, &n); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if out[name] == nil {
			out[name] = map[string]int64{}
		}
		out[name][status] += n
	}
	return out, closeRows(rows)
}

// Selector chooses the messages a replay job re-sends: MessageIDs, or
// DeadLetterIDs (through the dead letters' message IDs), or a filter made
// of the rest. Filter fields that are empty do not filter.
type Selector struct {
	MessageIDs    []string
	DeadLetterIDs []string
	ControlID     string
	Interface     string
	MessageType   string
	// Status is the message's overall status, or with Destination that
	// destination's status.
	Status string
	// Destination keeps messages routed to that destination.
	Destination string
	// Since is inclusive, Until exclusive, on received_at.
	Since, Until time.Time
}

// Select returns up to limit messages sel selects, oldest first
// (received_at, then message ID), each with its destinations, pointers
// and dead letters: what a replay job needs to re-send them. The order is
// deterministic, so a job resumed after a restart selects the same
// messages in the same order and can skip the ones it already sent.
func (s *Store) Select(ctx context.Context, sel Selector, limit int) ([]MessageDetail, error) {
	if limit <= 0 {
		return nil, nil
	}
	if sel.Status != "" && !Known(sel.Status) {
		return nil, fmt.Errorf("select: unknown status %q", sel.Status)
	}
	var where []string
	var args []any
	in := func(col string, vals []string) {
		where = append(where, col+" IN ("+placeholders(len(vals))+")")
		args = append(args, anys(vals)...)
	}
	switch {
	case len(sel.MessageIDs) > 0:
		if len(sel.MessageIDs) > MaxSelectIDs {
			return nil, fmt.Errorf("select: %d message IDs, at most %d", len(sel.MessageIDs), MaxSelectIDs)
		}
		in("m.message_id", sel.MessageIDs)
	case len(sel.DeadLetterIDs) > 0:
		if len(sel.DeadLetterIDs) > MaxSelectIDs {
			return nil, fmt.Errorf("select: %d dead-letter IDs, at most %d", len(sel.DeadLetterIDs), MaxSelectIDs)
		}
		where = append(where, "m.message_id IN (SELECT message_id FROM dead_letters WHERE id IN ("+placeholders(len(sel.DeadLetterIDs))+"))")
		args = append(args, anys(sel.DeadLetterIDs)...)
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("m.control_id", sel.ControlID)
	eq("m.interface", sel.Interface)
	eq("m.message_type", sel.MessageType)
	if sel.Destination != "" {
		sub := "SELECT message_id FROM destinations WHERE destination = ?"
		args = append(args, sel.Destination)
		if sel.Status != "" {
			sub += " AND status = ?"
			args = append(args, sel.Status)
		}
		where = append(where, "m.message_id IN ("+sub+")")
	} else {
		eq("m.status", sel.Status)
	}
	if !sel.Since.IsZero() {
		where = append(where, "m.received_at >= ?")
		args = append(args, micros(sel.Since))
	}
	if !sel.Until.IsZero() {
		where = append(where, "m.received_at < ?")
		args = append(args, micros(sel.Until))
	}
	q := `SELECT ` + prefixed("m.", messageCols) + ` FROM messages m`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY m.received_at, m.message_id LIMIT ` + strconv.Itoa(limit)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	var ms []MessageRow
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("select: %w", err)
		}
		ms = append(ms, *m)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if err := s.attachDestinations(ctx, ms); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	out := make([]MessageDetail, len(ms))
	for i, m := range ms {
		out[i] = MessageDetail{MessageRow: m}
	}
	if err := s.attachDetails(ctx, out); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return out, nil
}

// MaxSelectIDs bounds the IDs one Select names (one IN list).
const MaxSelectIDs = chunk

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

// attachDetails fills the pointers (oldest first) and dead letters of
// each message, a few queries per chunk of messages rather than per
// message.
func (s *Store) attachDetails(ctx context.Context, ds []MessageDetail) error {
	pos := map[string]int{}
	ids := make([]string, len(ds))
	for i, d := range ds {
		pos[d.MessageID] = i
		ids[i] = d.MessageID
	}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT message_id, kind, topic, record_partition, record_offset, at FROM record_pointers
WHERE message_id IN (`+placeholders(len(part))+`) ORDER BY message_id, at, topic, record_partition, record_offset`), anys(part)...)
		if err != nil {
			return fmt.Errorf("read pointers: %w", err)
		}
		for rows.Next() {
			var id string
			var p Pointer
			var at int64
			if err := rows.Scan(&id, &p.Kind, &p.Topic, &p.Partition, &p.Offset, &at); err != nil {
				_ = rows.Close()
				return fmt.Errorf("read pointers: %w", err)
			}
			p.At = fromMicros(at)
			ds[pos[id]].Pointers = append(ds[pos[id]].Pointers, p)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("read pointers: %w", err)
		}
		dls, err := s.deadLetters(ctx, "message_id IN ("+placeholders(len(part))+")", anys(part), MaxLimit*len(part))
		if err != nil {
			return err
		}
		for _, d := range dls {
			ds[pos[d.MessageID]].DeadLetters = append(ds[pos[d.MessageID]].DeadLetters, d)
		}
	}
	return nil
}

// NewerDelivered returns the ID of a message of the same patient key,
// received after at and other than messageID, whose copy for destination
// is delivered: the newest such one, or "" if there is none. A replay
// that would deliver an older message after it (an old A08 overwriting
// newer demographics) must be confirmed.
func (s *Store) NewerDelivered(ctx context.Context, patientKey, destination string, at time.Time, messageID string) (string, error) {
	if patientKey == "" || destination == "" {
		return "", nil
	}
	var id string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT m.message_id FROM message_patients p
JOIN messages m ON m.message_id = p.message_id
JOIN destinations d ON d.message_id = m.message_id AND d.destination = ?
WHERE p.patient_key = ? AND d.status = ? AND m.received_at > ? AND m.message_id <> ?
ORDER BY m.received_at DESC, m.message_id DESC LIMIT 1`), destination, patientKey, StatusDelivered, micros(at), messageID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("newer delivered: %w", err)
	}
	return id, nil
}

// stateGroup is the index_state row naming the consumer group.
const stateGroup = "consumer_group"

// ConsumerGroup is the consumer group the index reads the topics in, as
// the last Rebuild set it; "" before any rebuild (the consumer's default
// then applies).
func (s *Store) ConsumerGroup(ctx context.Context) (string, error) {
	var g string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT value FROM index_state WHERE name = ?`), stateGroup).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read consumer group: %w", err)
	}
	return g, nil
}

// dataTables are every table Rebuild empties: all but schema_migrations,
// index_state and audit_events. The audit trail is kept (often for years,
// index.audit_retention) longer than the audit topic holds it, so a
// rebuild re-reads what the topic still has into it, keyed by event ID,
// and loses nothing older.
var dataTables = []string{"messages", "message_patients", "destinations", "record_pointers", "dead_letters", "dead_letter_replays"}

// Rebuild deletes every row the topics made and records group as the
// consumer group to read them in from now on, in one transaction: a
// fresh group starts at the topics' beginning, and a rebuild that is
// stopped half-way continues in the same group when the index restarts.
func (s *Store) Rebuild(ctx context.Context, group string) (err error) {
	if group == "" {
		return errors.New("rebuild: no consumer group")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rebuild: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, t := range dataTables {
		if _, err = tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
			return fmt.Errorf("rebuild: empty %s: %w", t, err)
		}
	}
	if _, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO index_state (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`), stateGroup, group); err != nil {
		return fmt.Errorf("rebuild: record consumer group: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("rebuild: commit: %w", err)
	}
	return nil
}
