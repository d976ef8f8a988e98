package schemas

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var release = flag.Bool("release", false, "copy the current schemas to testdata/released (when cutting a release)")

// unreleased names the schemas added since the last release: they have
// nothing on any topic to stay compatible with yet. Cutting a release
// (-release) copies them too; empty this set then.
var unreleased = map[string]bool{Decisions: true, Audit: true, Control: true, Replay: true}

// TestBackwardCompatible checks every schema against its released version
// in testdata/released: the current schema must be able to read what the
// released one wrote (Avro schema resolution), which is what BACKWARD
// compatibility means for the registry and what replaying old records needs.
func TestBackwardCompatible(t *testing.T) {
	for _, name := range All {
		cur, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", "released", name+".avsc")
		if *release {
			if err := os.WriteFile(path, []byte(cur), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(path)
		if unreleased[name] {
			if err == nil {
				t.Errorf("%s: released (%s exists) but still listed in unreleased: remove it there", name, path)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: no released version (run go test -release when releasing): %v", name, err)
		}
		if err := canRead(parseSchema(t, cur), parseSchema(t, string(old))); err != nil {
			t.Errorf("%s.avsc cannot read what the released version wrote: %v", name, err)
		}
	}
}

// TestCompatibilityRules checks the checker itself on known cases.
func TestCompatibilityRules(t *testing.T) {
	rec := func(fields string) string {
		return `{"type":"record","name":"R","fields":[` + fields + `]}`
	}
	tests := []struct {
		name, reader, writer string
		ok                   bool
	}{
		{"same", rec(`{"name":"a","type":"string"}`), rec(`{"name":"a","type":"string"}`), true},
		{"field added with default", rec(`{"name":"a","type":"string"},{"name":"b","type":"string","default":""}`), rec(`{"name":"a","type":"string"}`), true},
		{"field added without default", rec(`{"name":"a","type":"string"},{"name":"b","type":"string"}`), rec(`{"name":"a","type":"string"}`), false},
		{"field removed", rec(`{"name":"a","type":"string"}`), rec(`{"name":"a","type":"string"},{"name":"b","type":"int"}`), true},
		{"int promoted to long", rec(`{"name":"a","type":"long"}`), rec(`{"name":"a","type":"int"}`), true},
		{"long narrowed to int", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"long"}`), false},
		{"type changed", rec(`{"name":"a","type":"int"}`), rec(`{"name":"a","type":"string"}`), false},
		{"made optional", rec(`{"name":"a","type":["null","string"],"default":null}`), rec(`{"name":"a","type":"string"}`), true},
		{"made required", rec(`{"name":"a","type":"string"}`), rec(`{"name":"a","type":["null","string"],"default":null}`), false},
		{"array items", rec(`{"name":"a","type":{"type":"array","items":"long"}}`), rec(`{"name":"a","type":{"type":"array","items":"int"}}`), true},
		{"nested record field added", rec(`{"name":"h","type":{"type":"record","name":"H","fields":[{"name":"x","type":"string"},{"name":"y","type":"string"}]}}`),
			rec(`{"name":"h","type":{"type":"record","name":"H","fields":[{"name":"x","type":"string"}]}}`), false},
	}
	for _, tt := range tests {
		err := canRead(parseSchema(t, tt.reader), parseSchema(t, tt.writer))
		if (err == nil) != tt.ok {
			t.Errorf("%s: compatible = %v (%v), want %v", tt.name, err == nil, err, tt.ok)
		}
	}
}

type schema struct {
	root  any
	named map[string]any // full and short names of records defined in it
}

func parseSchema(t *testing.T, s string) *schema {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(s), &root); err != nil {
		t.Fatalf("parsing schema: %v", err)
	}
	sc := &schema{root: root, named: map[string]any{}}
	sc.collect(root)
	return sc
}

func (s *schema) collect(v any) {
	switch x := v.(type) {
	case map[string]any:
		if name, ok := x["name"].(string); ok && (x["type"] == "record" || x["type"] == "enum" || x["type"] == "fixed") {
			s.named[name] = x
			if i := strings.LastIndexByte(name, '.'); i >= 0 {
				s.named[name[i+1:]] = x
			}
		}
		for _, e := range x {
			s.collect(e)
		}
	case []any:
		for _, e := range x {
			s.collect(e)
		}
	}
}

func canRead(reader, writer *schema) error {
	return resolve(reader, reader.root, writer, writer.root, "")
}

// typeOf returns a type's kind and its definition, following named references.
func typeOf(s *schema, v any) (string, any) {
	switch x := v.(type) {
	case string:
		if def, ok := s.named[x]; ok {
			return typeOf(s, def)
		}
		return x, x
	case []any:
		return "union", x
	case map[string]any:
		k, _ := x["type"].(string)
		if def, ok := s.named[k]; ok && k != "record" {
			return typeOf(s, def)
		}
		if k != "record" && k != "array" && k != "map" && k != "enum" && k != "fixed" {
			return k, k // a primitive with a logical type
		}
		return k, x
	}
	return "", v
}

var promotions = map[string][]string{
	"int": {"long", "float", "double"}, "long": {"float", "double"}, "float": {"double"},
	"string": {"bytes"}, "bytes": {"string"},
}

func resolve(rs *schema, r any, ws *schema, w any, path string) error {
	rk, rd := typeOf(rs, r)
	wk, wd := typeOf(ws, w)
	if wk == "union" {
		for _, branch := range wd.([]any) {
			if err := resolve(rs, r, ws, branch, path); err != nil {
				return err
			}
		}
		return nil
	}
	if rk == "union" {
		for _, branch := range rd.([]any) {
			if resolve(rs, branch, ws, w, path) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: no branch of the reader's union reads %s", orRoot(path), wk)
	}
	if rk != wk {
		for _, p := range promotions[wk] {
			if p == rk {
				return nil
			}
		}
		return fmt.Errorf("%s: the reader has %s where the writer wrote %s", orRoot(path), rk, wk)
	}
	switch rk {
	case "record":
		rf, wf := fields(rd), fields(wd)
		for name, f := range rf {
			if wfield, ok := wf[name]; ok {
				if err := resolve(rs, f["type"], ws, wfield["type"], path+"."+name); err != nil {
					return err
				}
				continue
			}
			if _, ok := f["default"]; !ok {
				return fmt.Errorf("%s.%s: a field the released version does not write needs a default", orRoot(path), name)
			}
		}
	case "array":
		return resolve(rs, rd.(map[string]any)["items"], ws, wd.(map[string]any)["items"], path+"[]")
	case "map":
		return resolve(rs, rd.(map[string]any)["values"], ws, wd.(map[string]any)["values"], path+"{}")
	}
	return nil
}

func fields(def any) map[string]map[string]any {
	out := map[string]map[string]any{}
	m, _ := def.(map[string]any)
	list, _ := m["fields"].([]any)
	for _, f := range list {
		fm, _ := f.(map[string]any)
		if name, ok := fm["name"].(string); ok {
			out[name] = fm
		}
	}
	return out
}

func orRoot(p string) string {
	if p == "" {
		return "(record)"
	}
	return strings.TrimPrefix(p, ".")
}
