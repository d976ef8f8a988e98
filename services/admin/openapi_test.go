package admin

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the route table and the api types")

// The embedded document is what the route table and the api types
// generate: a route or a field added without regenerating fails here.
func TestOpenAPIDocumentIsCurrent(t *testing.T) {
	f := newFixture(t)
	want, err := json.MarshalIndent(openAPIDocument(f.srv.routes), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(openAPIJSON, want) {
		t.Fatalf("openapi.json is stale: go test -run TestOpenAPIDocumentIsCurrent -update")
	}
}

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Parameters []struct {
			Name   string `json:"name"`
			In     string `json:"in"`
			Schema struct {
				Type string   `json:"type"`
				Enum []string `json:"enum"`
			} `json:"schema"`
		} `json:"parameters"`
		RequestBody *struct {
			Content map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func servedDoc(t *testing.T, f *fixture) openAPIDoc {
	t.Helper()
	rec := f.do("GET", "/api/openapi.json", "", "")
	if rec.Code != 200 {
		t.Fatalf("GET /api/openapi.json = %d", rec.Code)
	}
	return decode[openAPIDoc](t, rec)
}

// Every route the mux serves is in the document and every documented
// operation reaches its route on the mux.
func TestOpenAPIMatchesTheMux(t *testing.T) {
	f := newFixture(t)
	doc := servedDoc(t, f)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			pattern := strings.ToUpper(method) + " " + path
			documented[pattern] = true
			req := httptest.NewRequest(strings.ToUpper(method), concrete(path), nil)
			if _, got := f.srv.mux.Handler(req); got != pattern {
				t.Errorf("documented %s reaches %q on the mux", pattern, got)
			}
		}
	}
	for _, rt := range f.srv.routes {
		if !documented[rt.pattern()] {
			t.Errorf("route %s is not documented", rt.pattern())
		}
		delete(documented, rt.pattern())
	}
	for p := range documented {
		t.Errorf("documented %s is no route", p)
	}
}

// Each documented query parameter is one its handler accepts: a request
// with a valid value is not refused naming it.
func TestOpenAPIQueryParametersAreAccepted(t *testing.T) {
	f := newFixture(t)
	doc := servedDoc(t, f)
	valid := func(typ string, enum []string) string {
		switch {
		case len(enum) > 0:
			return enum[0]
		case typ == "boolean":
			return "true"
		case typ == "integer":
			return "10"
		}
		return "2026-03-01T00:00:00Z" // a string that is also a time
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, p := range op.Parameters {
				if p.In != "query" {
					continue
				}
				n++
				target := concrete(path) + "?" + p.Name + "=" + valid(p.Schema.Type, p.Schema.Enum)
				if p.Name == "patient_authority" {
					target += "&patient_id=1"
				}
				rec := f.do(strings.ToUpper(method), target, "admin", "")
				if rec.Code == http.StatusBadRequest {
					e := decode[api.Error](t, rec)
					t.Errorf("%s %s: refused (%+v)", method, target, e)
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d query parameters documented", n)
	}
}

// The request and answer schemas are the api types' JSON fields.
func TestOpenAPISchemas(t *testing.T) {
	doc := servedDoc(t, newFixture(t))
	s := doc.Components.Schemas
	detail := s["MessageDetail"]
	for _, field := range []string{"message_id", "records", "decisions", "deliveries", "dead_letters", "destinations"} {
		if _, ok := detail.Properties[field]; !ok {
			t.Errorf("MessageDetail lacks %s (embedded Message flattened)", field)
		}
	}
	if _, ok := s["Delivery"].Properties["error"]; ok {
		t.Errorf("Delivery documents an error text")
	}
	if !slices.Contains(s["Error"].Required, "error") || slices.Contains(s["Error"].Required, "param") {
		t.Errorf("Error required = %v", s["Error"].Required)
	}
	op := doc.Paths[api.Prefix+"/replay-jobs"]["post"]
	if op.RequestBody == nil || op.RequestBody.Content["application/json"].Schema["$ref"] != "#/components/schemas/ReplayRequest" {
		t.Errorf("replay request body = %+v", op.RequestBody)
	}
	for _, code := range []string{"200", "201", "409", "400", "401", "403"} {
		if _, ok := op.Responses[code]; !ok {
			t.Errorf("POST /replay-jobs documents no %s", code)
		}
	}
	if _, ok := doc.Paths[api.Prefix+"/messages/{id}"]["get"].Responses["403"]; !ok {
		t.Errorf("content=true's 403 undocumented")
	}
}
