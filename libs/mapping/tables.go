package mapping

// Code tables: local code to standard code, system and display, loaded
// once per configuration into a hash map (see LoadTables).

import (
	"errors"
	"slices"
)

// Entry is what a local code maps to.
type Entry struct {
	Code    string
	System  string
	Display string
}

// Table is one loaded code table.
type Table struct {
	Name    string
	Version string
	// rows indexes entries by local code; entries keep file order so CEL
	// iterates a table (tables.x.exists(...)) deterministically, and a
	// *Entry into the slice is what CEL sees of a row without copying it.
	rows    map[string]int32
	entries []tableRow
}

// tableRow is one row: its local code and what it maps to.
type tableRow struct {
	local string
	Entry
}

// NewTable returns a table over rows (local code to entry), for callers
// and tests that build one in code; rows are ordered by local code.
func NewTable(name, version string, rows map[string]Entry) *Table {
	t := &Table{Name: name, Version: version, rows: make(map[string]int32, len(rows))}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.add(k, rows[k])
	}
	return t
}

// add appends a row; the caller has checked that local is new.
func (t *Table) add(local string, e Entry) {
	t.rows[local] = int32(len(t.entries))
	t.entries = append(t.entries, tableRow{local: local, Entry: e})
}

// Lookup returns the entry of local code and whether the table has it.
func (t *Table) Lookup(code string) (Entry, bool) {
	i, ok := t.rows[code]
	if !ok {
		return Entry{}, false
	}
	return t.entries[i].Entry, true
}

// entry returns a pointer to the row of local code, nil when absent.
func (t *Table) entry(code string) *Entry {
	i, ok := t.rows[code]
	if !ok {
		return nil
	}
	return &t.entries[i].Entry
}

// Len returns the number of rows.
func (t *Table) Len() int { return len(t.entries) }

// Tables are the configuration's code tables by name.
type Tables map[string]*Table

// LoadTables loads every table of specs, file paths relative to dir.
// Errors name the key (key[i].file: ...) and, for a bad row, the file
// and line.
func LoadTables(key string, specs []TableSpec, dir string) (Tables, error) {
	return nil, errors.New("mapping: LoadTables not implemented yet")
}
