package mapping

// Code tables: local code to standard code, system and display, loaded
// once per configuration into a hash map (see LoadTables).

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
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

// lookupBytes is Lookup of a code given as bytes, without making a string
// of it (the map index converts in place).
func (t *Table) lookupBytes(code []byte) (Entry, bool) {
	i, ok := t.rows[string(code)]
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
// and line. Every problem is reported at once.
//
// A .csv file has a header row naming its columns: local_code (required),
// code, system and display (optional, in any order; no others). A row
// without a code is a member of a set: its code is its local code. A
// .yaml or .yml file is {rows: [{local_code, code, system, display}]}.
// Values are trimmed of surrounding spaces; a UTF-8 byte-order mark
// (spreadsheet exports) is ignored; a local code may appear once.
func LoadTables(key string, specs []TableSpec, dir string, opts ...LoadOption) (Tables, error) {
	var o loadOptions
	for _, opt := range opts {
		opt(&o)
	}
	out := make(Tables, len(specs))
	first := make(map[string]int, len(specs))
	var errs []error
	for i, sp := range specs {
		at := fmt.Sprintf("%s[%d]", key, i)
		nameOK := true
		switch {
		case sp.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", at))
			nameOK = false
		case !validTableName(sp.Name):
			errs = append(errs, fmt.Errorf("%s.name: %q must match [a-z][a-z0-9_]* (it is a CEL name: tables.%s)", at, sp.Name, sp.Name))
			nameOK = false
		default:
			if j, dup := first[sp.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: table %q is already %s[%d]", at, sp.Name, key, j))
				nameOK = false
			} else {
				first[sp.Name] = i
			}
		}
		t, err := loadTable(sp, dir, o.hash)
		if err != nil {
			// One error per bad row, each naming the key.
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					errs = append(errs, fmt.Errorf("%s.file: %w", at, e))
				}
			} else {
				errs = append(errs, fmt.Errorf("%s.file: %w", at, err))
			}
			continue
		}
		if nameOK {
			out[sp.Name] = t
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// tableFileLimit bounds a table file: tables are shipped with the
// configuration and read whole; 256 MiB is far above 100,000 rows.
const tableFileLimit = 256 << 20

// LoadOption changes how LoadTables loads.
type LoadOption func(*loadOptions)

type loadOptions struct {
	hash io.Writer
}

// HashInto makes LoadTables write each table file's bytes, exactly as it
// read and parsed them (a byte-order mark included), to w in the order of
// specs: a configuration version hashed from them names the tables in
// force, never a later read of a file that may have changed since, and
// nothing keeps the bytes once they are parsed. Default: none.
func HashInto(w io.Writer) LoadOption {
	return func(o *loadOptions) { o.hash = w }
}

func loadTable(sp TableSpec, dir string, hash io.Writer) (*Table, error) {
	if sp.File == "" {
		return nil, errors.New("required")
	}
	path := sp.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	var load func(t *Table, file string, data []byte) error
	switch strings.ToLower(filepath.Ext(sp.File)) {
	case ".csv":
		load = loadTableCSV
	case ".yaml", ".yml":
		load = loadTableYAML
	default:
		return nil, fmt.Errorf("%s: a table is a .csv, .yaml or .yml file", sp.File)
	}
	f, err := os.Open(path)
	if err != nil {
		// The PathError's own text repeats the joined path; the key and
		// sp.File already say which file.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", sp.File, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, tableFileLimit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sp.File, err)
	}
	if len(data) > tableFileLimit {
		return nil, fmt.Errorf("%s: larger than %d MiB", sp.File, tableFileLimit>>20)
	}
	if hash != nil {
		_, _ = hash.Write(data)
	}
	t := &Table{Name: sp.Name, Version: sp.Version, rows: make(map[string]int32)}
	if err := load(t, sp.File, bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))); err != nil {
		return nil, err
	}
	return t, nil
}

// tableLoader adds rows, remembering each one's line for the error of a
// duplicate.
type tableLoader struct {
	t     *Table
	file  string
	lines []int32
	errs  []error
}

// tableMaxErrors caps the row errors of one file: a file in the wrong
// format would otherwise list every line.
const tableMaxErrors = 10

func (l *tableLoader) fail(line int, format string, args ...any) {
	if len(l.errs) == tableMaxErrors {
		l.errs = append(l.errs, fmt.Errorf("%s: more errors not shown", l.file))
	}
	if len(l.errs) > tableMaxErrors {
		return
	}
	l.errs = append(l.errs, fmt.Errorf("%s:%d: %s", l.file, line, fmt.Sprintf(format, args...)))
}

func (l *tableLoader) add(line int, local string, e Entry) {
	local = strings.TrimSpace(local)
	e.Code, e.System, e.Display = strings.TrimSpace(e.Code), strings.TrimSpace(e.System), strings.TrimSpace(e.Display)
	if local == "" {
		l.fail(line, "local_code is empty")
		return
	}
	if i, dup := l.t.rows[local]; dup {
		l.fail(line, "duplicate local_code %q (first on line %d)", local, l.lines[i])
		return
	}
	if e.Code == "" {
		e.Code = local
	}
	l.t.add(local, e)
	l.lines = append(l.lines, int32(line))
}

func (l *tableLoader) err() error { return errors.Join(l.errs...) }

// tableColumns are the CSV columns a table may have.
var tableColumns = []string{"local_code", "code", "system", "display"}

func loadTableCSV(t *Table, file string, data []byte) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty; expected a header row (local_code,code,system,display)", file)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, celCSVError(err))
	}
	col := [4]int{-1, -1, -1, -1}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		k := slices.Index(tableColumns, h)
		switch {
		case k < 0:
			return fmt.Errorf("%s:1: unknown column %q; the columns are local_code, code, system, display", file, h)
		case col[k] >= 0:
			return fmt.Errorf("%s:1: column %s twice", file, h)
		}
		col[k] = i
	}
	if col[0] < 0 {
		return fmt.Errorf("%s:1: the header has no local_code column", file)
	}
	// Sized by the line count so a big table's map is built without
	// growing (counting newlines is far cheaper than rehashing).
	n := bytes.Count(data, []byte{'\n'}) + 1
	t.rows = make(map[string]int32, n)
	t.entries = make([]tableRow, 0, n)
	l := &tableLoader{t: t, file: file, lines: make([]int32, 0, n)}
	get := func(rec []string, k int) string {
		if col[k] < 0 {
			return ""
		}
		return rec[col[k]]
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && pe.Err == csv.ErrFieldCount {
				l.fail(pe.StartLine, "%d columns, the header has %d", len(rec), len(header))
				continue
			}
			return errors.Join(l.err(), fmt.Errorf("%s: %w", file, celCSVError(err)))
		}
		line, _ := r.FieldPos(0)
		l.add(line, rec[col[0]], Entry{Code: get(rec, 1), System: get(rec, 2), Display: get(rec, 3)})
	}
	return l.err()
}

// celCSVError formats a CSV error as line N: why (the caller adds the
// file name in front).
func celCSVError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return err
}

// tableYAMLRow is one row of a YAML table.
type tableYAMLRow struct {
	LocalCode string `yaml:"local_code"`
	Code      string `yaml:"code"`
	System    string `yaml:"system"`
	Display   string `yaml:"display"`
}

func loadTableYAML(t *Table, file string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return fmt.Errorf("%s: empty; expected rows: [{local_code, code, system, display}]", file)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: expected a mapping with a rows key", file, root.Line)
	}
	var rows *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "rows" {
			return fmt.Errorf("%s:%d: unknown key %q; a table file has only a rows key", file, k.Line, k.Value)
		}
		rows = v
	}
	if rows == nil {
		return fmt.Errorf("%s: no rows key", file)
	}
	if rows.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: rows must be a list", file, rows.Line)
	}
	t.rows = make(map[string]int32, len(rows.Content))
	t.entries = make([]tableRow, 0, len(rows.Content))
	l := &tableLoader{t: t, file: file, lines: make([]int32, 0, len(rows.Content))}
	for _, n := range rows.Content {
		if n.Kind != yaml.MappingNode {
			l.fail(n.Line, "a row is a mapping {local_code, code, system, display}")
			continue
		}
		var r tableYAMLRow
		if key, ok := tableYAMLUnknown(n); !ok {
			l.fail(key.Line, "unknown key %q; a row has local_code, code, system, display", key.Value)
			continue
		}
		if err := n.Decode(&r); err != nil {
			l.fail(n.Line, "%v", err)
			continue
		}
		l.add(n.Line, r.LocalCode, Entry{Code: r.Code, System: r.System, Display: r.Display})
	}
	return l.err()
}

// tableYAMLUnknown returns the first key of row that is not a column,
// and false, or true when there is none.
func tableYAMLUnknown(row *yaml.Node) (*yaml.Node, bool) {
	for i := 0; i < len(row.Content); i += 2 {
		if !slices.Contains(tableColumns, row.Content[i].Value) {
			return row.Content[i], false
		}
	}
	return nil, true
}
