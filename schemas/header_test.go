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
