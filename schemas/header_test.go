package schemas

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestHeaderRecordIsTheSameEverywhere: raw, parsed and transformed each
// spell out the Header record (Avro needs a named type defined in each
// schema that uses it), and ingress computes the header once for all
// three to carry. The copies must not drift: the same fields, types,
// defaults and docs, in the same order.
func TestHeaderRecordIsTheSameEverywhere(t *testing.T) {
	var first any
	for _, name := range []string{Raw, Parsed, Transformed} {
		h := headerRecord(t, name)
		if first == nil {
			first = h
			continue
		}
		if !reflect.DeepEqual(h, first) {
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(h)
			t.Errorf("%s.avsc's Header differs from %s.avsc's:\n%s\n%s", name, Raw, b, a)
		}
	}
	if first == nil || len(first.(map[string]any)["fields"].([]any)) != 11 {
		t.Errorf("Header has not the 11 fields canonical.Header has: %v", first)
	}
}

// headerRecord returns the type of schema name's header field, decoded
// from JSON.
func headerRecord(t *testing.T, name string) any {
	t.Helper()
	text, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Fields []struct {
			Name string `json:"name"`
			Type any    `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, f := range s.Fields {
		if f.Name == "header" {
			if r, ok := f.Type.(map[string]any); ok && r["type"] == "record" && r["name"] == "Header" {
				return r
			}
			t.Fatalf("%s: header is not the Header record: %v", name, f.Type)
		}
	}
	t.Fatalf("%s: no header field", name)
	return nil
}

// TestIssueRecordIsTheSameEverywhere: transformed.issues reuses parsed's
// Issue record (canonical.Issue is one Go type for both), spelled out
// again because Avro needs it in each schema. The copies must not drift.
func TestIssueRecordIsTheSameEverywhere(t *testing.T) {
	parsed := issueRecord(t, Parsed, "validation", "issues")
	transformed := issueRecord(t, Transformed, "issues")
	if !reflect.DeepEqual(parsed, transformed) {
		a, _ := json.Marshal(parsed)
		b, _ := json.Marshal(transformed)
		t.Errorf("transformed.avsc's Issue differs from parsed.avsc's:\n%s\n%s", b, a)
	}
	if len(parsed["fields"].([]any)) != 5 {
		t.Errorf("Issue has not the 5 fields canonical.Issue has: %v", parsed)
	}
}

// issueRecord returns the item type of the array field at path (record
// fields, from the top) of schema name, which must be the Issue record.
func issueRecord(t *testing.T, name string, path ...string) map[string]any {
	t.Helper()
	text, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var typ any = rec
	for _, p := range path {
		r, _ := typ.(map[string]any)
		fields, _ := r["fields"].([]any)
		typ = nil
		for _, f := range fields {
			if fm, _ := f.(map[string]any); fm["name"] == p {
				typ = fm["type"]
			}
		}
		if typ == nil {
			t.Fatalf("%s: no field %v", name, path)
		}
	}
	arr, _ := typ.(map[string]any)
	item, _ := arr["items"].(map[string]any)
	if arr["type"] != "array" || item["type"] != "record" || item["name"] != "Issue" {
		t.Fatalf("%s.%v is not an array of Issue: %v", name, path, typ)
	}
	return item
}
