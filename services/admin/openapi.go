package admin

import (
	_ "embed"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// openAPIJSON is the API's OpenAPI 3.1 document. It is generated from the
// route table and the api types (openAPIDocument) and checked in; the
// test fails when it is stale (go test -run TestOpenAPI -update rewrites
// it), so the document served is reviewed like code.
//
//go:embed openapi.json
var openAPIJSON []byte

// serveOpenAPI serves the document (no token needed: it says what the
// API is, nothing of what it holds).
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIJSON)
}

// openAPIDocument builds the OpenAPI 3.1 document of routes, with the
// schemas of the api types they read and answer.
func openAPIDocument(routes []*route) map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]any{}
	for _, rt := range routes {
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		item[strings.ToLower(rt.method)] = g.operation(rt)
	}
	g.ref(reflect.TypeFor[api.Error]())
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "hl7bus admin API",
			"version": "1",
			"description": "Search messages, read their journey (and, for roles allowed to, their content), " +
				"dead letters, replay jobs, destination control, interfaces and the audit trail. " +
				"Every request but /healthz and this document needs a bearer token (an hl7bus token or an OIDC token). " +
				"Unknown query parameters and body fields are refused with 400 naming them.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// operation is one route's OpenAPI operation.
func (g *schemaGen) operation(rt *route) map[string]any {
	op := map[string]any{
		"summary":     rt.summary,
		"operationId": operationID(rt),
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
		params = append(params, map[string]any{
			"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"},
		})
	}
	for _, p := range rt.query {
		params = append(params, map[string]any{
			"name": p.name, "in": "query", "required": false, "description": p.doc, "schema": paramSchema(p.typ),
		})
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.body != nil {
		op["requestBody"] = map[string]any{
			"required": true,
			"content":  map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.body))}},
		}
	}
	responses := map[string]any{}
	for _, a := range rt.answers {
		responses[strconv.Itoa(a.code)] = map[string]any{
			"description": a.desc,
			"content":     map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(a.body))}},
		}
	}
	errResp := func(code int, desc string) {
		if _, ok := responses[strconv.Itoa(code)]; ok {
			return
		}
		responses[strconv.Itoa(code)] = map[string]any{
			"description": desc,
			"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}},
		}
	}
	switch {
	case rt.path == "/healthz":
		responses["200"] = map[string]any{"description": "alive", "content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}
	case rt.path == "/api/openapi.json":
		responses["200"] = map[string]any{"description": "this document", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
	}
	if rt.public {
		op["security"] = []any{}
	} else {
		errResp(400, "a query parameter or body field is unknown or bad (param names it)")
		errResp(401, "no valid bearer token")
		if rt.perm != "" || slices.ContainsFunc(rt.query, func(p param) bool { return p.name == "content" }) {
			errResp(403, "the token's role lacks the permission (audited)")
		}
		if strings.Contains(rt.path, "{") {
			errResp(404, "no such resource")
		}
		errResp(503, "a part this endpoint needs (the audit trail, replay, control) is unavailable")
		if rt.perm != "" {
			op["x-permission"] = string(rt.perm)
		}
	}
	op["responses"] = responses
	return op
}

// operationID is a stable camel-case name of a route.
func operationID(rt *route) string {
	words := []string{strings.ToLower(rt.method)}
	for _, seg := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(rt.path, api.Prefix), "/api"), "/") {
		seg = strings.Trim(seg, "{}")
		for _, w := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			words = append(words, strings.ToUpper(w[:1])+w[1:])
		}
	}
	return strings.Join(words, "")
}

// paramSchema is a query parameter's schema.
func paramSchema(t paramType) map[string]any {
	switch t {
	case paramBool:
		return map[string]any{"type": "boolean"}
	case paramInt:
		return map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit, "default": defaultLimit}
	case paramTime:
		return map[string]any{"type": "string", "description": "RFC 3339, or a Go duration back from now", "examples": []any{"2026-01-02T15:04:05Z", "24h"}}
	case paramStatus:
		return map[string]any{"type": "string", "enum": statuses}
	case paramStage:
		return map[string]any{"type": "string", "enum": deadLetterStages}
	}
	return map[string]any{"type": "string"}
}

// schemaGen makes JSON schemas of Go types, each named struct once under
// components/schemas.
type schemaGen struct {
	defs map[string]any
}

// ref is t's schema: a $ref for a named struct (defining it on first
// use), inline otherwise.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]() {
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // placeholder: recursive types stop here
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return g.schema(t)
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t.Kind() {
	case reflect.Pointer:
		return g.ref(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Interface:
		return map[string]any{"description": "any JSON value"}
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return map[string]any{"type": "string", "format": "date-time"}
		}
		return g.ref(t)
	}
	return map[string]any{}
}

// object is a struct's schema, following encoding/json: embedded structs
// flattened, omitempty/omitzero fields optional, the rest required.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.schema(f.Type)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := map[string]any{"type": "object", "properties": props}
	if required != nil {
		slices.Sort(required)
		out["required"] = required
	}
	return out
}
