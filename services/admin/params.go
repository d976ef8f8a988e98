package admin

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Message statuses, the design's spellings: a status query parameter
// must be one of them.
var statuses = []string{
	"received", "parsed", "filtered", "routed", "delivered", "ack_error",
	"rejected", "dead_lettered", "replayed", "partially_delivered",
}

// Page sizes of the list endpoints.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// paramType says how a query parameter is read; the OpenAPI document
// derives its schema from it.
type paramType int

const (
	paramString paramType = iota
	paramBool
	paramInt
	paramTime
	paramStatus
	paramStage
)

// param is one query parameter a route accepts.
type param struct {
	name string
	typ  paramType
	doc  string
}

// query reads a request's query parameters strictly: a parameter the
// route does not declare, one given twice, or a value that does not read
// as its type is a FieldError naming it. The first error wins; the
// getters return zero values after it.
type query struct {
	v   url.Values
	now time.Time
	err *FieldError
}

// parseQuery checks raw against the declared parameters. A malformed
// query string is a 400 too: silently dropping a half-read filter would
// widen a search.
func parseQuery(raw string, declared []param, now time.Time) *query {
	q := &query{now: now}
	v, err := url.ParseQuery(raw)
	if err != nil {
		q.err = &FieldError{Param: "query", Msg: "malformed query string"}
		return q
	}
	q.v = v
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	// Sorted, so the parameter named is the same on every try.
	slices.Sort(names)
	for _, k := range names {
		if !slices.ContainsFunc(declared, func(p param) bool { return p.name == k }) {
			q.err = &FieldError{Param: k, Msg: "unknown query parameter"}
			return q
		}
		if len(v[k]) > 1 {
			q.err = &FieldError{Param: k, Msg: "given more than once"}
			return q
		}
		if len(v[k][0]) > maxParamLen {
			q.err = &FieldError{Param: k, Msg: fmt.Sprintf("longer than %d bytes", maxParamLen)}
			return q
		}
	}
	return q
}

func (q *query) fail(name, msg string) {
	if q.err == nil {
		q.err = &FieldError{Param: name, Msg: msg}
	}
}

// str returns the parameter's value, "" when absent.
func (q *query) str(name string) string {
	if q.err != nil {
		return ""
	}
	return q.v.Get(name)
}

// boolean reads true/false (and 1/0); absent is false.
func (q *query) boolean(name string) bool {
	s := q.str(name)
	if s == "" {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.fail(name, "must be true or false")
		return false
	}
	return b
}

// limit reads a page size of 1..maxLimit, defaultLimit when absent.
func (q *query) limit(name string) int {
	s := q.str(name)
	if s == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		q.fail(name, fmt.Sprintf("must be a whole number from 1 to %d", maxLimit))
		return 0
	}
	return n
}

// status reads a message status in the design's spelling.
func (q *query) status(name string) string {
	s := q.str(name)
	if s != "" && !slices.Contains(statuses, s) {
		q.fail(name, "must be one of "+strings.Join(statuses, ", "))
		return ""
	}
	return s
}

// time reads RFC 3339 or a Go duration meaning that long before now
// ("24h"); zero when absent.
func (q *query) time(name string) time.Time {
	s := q.str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := parseTime(s, q.now)
	if err != nil {
		q.fail(name, err.Error())
	}
	return t
}

// parseTime reads RFC 3339 or a positive Go duration back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	// The value is not echoed: it is the caller's own text, but errors
	// end up in logs and the rule is no values in logs.
	return time.Time{}, fmt.Errorf("must be an RFC 3339 time or a duration back from now (24h)")
}

// maxParamLen bounds query values: an identifier longer than this is
// no identifier, and the index need not see it.
const maxParamLen = 256
