package mapping

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTables(t *testing.T) {
	specs := []TableSpec{
		{Name: "lab_codes", File: "lab_codes.csv", Version: "2024-03"},
		{Name: "notifiable", File: "notifiable.csv", Version: "7"},
		{Name: "lab_yaml", File: "lab_codes.yaml", Version: "1"},
	}
	tables, err := LoadTables("tables", specs, "testdata/tables")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 3 {
		t.Fatalf("%d tables", len(tables))
	}
	for _, sp := range specs {
		tb := tables[sp.Name]
		if tb == nil || tb.Name != sp.Name || tb.Version != sp.Version {
			t.Errorf("%s: %+v", sp.Name, tb)
		}
	}
	loinc := "http://loinc.org"
	for _, tc := range []struct {
		table, local string
		want         Entry
		ok           bool
	}{
		{"lab_codes", "GLU", Entry{"2345-7", loinc, "Glucose [Mass/volume] in Serum or Plasma"}, true},
		// Values are trimmed.
		{"lab_codes", "HGB", Entry{"718-7", loinc, "Hemoglobin"}, true},
		// Quoted CSV values keep their commas.
		{"lab_codes", "K,SER", Entry{"2823-3", loinc, "Potassium, serum"}, true},
		// No code: the local code itself.
		{"lab_codes", "NA", Entry{Code: "NA", Display: "Sodium"}, true},
		{"lab_codes", "XYZ", Entry{}, false},
		{"lab_codes", "glu", Entry{}, false},
		// A set: local_code only.
		{"notifiable", "94309-2", Entry{Code: "94309-2"}, true},
		{"notifiable", "2345-7", Entry{}, false},
		{"lab_yaml", "GLU", Entry{"2345-7", loinc, "Glucose [Mass/volume] in Serum or Plasma"}, true},
		{"lab_yaml", "HGB", Entry{"718-7", loinc, "Hemoglobin"}, true},
		{"lab_yaml", "NA", Entry{Code: "NA"}, true},
	} {
		got, ok := tables[tc.table].Lookup(tc.local)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s[%q] = %+v, %v; want %+v, %v", tc.table, tc.local, got, ok, tc.want, tc.ok)
		}
	}
	if n := tables["lab_codes"].Len(); n != 4 {
		t.Errorf("lab_codes has %d rows", n)
	}
	if n := tables["notifiable"].Len(); n != 3 {
		t.Errorf("notifiable has %d rows", n)
	}

	// CEL sees the loaded tables, rows in file order.
	env, err := NewEnv(tables)
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CompileString("expr", "tables.lab_codes.map(k, k + '=' + tables.lab_codes[k].code).join(';')")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.EvalString(&Vars{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "GLU=2345-7;HGB=718-7;K,SER=2823-3;NA=NA"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLoadTablesErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		specs []TableSpec
		want  string // the whole error text
	}{
		{
			name:  "duplicate and empty local codes",
			specs: []TableSpec{{Name: "a", File: "dup.csv"}},
			want: "tables[0].file: dup.csv:4: duplicate local_code \"A\" (first on line 2)\n" +
				"tables[0].file: dup.csv:5: 1 columns, the header has 2\n" +
				"tables[0].file: dup.csv:6: local_code is empty",
		},
		{
			name:  "names",
			files: map[string]string{"t.csv": "local_code\nA\n"},
			specs: []TableSpec{
				{Name: "Lab", File: "t.csv"}, {Name: "ok", File: "t.csv"}, {Name: "ok", File: "t.csv"},
				{File: "t.csv"}, {Name: "lab-codes", File: "t.csv"},
			},
			want: "tables[0].name: \"Lab\" must match [a-z][a-z0-9_]* (it is a CEL name: tables.Lab)\n" +
				"tables[2].name: table \"ok\" is already tables[1]\n" +
				"tables[3].name: required\n" +
				"tables[4].name: \"lab-codes\" must match [a-z][a-z0-9_]* (it is a CEL name: tables.lab-codes)",
		},
		{
			name:  "files",
			files: map[string]string{"t.txt": "x"},
			specs: []TableSpec{{Name: "a"}, {Name: "b", File: "t.txt"}, {Name: "c", File: "missing.csv"}},
			want: "tables[0].file: required\n" +
				"tables[1].file: t.txt: a table is a .csv, .yaml or .yml file\n" +
				"tables[2].file: missing.csv: no such file or directory",
		},
		{
			name: "csv headers",
			files: map[string]string{
				"empty.csv": "", "nolocal.csv": "code,system\n1,2\n", "typo.csv": "local_code,dispaly\nA,x\n",
				"twice.csv": "local_code,code,code\n", "quote.csv": "local_code\nA\n\"B\n",
			},
			specs: []TableSpec{
				{Name: "a", File: "empty.csv"}, {Name: "b", File: "nolocal.csv"}, {Name: "c", File: "typo.csv"},
				{Name: "d", File: "twice.csv"}, {Name: "e", File: "quote.csv"},
			},
			want: "tables[0].file: empty.csv: empty; expected a header row (local_code,code,system,display)\n" +
				"tables[1].file: nolocal.csv:1: the header has no local_code column\n" +
				"tables[2].file: typo.csv:1: unknown column \"dispaly\"; the columns are local_code, code, system, display\n" +
				"tables[3].file: twice.csv:1: column code twice\n" +
				"tables[4].file: quote.csv: line 3, column 4: extraneous or missing \" in quoted-field",
		},
		{
			name: "yaml",
			files: map[string]string{
				"list.yaml":  "- {local_code: A}\n",
				"key.yaml":   "row:\n  - {local_code: A}\n",
				"col.yml":    "rows:\n  - {local_code: A}\n  - {local_code: B, dispaly: x}\n  - {local_code: A}\n  - just-a-code\n",
				"type.yaml":  "rows:\n  - {local_code: [A]}\n",
				"none.yaml":  "",
				"rows.yaml":  "rows: {local_code: A}\n",
				"syntax.yml": "rows: [\n",
			},
			specs: []TableSpec{
				{Name: "a", File: "list.yaml"}, {Name: "b", File: "key.yaml"}, {Name: "c", File: "col.yml"},
				{Name: "d", File: "type.yaml"}, {Name: "e", File: "none.yaml"}, {Name: "f", File: "rows.yaml"},
				{Name: "g", File: "syntax.yml"},
			},
			want: "tables[0].file: list.yaml:1: expected a mapping with a rows key\n" +
				"tables[1].file: key.yaml:1: unknown key \"row\"; a table file has only a rows key\n" +
				"tables[2].file: col.yml:3: unknown key \"dispaly\"; a row has local_code, code, system, display\n" +
				"tables[2].file: col.yml:4: duplicate local_code \"A\" (first on line 2)\n" +
				"tables[2].file: col.yml:5: a row is a mapping {local_code, code, system, display}\n" +
				"tables[3].file: type.yaml:2: yaml: unmarshal errors:\n  line 2: cannot unmarshal !!seq into string\n" +
				"tables[4].file: none.yaml: empty; expected rows: [{local_code, code, system, display}]\n" +
				"tables[5].file: rows.yaml:1: rows must be a list\n" +
				"tables[6].file: syntax.yml: yaml: line 1: did not find expected node content",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := "testdata/tables"
			if tc.files != nil {
				dir = t.TempDir()
				for name, body := range tc.files {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			tables, err := LoadTables("tables", tc.specs, dir)
			if err == nil {
				t.Fatalf("loaded %v", tables)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

func TestLoadTablesErrorCap(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("local_code\n")
	for range 50 {
		b.WriteString("A\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "t.csv"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTables("tables", []TableSpec{{Name: "t", File: "t.csv"}}, dir)
	if err == nil {
		t.Fatal("loaded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != tableMaxErrors+1 || lines[0] != `tables[0].file: t.csv:3: duplicate local_code "A" (first on line 2)` ||
		lines[tableMaxErrors] != "tables[0].file: t.csv: more errors not shown" {
		t.Errorf("%d lines: %s", len(lines), err)
	}
}

// TestLoadTablesHashInto: HashInto gets the bytes each table was parsed
// from, as read (a byte-order mark included), in specs order: a
// configuration version is computed from them.
func TestLoadTablesHashInto(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bom.csv":  "\xef\xbb\xbflocal_code,code\nA,1\n",
		"set.yaml": "rows: [{local_code: X}]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	specs := []TableSpec{{Name: "bom", File: "bom.csv"}, {Name: "set", File: "set.yaml"}}
	var hashed bytes.Buffer
	tables, err := LoadTables("tables", specs, dir, HashInto(&hashed))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := tables["bom"].Lookup("A"); !ok || e.Code != "1" {
		t.Errorf("bom[A] = %+v, %v", e, ok)
	}
	// The bytes parsed, in specs order, the byte-order mark included.
	if want := "\xef\xbb\xbflocal_code,code\nA,1\n" + "rows: [{local_code: X}]\n"; hashed.String() != want {
		t.Errorf("HashInto got %q, want %q", hashed.String(), want)
	}
}

func TestLoadTablesAbsolutePath(t *testing.T) {
	abs, err := filepath.Abs("testdata/tables/notifiable.csv")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := LoadTables("tables", []TableSpec{{Name: "n", File: abs}}, "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	if tables["n"].Len() != 3 {
		t.Errorf("%d rows", tables["n"].Len())
	}
}

// writeBigTable writes a CSV table of n rows into dir and returns its
// file name.
func writeBigTable(t testing.TB, dir string, n int) string {
	t.Helper()
	var b strings.Builder
	b.Grow(n * 64)
	b.WriteString("local_code,code,system,display\n")
	for i := range n {
		fmt.Fprintf(&b, "L%06d,%d-%d,http://loinc.org,Local test number %d\n", i, 10000+i, i%10, i)
	}
	const name = "big.csv"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestLoadTable100k(t *testing.T) {
	dir := t.TempDir()
	file := writeBigTable(t, dir, 100_000)
	tables, err := LoadTables("tables", []TableSpec{{Name: "big", File: file, Version: "1"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	tb := tables["big"]
	if tb.Len() != 100_000 {
		t.Fatalf("%d rows", tb.Len())
	}
	for _, i := range []int{0, 1, 54321, 99_999} {
		e, ok := tb.Lookup(fmt.Sprintf("L%06d", i))
		want := Entry{fmt.Sprintf("%d-%d", 10000+i, i%10), "http://loinc.org", fmt.Sprintf("Local test number %d", i)}
		if !ok || e != want {
			t.Errorf("row %d: %+v, %v", i, e, ok)
		}
	}
	if _, ok := tb.Lookup("L100000"); ok {
		t.Error("L100000 found")
	}
}

// BenchmarkLoadTable100k is the bar: a 100,000-row table loads in
// under a second (docs/benchmarks.md).
func BenchmarkLoadTable100k(b *testing.B) {
	dir := b.TempDir()
	file := writeBigTable(b, dir, 100_000)
	specs := []TableSpec{{Name: "big", File: file}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := LoadTables("tables", specs, dir); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTableLookup: a hash map lookup, O(1) whatever the size.
func BenchmarkTableLookup(b *testing.B) {
	dir := b.TempDir()
	file := writeBigTable(b, dir, 100_000)
	tables, err := LoadTables("tables", []TableSpec{{Name: "big", File: file}}, dir)
	if err != nil {
		b.Fatal(err)
	}
	tb := tables["big"]
	for b.Loop() {
		if _, ok := tb.Lookup("L054321"); !ok {
			b.Fatal("miss")
		}
	}
}
