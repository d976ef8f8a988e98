package index

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	// The SQLite driver registers itself with database/sql as "sqlite".
	_ "modernc.org/sqlite"
)

// Limits of one page of Search or DeadLetters.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// ErrNotFound is returned by Message for an ID the index does not hold.
var ErrNotFound = errors.New("not found")

// ErrBadCursor is returned for a page cursor the index did not make.
var ErrBadCursor = errors.New("malformed cursor")

// Store is the message index on one database. Its methods are safe for
// concurrent use; Apply calls serialize on the database's write lock.
type Store struct {
	db  *sql.DB
	d   dialect
	now func() time.Time
}

// Open connects to the index database: driver is DriverSQLite (dsn is the
// file's path, created if missing) or DriverPostgres (dsn is a pgx
// connection string). It pings the database but does not migrate: call
// Migrate.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	d, err := dialectOf(driver)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch driver {
	case DriverSQLite:
		db, err = sql.Open(d.sqlDriver, sqliteDSN(dsn))
		if err != nil {
			return nil, fmt.Errorf("open index (%s): %w", driver, err)
		}
	case DriverPostgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx redacts the password in its parse errors.
			return nil, fmt.Errorf("open index (%s): %w", driver, err)
		}
		// Apply's multi-row statements vary in shape with the batch, so
		// pgx's default cache of prepared statements would prepare almost
		// every one anew: two round trips each. Plain execution is about
		// three times faster (BenchmarkApplyPostgres). A DSN that names
		// default_query_exec_mode keeps its choice.
		if !strings.Contains(dsn, "default_query_exec_mode") {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		db = stdlib.OpenDB(*cfg)
	}
	if driver == DriverSQLite {
		// One writer at a time is all SQLite allows; a few connections let
		// searches read the WAL beside it.
		db.SetMaxOpenConns(4)
	}
	if err := ping(ctx, db, driver); err != nil {
		_ = db.Close()
		// The DSN may hold a password: the error names only the driver.
		return nil, fmt.Errorf("connect index (%s): %w", driver, err)
	}
	return &Store{db: db, d: d, now: time.Now}, nil
}

// busyWait bounds how long Open waits for another process that is
// switching a new SQLite file to WAL at the same moment (the index and
// the admin API open the same file as a standalone starts): SQLite
// answers that race with SQLITE_BUSY at once, without its busy timeout.
const busyWait = 10 * time.Second

// ping checks the connection, waiting out SQLITE_BUSY (see busyWait).
func ping(ctx context.Context, db *sql.DB, driver string) error {
	deadline := time.Now().Add(busyWait)
	wait := 10 * time.Millisecond
	for {
		err := db.PingContext(ctx)
		var coded interface{ Code() int }
		if err == nil || driver != DriverSQLite || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// sqliteBusy is SQLITE_BUSY, the primary code of "database is locked".
const sqliteBusy = 5

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// Update is one fact about one message, as a projection (project.go) makes
// it from a record. Every part but MessageID and At is optional; Apply
// merges the parts into the rows they concern.
type Update struct {
	MessageID string
	// At is when the fact happened (the record's event time); it orders
	// replay cycles (see merge).
	At time.Time
	// Message fills the message's metadata (blank fields never overwrite).
	Message *MessageFields
	// Status is a message-level stage status, "" for none.
	Status string
	// PatientKeys are PatientKey hashes of the message's identifiers.
	PatientKeys []string
	// Destination is a per-destination status.
	Destination *DestinationUpdate
	// Pointer is where the record this update came from lives.
	Pointer *Pointer
	// DeadLetter is a dead letter to list.
	DeadLetter *DeadLetter
	// Discard sets a dead letter aside (it may come before the dead
	// letter itself; see migrations/0002).
	Discard *Discard
	// Replay notes that a replay job re-sent a dead letter.
	Replay *DeadLetterReplay
	// Audit is an audit event to store; it concerns no message.
	Audit *AuditRow
}

// Discard is an operator's decision to set a dead letter aside.
type Discard struct {
	DeadLetterID string
	MessageID    string
	Actor        string
	// Reason is the operator's words; the admin API refuses none, so it
	// is shown only to roles that may see dead letters.
	Reason string
	At     time.Time
}

// DeadLetterReplay is one replay job re-sending one dead letter.
type DeadLetterReplay struct {
	DeadLetterID string
	JobID        string
	At           time.Time
}

// AuditRow is one audit event as the index stores it: canonical.AuditEvent
// field for field. It never holds message content or a patient
// identifier (the admin API writes patient keys into selectors).
type AuditRow struct {
	EventID  string
	At       time.Time
	Service  string
	Actor    string
	Role     string
	Auth     string
	Action   string
	Resource string
	Selector string
	Count    int64
	Outcome  string
	Remote   string
	Detail   string
}

// MessageFields is a message's metadata. None of it is PHI.
type MessageFields struct {
	ParentMessageID string
	ControlID       string
	Interface       string
	SendingFacility string
	// MessageType is "ORU^R01" (canonical.MessageTypeOf).
	MessageType string
	ReceivedAt  time.Time
	// PatientKey is the HMAC of the first patient identifier, "" if none.
	PatientKey    string
	TraceID       string
	ConfigVersion string
}

// DestinationUpdate is what happened to one destination's copy.
type DestinationUpdate struct {
	Destination string
	Status      string
	// Attempt is the delivery attempt's number, 0 when not an attempt.
	Attempt int
	// LastOutcome is "delivered", "retry AE", "dead_lettered AR" …: the
	// outcome and the ACK code, never the ACK's text.
	LastOutcome string
}

// Pointer is one Kafka record concerning a message.
type Pointer struct {
	// Kind names the record's type: raw, parsed, transformed, decision,
	// delivery, dead_letter.
	Kind      string
	Topic     string
	Partition int32
	Offset    int64
	At        time.Time
}

// DeadLetter is one record of a dlq.<stage> topic.
type DeadLetter struct {
	// ID is "<stage>:<partition>:<offset>" of the dead-letter record in
	// dlq.<stage> (DeadLetterID).
	ID          string
	MessageID   string
	ControlID   string
	Stage       string
	Destination string
	ErrorClass  string
	// Reason names positions, rules and codes, never content (the
	// dead-letter contract).
	Reason   string
	FailedAt time.Time
	// Discarded is set once an operator set the dead letter aside.
	Discarded *Discarded
	// Replayed lists the replay jobs that re-sent it, in the order they
	// did (read side only: Apply ignores it).
	Replayed []string
}

// Discarded says who set a dead letter aside, when and why.
type Discarded struct {
	Actor  string
	Reason string
	At     time.Time
}

// DeadLetterID is the design's dead-letter ID: the stage and the record's
// place in dlq.<stage>.
func DeadLetterID(stage string, partition int32, offset int64) string {
	return stage + ":" + strconv.FormatInt(int64(partition), 10) + ":" + strconv.FormatInt(offset, 10)
}

// ParseDeadLetterID splits a dead-letter ID into its stage and the
// record's place in dlq.<stage>. A stage holds no colon (stage names are
// plain words), so the last two fields are the partition and offset.
func ParseDeadLetterID(id string) (stage string, partition int32, offset int64, err error) {
	rest, off, ok1 := cutLast(id, ":")
	stage, part, ok2 := cutLast(rest, ":")
	if !ok1 || !ok2 || stage == "" {
		return "", 0, 0, fmt.Errorf("dead-letter ID %q: want <stage>:<partition>:<offset>", id)
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil || p < 0 {
		return "", 0, 0, fmt.Errorf("dead-letter ID %q: bad partition", id)
	}
	o, err := strconv.ParseInt(off, 10, 64)
	if err != nil || o < 0 {
		return "", 0, 0, fmt.Errorf("dead-letter ID %q: bad offset", id)
	}
	return stage, int32(p), o, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// MessageRow is one message as Search lists it.
type MessageRow struct {
	MessageID       string
	ParentMessageID string
	ControlID       string
	Interface       string
	SendingFacility string
	MessageType     string
	ReceivedAt      time.Time
	// Status is the overall status (Overall).
	Status string
	// StageStatus is the furthest stage status of the current cycle.
	StageStatus   string
	PatientKey    string
	TraceID       string
	ConfigVersion string
	UpdatedAt     time.Time
	Destinations  []DestinationRow
	cycleAt       int64
}

// DestinationRow is one destination's status for a message.
type DestinationRow struct {
	Destination string
	Status      string
	Attempts    int
	LastOutcome string
	UpdatedAt   time.Time
	cycleAt     int64
}

// MessageDetail is everything the index holds about one message.
type MessageDetail struct {
	MessageRow
	Pointers    []Pointer
	DeadLetters []DeadLetter
}

func (u Update) validate(i int) error {
	if u.MessageID == "" && (u.Message != nil || u.Status != "" || u.Destination != nil || u.Pointer != nil || len(u.PatientKeys) > 0) {
		return fmt.Errorf("update %d: no message ID", i)
	}
	if u.Status != "" {
		if _, ok := precedence[u.Status]; !ok {
			return fmt.Errorf("update %d: unknown status %q", i, u.Status)
		}
	}
	if u.Destination != nil {
		if u.Destination.Destination == "" {
			return fmt.Errorf("update %d: destination update without a destination", i)
		}
		if _, ok := precedence[u.Destination.Status]; !ok {
			return fmt.Errorf("update %d: unknown destination status %q", i, u.Destination.Status)
		}
	}
	if u.DeadLetter != nil && (u.DeadLetter.ID == "" || u.DeadLetter.Stage == "") {
		return fmt.Errorf("update %d: dead letter without ID or stage", i)
	}
	if u.Discard != nil {
		if _, _, _, err := ParseDeadLetterID(u.Discard.DeadLetterID); err != nil {
			return fmt.Errorf("update %d: discard: %w", i, err)
		}
	}
	if u.Replay != nil && (u.Replay.DeadLetterID == "" || u.Replay.JobID == "") {
		return fmt.Errorf("update %d: dead-letter replay without dead-letter or job ID", i)
	}
	if u.Audit != nil && u.Audit.EventID == "" {
		return fmt.Errorf("update %d: audit event without an ID", i)
	}
	return nil
}

// chunk bounds the IN lists Apply reads with, well below SQLite's and
// PostgreSQL's limits on bound parameters.
const chunk = 500

// Apply merges a batch of updates in one transaction: all of it is stored
// or none. The consumer commits its Kafka offsets after Apply returns, so
// a crash replays the batch, and applying an update twice stores what
// applying it once did.
func (s *Store) Apply(ctx context.Context, updates []Update) (err error) {
	if len(updates) == 0 {
		return nil
	}
	for i, u := range updates {
		if err := u.validate(i); err != nil {
			return err
		}
	}
	var ids []string
	seen := map[string]bool{}
	for _, u := range updates {
		if u.MessageID != "" && !seen[u.MessageID] {
			seen[u.MessageID] = true
			ids = append(ids, u.MessageID)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	msgs, dests, err := s.load(ctx, tx, ids)
	if err != nil {
		return err
	}
	dirtyMsg := map[string]bool{}
	dirtyDest := map[[2]string]bool{}
	var pointers []Update
	var patients [][2]string
	var rest other
	for _, u := range updates {
		if u.DeadLetter != nil {
			rest.deadLetters = append(rest.deadLetters, u.DeadLetter)
		}
		if u.Discard != nil {
			rest.discards = append(rest.discards, u.Discard)
		}
		if u.Replay != nil {
			rest.replays = append(rest.replays, u.Replay)
		}
		if u.Audit != nil {
			rest.audits = append(rest.audits, u.Audit)
		}
		if u.MessageID == "" {
			continue
		}
		at := micros(u.At)
		m := msgs[u.MessageID]
		if m == nil {
			m = &MessageRow{MessageID: u.MessageID}
			msgs[u.MessageID] = m
		}
		if at > micros(m.UpdatedAt) {
			m.UpdatedAt = fromMicros(at)
		}
		dirtyMsg[u.MessageID] = true
		if u.Message != nil {
			fill(m, u.Message)
		}
		if u.Status != "" {
			m.StageStatus, m.cycleAt, _ = merge(m.StageStatus, m.cycleAt, u.Status, at)
		}
		if d := u.Destination; d != nil {
			key := [2]string{u.MessageID, d.Destination}
			row := dests[key]
			if row == nil {
				row = &DestinationRow{Destination: d.Destination}
				dests[key] = row
			}
			var changed bool
			row.Status, row.cycleAt, changed = merge(row.Status, row.cycleAt, d.Status, at)
			if d.Attempt > row.Attempts {
				row.Attempts = d.Attempt
			}
			if changed && d.LastOutcome != "" {
				row.LastOutcome = d.LastOutcome
			}
			if at > micros(row.UpdatedAt) {
				row.UpdatedAt = fromMicros(at)
			}
			dirtyDest[key] = true
		}
		if u.Pointer != nil {
			pointers = append(pointers, u)
		}
		for _, k := range u.PatientKeys {
			patients = append(patients, [2]string{u.MessageID, k})
		}
	}
	// The overall status needs every destination of a message, and load
	// read them all.
	byMsg := map[string][]string{}
	for key, row := range dests {
		byMsg[key[0]] = append(byMsg[key[0]], row.Status)
	}
	var w writeSet
	writeMessages(&w, msgs, dirtyMsg, byMsg)
	writeDestinations(&w, dests, dirtyDest)
	writeRest(&w, pointers, patients, rest.deadLetters)
	if err := s.flush(ctx, tx, w); err != nil {
		return err
	}
	if err := s.writeOther(ctx, tx, rest); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply: commit: %w", err)
	}
	return nil
}

// fill sets the metadata a record knows and the row does not: the first
// record to name a field wins, except the configuration version, where
// the later stage's (route after transform) is the one that decided.
func fill(m *MessageRow, f *MessageFields) {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&m.ParentMessageID, f.ParentMessageID)
	set(&m.ControlID, f.ControlID)
	set(&m.Interface, f.Interface)
	set(&m.SendingFacility, f.SendingFacility)
	set(&m.MessageType, f.MessageType)
	set(&m.PatientKey, f.PatientKey)
	set(&m.TraceID, f.TraceID)
	if f.ConfigVersion != "" {
		m.ConfigVersion = f.ConfigVersion
	}
	if m.ReceivedAt.IsZero() && !f.ReceivedAt.IsZero() {
		m.ReceivedAt = f.ReceivedAt.UTC()
	}
}

const messageCols = `message_id, parent_message_id, control_id, interface, sending_facility, message_type, received_at, status, stage_status, cycle_at, patient_key, trace_id, config_version, updated_at`

func scanMessage(sc interface{ Scan(...any) error }) (*MessageRow, error) {
	var m MessageRow
	var recv, upd int64
	if err := sc.Scan(&m.MessageID, &m.ParentMessageID, &m.ControlID, &m.Interface, &m.SendingFacility, &m.MessageType,
		&recv, &m.Status, &m.StageStatus, &m.cycleAt, &m.PatientKey, &m.TraceID, &m.ConfigVersion, &upd); err != nil {
		return nil, err
	}
	m.ReceivedAt, m.UpdatedAt = fromMicros(recv), fromMicros(upd)
	return &m, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// lockKey is a message ID's advisory lock key. Two IDs sharing a key only
// serialize more than they must.
func lockKey(id string) int64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int64(h.Sum64())
}

// lockMessages takes the advisory locks of a batch's messages in ascending
// key order, so two writers never wait on each other in a cycle. unnest
// returns an array's elements in order, which is the order the locks are
// taken in; the locks end with the transaction. One array parameter keeps
// the statement one shape whatever the batch (PostgreSQL only: SQLite
// takes no locks).
func (s *Store) lockMessages(ctx context.Context, tx *sql.Tx, ids []string) error {
	seen := map[int64]bool{}
	var keys []int64
	for _, id := range ids {
		if k := lockKey(id); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS t(k)`, keys); err != nil {
		return fmt.Errorf("apply: lock messages: %w", err)
	}
	return nil
}

// load reads the stored rows of the batch's messages and all their
// destinations, after locking the messages on PostgreSQL.
//
// Destinations are read only for the messages that have a row: Apply
// writes a message's row in every transaction that writes its
// destinations, and retention deletes both in one, so a message without a
// row has no destinations either. (One exception: PostgreSQL retention
// drops a day's messages partition before its destinations partition; if
// the second drop fails, a late record of that expired day merges from
// nothing instead of from the stale row until the next Maintain drops
// it.) A batch of new messages (a rebuild, or the raw records of a
// burst) thus costs one read, not two.
func (s *Store) load(ctx context.Context, tx *sql.Tx, ids []string) (map[string]*MessageRow, map[[2]string]*DestinationRow, error) {
	if s.d.lockIDs {
		if err := s.lockMessages(ctx, tx, ids); err != nil {
			return nil, nil, err
		}
	}
	msgs := map[string]*MessageRow{}
	dests := map[[2]string]*DestinationRow{}
	n := s.d.inChunk()
	for start := 0; start < len(ids); start += n {
		in, args := s.d.in(ids[start:min(start+n, len(ids))])
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT `+messageCols+` FROM messages WHERE message_id `+in), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("apply: read messages: %w", err)
		}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				_ = rows.Close()
				return nil, nil, fmt.Errorf("apply: read messages: %w", err)
			}
			msgs[m.MessageID] = m
		}
		if err := closeRows(rows); err != nil {
			return nil, nil, fmt.Errorf("apply: read messages: %w", err)
		}
	}
	known := make([]string, 0, len(msgs))
	for _, id := range ids {
		if msgs[id] != nil {
			known = append(known, id)
		}
	}
	if len(known) > 0 && s.d.indexReads != "" {
		if _, err := tx.ExecContext(ctx, s.d.indexReads); err != nil {
			return nil, nil, fmt.Errorf("apply: read destinations: %w", err)
		}
	}
	for start := 0; start < len(known); start += n {
		in, args := s.d.in(known[start:min(start+n, len(known))])
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT message_id, destination, status, cycle_at, attempts, last_outcome, updated_at FROM destinations WHERE message_id `+in), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("apply: read destinations: %w", err)
		}
		for rows.Next() {
			var id string
			d, err := scanDestination(rows, &id)
			if err != nil {
				_ = rows.Close()
				return nil, nil, fmt.Errorf("apply: read destinations: %w", err)
			}
			dests[[2]string{id, d.Destination}] = d
		}
		if err := closeRows(rows); err != nil {
			return nil, nil, fmt.Errorf("apply: read destinations: %w", err)
		}
	}
	return msgs, dests, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

func scanDestination(sc interface{ Scan(...any) error }, id *string) (*DestinationRow, error) {
	var d DestinationRow
	var upd int64
	if err := sc.Scan(id, &d.Destination, &d.Status, &d.cycleAt, &d.Attempts, &d.LastOutcome, &upd); err != nil {
		return nil, err
	}
	d.UpdatedAt = fromMicros(upd)
	return &d, nil
}

// insertRows writes rows with multi-row INSERTs of up to chunk rows each:
// one statement per chunk instead of one Exec per row is what makes a
// batch of 500 cheap. head is "INSERT INTO t (cols) VALUES", tail the ON
// CONFLICT clause; the rows must not repeat a key that tail updates
// (PostgreSQL refuses to update one row twice in a statement).
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, what, head, tail string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if s.d.arrays {
		return s.insertArrays(ctx, tx, what, head, tail, rows)
	}
	tuple := "(" + placeholders(len(rows[0])) + ")"
	for start := 0; start < len(rows); start += chunk {
		part := rows[start:min(start+chunk, len(rows))]
		var q strings.Builder
		q.WriteString(head)
		args := make([]any, 0, len(part)*len(part[0]))
		for i, r := range part {
			if i > 0 {
				q.WriteString(",")
			}
			q.WriteString(tuple)
			args = append(args, r...)
		}
		q.WriteString(" ")
		q.WriteString(tail)
		if _, err := tx.ExecContext(ctx, s.d.rebind(q.String()), args...); err != nil {
			return fmt.Errorf("apply: write %s: %w", what, err)
		}
	}
	return nil
}

// sortedKeys orders a batch's writes, so two PostgreSQL writers lock rows
// in the same order and cannot deadlock.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedPairs[V any](m map[[2]string]V) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	return keys
}

func writeMessages(w *writeSet, msgs map[string]*MessageRow, dirty map[string]bool, dests map[string][]string) {
	rows := make([][]any, 0, len(dirty))
	for _, id := range sortedKeys(dirty) {
		m := msgs[id]
		m.Status = Overall(m.StageStatus, dests[id])
		rows = append(rows, []any{m.MessageID, m.ParentMessageID, m.ControlID, m.Interface, m.SendingFacility, m.MessageType,
			micros(m.ReceivedAt), m.Status, m.StageStatus, m.cycleAt, m.PatientKey, m.TraceID, m.ConfigVersion, micros(m.UpdatedAt)})
	}
	w.add("messages", `INSERT INTO messages (`+messageCols+`) VALUES`,
		`ON CONFLICT (message_id) DO UPDATE SET parent_message_id = excluded.parent_message_id, control_id = excluded.control_id,
 interface = excluded.interface, sending_facility = excluded.sending_facility, message_type = excluded.message_type,
 received_at = excluded.received_at, status = excluded.status, stage_status = excluded.stage_status,
 cycle_at = excluded.cycle_at, patient_key = excluded.patient_key, trace_id = excluded.trace_id,
 config_version = excluded.config_version, updated_at = excluded.updated_at`, rows)
}

func writeDestinations(w *writeSet, dests map[[2]string]*DestinationRow, dirty map[[2]string]bool) {
	rows := make([][]any, 0, len(dirty))
	for _, key := range sortedPairs(dirty) {
		d := dests[key]
		rows = append(rows, []any{key[0], d.Destination, d.Status, d.cycleAt, d.Attempts, d.LastOutcome, micros(d.UpdatedAt)})
	}
	w.add("destinations", `INSERT INTO destinations (message_id, destination, status, cycle_at, attempts, last_outcome, updated_at) VALUES`,
		`ON CONFLICT (message_id, destination) DO UPDATE SET status = excluded.status, cycle_at = excluded.cycle_at,
 attempts = excluded.attempts, last_outcome = excluded.last_outcome, updated_at = excluded.updated_at`, rows)
}

func writeRest(w *writeSet, pointers []Update, patients [][2]string, dls []*DeadLetter) {
	type pkey struct {
		id, topic string
		part      int32
		off       int64
	}
	seenP := map[pkey]bool{}
	var prow [][]any
	for _, u := range pointers {
		p := u.Pointer
		k := pkey{u.MessageID, p.Topic, p.Partition, p.Offset}
		if seenP[k] {
			continue
		}
		seenP[k] = true
		at := p.At
		if at.IsZero() {
			at = u.At
		}
		prow = append(prow, []any{u.MessageID, p.Kind, p.Topic, p.Partition, p.Offset, micros(at)})
	}
	w.add("pointers", `INSERT INTO record_pointers (message_id, kind, topic, record_partition, record_offset, at) VALUES`,
		`ON CONFLICT (message_id, topic, record_partition, record_offset) DO NOTHING`, prow)
	seenK := map[[2]string]bool{}
	var krow [][]any
	for _, p := range patients {
		if !seenK[p] {
			seenK[p] = true
			krow = append(krow, []any{p[0], p[1]})
		}
	}
	w.add("patient keys", `INSERT INTO message_patients (message_id, patient_key) VALUES`,
		`ON CONFLICT (message_id, patient_key) DO NOTHING`, krow)
	seenD := map[string]bool{}
	var drow [][]any
	for _, d := range dls {
		if !seenD[d.ID] {
			seenD[d.ID] = true
			drow = append(drow, []any{d.ID, d.MessageID, d.ControlID, d.Stage, d.Destination, d.ErrorClass, d.Reason, micros(d.FailedAt)})
		}
	}
	// A discard read first made the row; the dead letter fills it and
	// leaves the discard alone.
	w.add("dead letters", `INSERT INTO dead_letters (id, message_id, control_id, stage, destination, error_class, reason, failed_at) VALUES`,
		`ON CONFLICT (id) DO UPDATE SET message_id = excluded.message_id, control_id = excluded.control_id, stage = excluded.stage,
 destination = excluded.destination, error_class = excluded.error_class, reason = excluded.reason, failed_at = excluded.failed_at`, drow)
}

// other is what a batch holds besides messages: rows keyed by their own
// IDs, so writing them needs no merge.
type other struct {
	deadLetters []*DeadLetter
	discards    []*Discard
	replays     []*DeadLetterReplay
	audits      []*AuditRow
}

// writeOther stores discards (the first one of a dead letter wins, so
// applying them again or out of order changes nothing), dead-letter
// replays and audit events.
func (s *Store) writeOther(ctx context.Context, tx *sql.Tx, o other) error {
	first := map[string]*Discard{}
	for _, d := range o.discards {
		if cur, ok := first[d.DeadLetterID]; !ok || d.At.Before(cur.At) {
			first[d.DeadLetterID] = d
		}
	}
	var rows [][]any
	for _, id := range sortedKeys(first) {
		d := first[id]
		stage, _, _, _ := ParseDeadLetterID(id) // validate checked it
		rows = append(rows, []any{id, d.MessageID, stage, micros(d.At), d.Actor, d.Reason})
	}
	if err := s.insertRows(ctx, tx, "discards", `INSERT INTO dead_letters (id, message_id, stage, discarded_at, discarded_by, discard_reason) VALUES`,
		`ON CONFLICT (id) DO UPDATE SET discarded_at = excluded.discarded_at, discarded_by = excluded.discarded_by,
 discard_reason = excluded.discard_reason WHERE dead_letters.discarded_at = 0`, rows); err != nil {
		return err
	}
	seenR := map[[2]string]bool{}
	rows = nil
	for _, r := range o.replays {
		k := [2]string{r.DeadLetterID, r.JobID}
		if !seenR[k] {
			seenR[k] = true
			rows = append(rows, []any{r.DeadLetterID, r.JobID, micros(r.At)})
		}
	}
	if err := s.insertRows(ctx, tx, "dead-letter replays", `INSERT INTO dead_letter_replays (dead_letter_id, job_id, at) VALUES`,
		`ON CONFLICT (dead_letter_id, job_id) DO NOTHING`, rows); err != nil {
		return err
	}
	seenA := map[string]bool{}
	rows = nil
	for _, a := range o.audits {
		if !seenA[a.EventID] {
			seenA[a.EventID] = true
			rows = append(rows, []any{a.EventID, micros(a.At), a.Service, a.Actor, a.Role, a.Auth, a.Action, a.Resource,
				a.Selector, a.Count, a.Outcome, a.Remote, a.Detail})
		}
	}
	return s.insertRows(ctx, tx, "audit events", `INSERT INTO audit_events (`+auditCols+`) VALUES`,
		`ON CONFLICT (event_id) DO NOTHING`, rows)
}

const auditCols = `event_id, at, service, actor, role, auth, action, resource, selector, count, outcome, remote, detail`

// writeSet is the upserts of one Apply into the message tables and dead
// letters, in the order they are written.
type writeSet []upsert

// upsert is the rows for one insertRows call.
type upsert struct {
	what, head, tail string
	rows             [][]any
}

func (w *writeSet) add(what, head, tail string, rows [][]any) {
	if len(rows) > 0 {
		*w = append(*w, upsert{what, head, tail, rows})
	}
}

// flush writes a writeSet, one statement a table. (Folding them into one
// statement of data-modifying WITH queries, one round trip instead of
// five, measured within the noise of BenchmarkApplyPostgres: the server's
// index inserts are the cost, not the round trips.)
func (s *Store) flush(ctx context.Context, tx *sql.Tx, w writeSet) error {
	for _, u := range w {
		if err := s.insertRows(ctx, tx, u.what, u.head, u.tail, u.rows); err != nil {
			return err
		}
	}
	return nil
}

// insertArrays writes rows with one INSERT … SELECT FROM unnest(…) of
// one array a column.
func (s *Store) insertArrays(ctx context.Context, tx *sql.Tx, what, head, tail string, rows [][]any) error {
	var q strings.Builder
	args, err := arrayInsert(&q, head, tail, rows, nil)
	if err != nil {
		return fmt.Errorf("apply: write %s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("apply: write %s: %w", what, err)
	}
	return nil
}

// arrayInsert writes to q the INSERT of rows as one array a column,
// numbering its parameters after args, and returns args with the arrays
// appended.
func arrayInsert(q *strings.Builder, head, tail string, rows [][]any, args []any) ([]any, error) {
	ncol := len(rows[0])
	q.WriteString(strings.TrimSuffix(head, "VALUES"))
	q.WriteString("SELECT * FROM unnest(")
	for c := 0; c < ncol; c++ {
		var cast string
		switch rows[0][c].(type) {
		case string:
			col := make([]string, len(rows))
			for i, r := range rows {
				col[i] = r[c].(string)
			}
			args, cast = append(args, col), "text[]"
		case int64, int32, int:
			col := make([]int64, len(rows))
			for i, r := range rows {
				switch v := r[c].(type) {
				case int64:
					col[i] = v
				case int32:
					col[i] = int64(v)
				case int:
					col[i] = int64(v)
				}
			}
			args, cast = append(args, col), "bigint[]"
		default:
			return nil, fmt.Errorf("column %d: unsupported type %T", c, rows[0][c])
		}
		if c > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(q, "$%d::%s", len(args), cast)
	}
	q.WriteString(") ")
	q.WriteString(tail)
	return args, nil
}
