package mapping

// SKELETON: the contract other packages build against; the tables helper
// implements it (CSV and YAML, 100,000 rows under a second, O(1) lookup).

import "errors"

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
	rows    map[string]Entry
}

// Lookup returns the entry of local code and whether the table has it.
func (t *Table) Lookup(code string) (Entry, bool) {
	e, ok := t.rows[code]
	return e, ok
}

// Len returns the number of rows.
func (t *Table) Len() int { return len(t.rows) }

// Tables are the configuration's code tables by name.
type Tables map[string]*Table

// LoadTables loads every table of specs, file paths relative to dir.
// Errors name the key (key[i].file: ...) and, for a bad row, the file
// and line.
func LoadTables(key string, specs []TableSpec, dir string) (Tables, error) {
	return nil, errors.New("mapping: LoadTables not implemented yet")
}
