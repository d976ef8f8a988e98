package index

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Drivers Open accepts.
const (
	// DriverSQLite is the embedded default: a file in the data directory,
	// opened with the pure-Go modernc.org/sqlite in WAL mode.
	DriverSQLite = "sqlite"
	// DriverPostgres is production: PostgreSQL 15 through pgx's
	// database/sql driver.
	DriverPostgres = "postgres"
)

// dialect is the seam for the few places the two backends' SQL differs.
// Everything else (ON CONFLICT upserts with excluded.*, keyset pagination,
// BIGINT times) is written once, in SQL both accept.
type dialect struct {
	name string
	// sqlDriver is the database/sql driver name (PostgreSQL is opened
	// through pgx's own config instead, see Open).
	sqlDriver string
	// numbered placeholders ($1, $2 …) instead of ?.
	numbered bool
	// lockIDs makes Apply take a transaction-scoped advisory lock per
	// message ID before it reads, so two PostgreSQL writers merging the same
	// message serialize, even when the message has no row yet (which FOR
	// UPDATE could not lock). SQLite needs none: its transactions start
	// IMMEDIATE and writers are serialized by the database lock.
	lockIDs bool
	// partitioned expands the migrations' partitionMarker into range
	// partitioning by message ID (PostgreSQL: daily partitions that
	// retention drops whole, see partition.go); SQLite drops the marker
	// (an SQL comment) and its retention deletes rows (retention.go).
	partitioned bool
	// arrays writes Apply's statements with one array parameter a column
	// (INSERT … SELECT FROM unnest, = ANY) instead of VALUES and IN lists
	// of one parameter a value: one statement a table whatever the batch,
	// and about a fifth faster on PostgreSQL (BenchmarkApplyPostgres),
	// which parses and plans a long VALUES list row by row. SQLite has no
	// arrays.
	arrays bool
	// indexReads runs before Apply reads a batch's destinations. On
	// PostgreSQL it turns sequential scans off for the rest of the
	// transaction: a daily partition has no statistics until autovacuum
	// first analyzes it (up to a minute after its first rows, or more), and
	// without them the planner estimates half the partition for "=
	// ANY(250 IDs)" and scans it whole, a cost that grows with the day's
	// rows (6 ms a batch at 75,000 rows, measured with EXPLAIN ANALYZE).
	indexReads string
}

var dialects = map[string]dialect{
	DriverSQLite: {name: DriverSQLite, sqlDriver: "sqlite"},
	DriverPostgres: {name: DriverPostgres, numbered: true, lockIDs: true, partitioned: true, arrays: true,
		indexReads: "SET LOCAL enable_seqscan = off"},
}

// partitionMarker closes the CREATE TABLE of every table partitioned by
// message_id on PostgreSQL: `) /*partitioned*/;`. It is an SQL comment, so
// the migration is valid SQL for both backends as written; the dialect is
// the one place that knows what it becomes (expand).
const partitionMarker = "/*partitioned*/"

// createTable finds the table a CREATE TABLE statement creates.
var createTable = regexp.MustCompile(`(?i)^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)`)

// expand rewrites a migration's statements for the dialect. On PostgreSQL
// a statement carrying partitionMarker becomes PARTITION BY RANGE
// (message_id) and is followed by its DEFAULT partition, which holds IDs
// outside every daily range (IDs that are not ULIDs, and days whose
// partition did not exist yet when their rows arrived). Elsewhere the
// statements run as written: the marker is a comment.
func (d dialect) expand(stmts []string) ([]string, error) {
	if !d.partitioned {
		return stmts, nil
	}
	out := make([]string, 0, len(stmts))
	for _, st := range stmts {
		if !strings.Contains(st, partitionMarker) {
			out = append(out, st)
			continue
		}
		m := createTable.FindStringSubmatch(st)
		if m == nil {
			return nil, fmt.Errorf("%s on a statement that is not CREATE TABLE: %.40q", partitionMarker, st)
		}
		out = append(out,
			strings.Replace(st, partitionMarker, "PARTITION BY RANGE (message_id)", 1),
			"CREATE TABLE IF NOT EXISTS "+defaultPartition(m[1])+" PARTITION OF "+m[1]+" DEFAULT")
	}
	return out, nil
}

func dialectOf(driver string) (dialect, error) {
	d, ok := dialects[driver]
	if !ok {
		return dialect{}, fmt.Errorf("index driver %q: want %q or %q", driver, DriverSQLite, DriverPostgres)
	}
	return d, nil
}

// rebind turns the ? placeholders every query is written with into the
// dialect's. Queries hold no literal question marks.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sqliteDSN makes a SQLite file path into modernc's DSN with the pragmas
// the index relies on: WAL (readers never block the writer), a busy
// timeout instead of an immediate SQLITE_BUSY, NORMAL synchronous (safe in
// WAL: a crash can lose the last transactions, which the consumer re-reads
// from Kafka because it commits offsets only after Apply), a 64 MiB page
// cache and in-memory temporary tables (a batch touches many index pages),
// checkpoints every 10,000 pages instead of 1,000 with the WAL truncated
// to 64 MiB after one, reads through a 256 MiB mmap (together a third more
// throughput in BenchmarkApplySQLite), and IMMEDIATE transactions so a read-then-write Apply
// never fails upgrading its lock. A DSN that already starts with "file:"
// is taken as given.
func sqliteDSN(dsn string) string {
	if strings.HasPrefix(dsn, "file:") {
		return dsn
	}
	return "file:" + dsn + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)&_pragma=journal_size_limit(67108864)&_pragma=mmap_size(268435456)&_txlock=immediate"
}

// in is the condition "is one of ids" after a column, and its arguments:
// one array on PostgreSQL (a statement of one shape whatever the batch),
// an IN list elsewhere.
func (d dialect) in(ids []string) (string, []any) {
	if d.arrays {
		return "= ANY(?::text[])", []any{ids}
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return "IN (" + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + ")", args
}

// inChunk is how many IDs one in condition takes: an array has no limit
// worth the name; an IN list stays well below the bound parameters SQLite
// allows.
func (d dialect) inChunk() int {
	if d.arrays {
		return 1 << 30
	}
	return chunk
}
