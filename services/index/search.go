package index

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Query selects messages. Empty fields do not filter. Results come newest
// first (received_at, then message ID, descending).
type Query struct {
	ControlID string
	// PatientKey is PatientKey(secret, authority, id) of the patient ID
	// asked for (authority "" matches any authority).
	PatientKey      string
	Interface       string
	SendingFacility string
	MessageType     string
	Status          string
	// Since is inclusive, Until exclusive; both on received_at.
	Since, Until time.Time
	// Limit is capped at MaxLimit; 0 means DefaultLimit.
	Limit int
	// Cursor is the next cursor of the previous page, "" for the first.
	Cursor string
}

func limitOf(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// cursor is the keyset position after the last row of a page, opaque to
// callers.
func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "|" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "|")
	at, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return at, id, nil
}

// Search returns one page of the messages q selects, each with its
// destinations, and the cursor of the next page ("" after the last).
func (s *Store) Search(ctx context.Context, q Query) ([]MessageRow, string, error) {
	if q.Status != "" && !Known(q.Status) {
		return nil, "", fmt.Errorf("search: unknown status %q", q.Status)
	}
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("control_id", q.ControlID)
	eq("interface", q.Interface)
	eq("sending_facility", q.SendingFacility)
	eq("message_type", q.MessageType)
	eq("status", q.Status)
	if q.PatientKey != "" {
		where = append(where, "message_id IN (SELECT message_id FROM message_patients WHERE patient_key = ?)")
		args = append(args, q.PatientKey)
	}
	if !q.Since.IsZero() {
		where = append(where, "received_at >= ?")
		args = append(args, micros(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "received_at < ?")
		args = append(args, micros(q.Until))
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("search: %w", err)
		}
		where = append(where, "(received_at < ? OR (received_at = ? AND message_id < ?))")
		args = append(args, at, at, id)
	}
	limit := limitOf(q.Limit)
	query := `SELECT ` + messageCols + ` FROM messages`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY received_at DESC, message_id DESC LIMIT ` + strconv.Itoa(limit+1)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	var out []MessageRow
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			_ = rows.Close()
			return nil, "", fmt.Errorf("search: %w", err)
		}
		out = append(out, *m)
	}
	if err := closeRows(rows); err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(micros(last.ReceivedAt), last.MessageID)
	}
	if err := s.attachDestinations(ctx, out); err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	return out, next, nil
}

func (s *Store) attachDestinations(ctx context.Context, ms []MessageRow) error {
	if len(ms) == 0 {
		return nil
	}
	pos := map[string]int{}
	ids := make([]string, len(ms))
	for i, m := range ms {
		pos[m.MessageID] = i
		ids[i] = m.MessageID
	}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT message_id, destination, status, cycle_at, attempts, last_outcome, updated_at
FROM destinations WHERE message_id IN (`+placeholders(len(part))+`) ORDER BY message_id, destination`), anys(part)...)
		if err != nil {
			return fmt.Errorf("read destinations: %w", err)
		}
		for rows.Next() {
			var id string
			d, err := scanDestination(rows, &id)
			if err != nil {
				_ = rows.Close()
				return fmt.Errorf("read destinations: %w", err)
			}
			i := pos[id]
			ms[i].Destinations = append(ms[i].Destinations, *d)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("read destinations: %w", err)
		}
	}
	return nil
}

// Message returns what the index holds about one message: its row, its
// destinations, pointers to its records (oldest first) and its dead
// letters. ErrNotFound if the index has never seen it.
func (s *Store) Message(ctx context.Context, id string) (*MessageDetail, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+messageCols+` FROM messages WHERE message_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	rows := []MessageRow{*m}
	if err := s.attachDestinations(ctx, rows); err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	det := &MessageDetail{MessageRow: rows[0]}
	prow, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT kind, topic, record_partition, record_offset, at FROM record_pointers
WHERE message_id = ? ORDER BY at, topic, record_partition, record_offset`), id)
	if err != nil {
		return nil, fmt.Errorf("message %s: pointers: %w", id, err)
	}
	for prow.Next() {
		var p Pointer
		var at int64
		if err := prow.Scan(&p.Kind, &p.Topic, &p.Partition, &p.Offset, &at); err != nil {
			_ = prow.Close()
			return nil, fmt.Errorf("message %s: pointers: %w", id, err)
		}
		p.At = fromMicros(at)
		det.Pointers = append(det.Pointers, p)
	}
	if err := closeRows(prow); err != nil {
		return nil, fmt.Errorf("message %s: pointers: %w", id, err)
	}
	dls, err := s.deadLetters(ctx, `message_id = ?`, []any{id}, MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	det.DeadLetters = dls
	return det, nil
}

// Page is one page of a listing: Limit (capped at MaxLimit, 0 means
// DefaultLimit) rows after Cursor ("" for the first page).
type Page struct {
	Limit  int
	Cursor string
}

// DeadLetterFilter selects dead letters.
type DeadLetterFilter struct {
	// Stage is one stage's dead letters, "" for every stage.
	Stage string
	// IncludeDiscarded lists the discarded ones too.
	IncludeDiscarded bool
}

// DeadLetters lists the dead letters f selects, newest first, and the
// cursor of the next page ("" after the last). A row a discard made before
// its dead letter arrived (failed_at 0, no stage content yet) lists only
// with IncludeDiscarded.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter, page Page) ([]DeadLetter, string, error) {
	var where []string
	var args []any
	if f.Stage != "" {
		where = append(where, "stage = ?")
		args = append(args, f.Stage)
	}
	if !f.IncludeDiscarded {
		where = append(where, "discarded_at = 0")
	}
	if page.Cursor != "" {
		at, id, err := decodeCursor(page.Cursor)
		if err != nil {
			return nil, "", fmt.Errorf("dead letters: %w", err)
		}
		where = append(where, "(failed_at < ? OR (failed_at = ? AND id < ?))")
		args = append(args, at, at, id)
	}
	limit := limitOf(page.Limit)
	out, err := s.deadLetters(ctx, strings.Join(where, " AND "), args, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(micros(last.FailedAt), last.ID)
	}
	return out, next, nil
}

// DeadLetter returns one dead letter by its ID, discarded or not;
// ErrNotFound if the index does not hold it.
func (s *Store) DeadLetter(ctx context.Context, id string) (*DeadLetter, error) {
	out, err := s.deadLetters(ctx, "id = ?", []any{id}, 1)
	if err != nil {
		return nil, fmt.Errorf("dead letter %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dead letter %s: %w", id, ErrNotFound)
	}
	return &out[0], nil
}

const deadLetterCols = `id, message_id, control_id, stage, destination, error_class, reason, failed_at, discarded_at, discarded_by, discard_reason`

func (s *Store) deadLetters(ctx context.Context, where string, args []any, limit int) ([]DeadLetter, error) {
	q := `SELECT ` + deadLetterCols + ` FROM dead_letters`
	if where != "" {
		q += ` WHERE ` + where
	}
	q += ` ORDER BY failed_at DESC, id DESC LIMIT ` + strconv.Itoa(limit)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	var out []DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		out = append(out, *d)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	if err := s.attachReplays(ctx, out); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return out, nil
}

func scanDeadLetter(sc interface{ Scan(...any) error }) (*DeadLetter, error) {
	var d DeadLetter
	var at, discAt int64
	var by, why string
	if err := sc.Scan(&d.ID, &d.MessageID, &d.ControlID, &d.Stage, &d.Destination, &d.ErrorClass, &d.Reason, &at,
		&discAt, &by, &why); err != nil {
		return nil, err
	}
	d.FailedAt = fromMicros(at)
	if discAt != 0 {
		d.Discarded = &Discarded{Actor: by, Reason: why, At: fromMicros(discAt)}
	}
	return &d, nil
}

// attachReplays fills each dead letter's Replayed with the jobs that
// re-sent it, oldest first.
func (s *Store) attachReplays(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	pos := map[string]int{}
	ids := make([]string, len(dls))
	for i, d := range dls {
		pos[d.ID] = i
		ids[i] = d.ID
	}
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT dead_letter_id, job_id FROM dead_letter_replays
WHERE dead_letter_id IN (`+placeholders(len(part))+`) ORDER BY at, job_id`), anys(part)...)
		if err != nil {
			return fmt.Errorf("read replays: %w", err)
		}
		for rows.Next() {
			var id, job string
			if err := rows.Scan(&id, &job); err != nil {
				_ = rows.Close()
				return fmt.Errorf("read replays: %w", err)
			}
			i := pos[id]
			dls[i].Replayed = append(dls[i].Replayed, job)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("read replays: %w", err)
		}
	}
	return nil
}
