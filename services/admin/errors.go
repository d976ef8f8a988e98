package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// Errors of the HTTP layer itself (the seams' errors are in admin.go).
var (
	// ErrAuditUnavailable answers (503) an action that must be audited
	// when its audit event could not be written: the action is not done
	// and no content is returned.
	ErrAuditUnavailable = errors.New("the audit trail cannot be written; try again later")
	// ErrUnavailable answers (503) an endpoint whose part (replay,
	// control) this process does not run.
	ErrUnavailable = errors.New("not available in this process")
)

// maxBody bounds a JSON request body: every body of the API is a small
// selector or a list of IDs.
const maxBody = 1 << 20

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// The status line is gone: an encoding error (a closed connection)
	// can only be dropped.
	_ = json.NewEncoder(w).Encode(v)
}

// statusOf maps an error to its HTTP status and the api.Error body. Only
// known errors say what went wrong; anything else is a 500 whose text
// stays in the server's log, so an index or broker error never reaches a
// client.
func statusOf(err error) (int, api.Error) {
	var (
		fe  *FieldError
		rpe *ResetPendingError
	)
	switch {
	case errors.As(err, &fe):
		return http.StatusBadRequest, api.Error{Error: fe.Msg, Param: fe.Param}
	case errors.As(err, &rpe):
		// The text names the reset and its partitions, and that force
		// would drop it: what the operator needs to decide.
		return http.StatusConflict, api.Error{Error: rpe.Error(), Param: "force"}
	case errors.Is(err, ErrResetPending):
		return http.StatusConflict, api.Error{Error: ErrResetPending.Error(), Param: "force"}
	case errors.Is(err, ErrUnauthenticated):
		return http.StatusUnauthorized, api.Error{Error: ErrUnauthenticated.Error()}
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, api.Error{Error: ErrForbidden.Error()}
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, api.Error{Error: ErrNotFound.Error()}
	case errors.Is(err, ErrConfirmNewer):
		return http.StatusConflict, api.Error{Error: ErrConfirmNewer.Error(), Param: "confirm_newer"}
	case errors.Is(err, ErrNotPaused):
		return http.StatusConflict, api.Error{Error: ErrNotPaused.Error()}
	case errors.Is(err, ErrAuditUnavailable):
		return http.StatusServiceUnavailable, api.Error{Error: ErrAuditUnavailable.Error()}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, api.Error{Error: ErrUnavailable.Error()}
	}
	return http.StatusInternalServerError, api.Error{Error: "internal error"}
}

// decodeBody reads r's JSON body into v: at most maxBody bytes, unknown
// fields refused (naming them), one JSON value only.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &FieldError{Param: "body", Msg: "content type must be application/json"}
	}
	// Read whole (it is small) so that a time that does not parse can
	// be looked for again: encoding/json does not say which field a
	// time's own UnmarshalJSON refused.
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return bodyError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if fe, ok := errors.AsType[*FieldError](bodyError(err)); ok && fe.Param == "body" && isTimeError(err) {
			if path := badTime(b, reflect.TypeOf(v)); path != "" {
				fe.Param = path
			}
			return fe
		}
		return bodyError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{Param: "body", Msg: "more than one JSON value"}
	}
	return nil
}

// bodyError turns a JSON decoding error into a FieldError naming the
// field at fault. It never quotes the value.
func bodyError(err error) error {
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	switch {
	case errors.As(err, &mbe):
		return &FieldError{Param: "body", Msg: fmt.Sprintf("larger than %d bytes", maxBody)}
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			field = "body"
		}
		return &FieldError{Param: field, Msg: "must be " + jsonKind(ute.Type.Kind().String())}
	case errors.As(err, &se):
		return &FieldError{Param: "body", Msg: fmt.Sprintf("not JSON (at byte %d)", se.Offset)}
	case errors.Is(err, io.EOF):
		return &FieldError{Param: "body", Msg: "empty; a JSON object is required"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Param: "body", Msg: "truncated JSON"}
	}
	// encoding/json reports an unknown field only as text:
	// `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &FieldError{Param: strings.Trim(name, `"`), Msg: "unknown field"}
	}
	// A time that does not parse (RFC 3339 only in bodies); decodeBody
	// names its field.
	if isTimeError(err) {
		return &FieldError{Param: "body", Msg: "a time is not RFC 3339"}
	}
	return &FieldError{Param: "body", Msg: "not a valid request body"}
}

// isTimeError reports whether err is time.Time's UnmarshalJSON refusing
// its input: a text that is not RFC 3339, or not a JSON string.
func isTimeError(err error) bool {
	var pe *time.ParseError
	return errors.As(err, &pe) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON")
}

// badTime finds the first time.Time field of t (as JSON paths name it:
// selector.since, ids[2]) whose value in body does not unmarshal, "" if
// none does. It walks the body as generic JSON beside t's fields, so it
// sees what Decode saw.
func badTime(body []byte, t reflect.Type) string {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	return badTimeAt("", doc, t)
}

func badTimeAt(path string, doc any, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		b, err := json.Marshal(doc)
		if err != nil {
			return ""
		}
		var tm time.Time
		if doc != nil && tm.UnmarshalJSON(b) != nil {
			return path
		}
		return ""
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := doc.(map[string]any)
		if !ok {
			return ""
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				if p := badTimeAt(path, doc, f.Type); p != "" {
					return p
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			for k, v := range obj {
				// encoding/json matches names case-insensitively.
				if strings.EqualFold(k, name) {
					if p := badTimeAt(joinPath(path, name), v, f.Type); p != "" {
						return p
					}
				}
			}
		}
	case reflect.Slice, reflect.Array:
		list, ok := doc.([]any)
		if !ok {
			return ""
		}
		for i, v := range list {
			if p := badTimeAt(fmt.Sprintf("%s[%d]", path, i), v, t.Elem()); p != "" {
				return p
			}
		}
	}
	return ""
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "bool":
		return "true or false"
	case k == "slice", k == "array":
		return "a list"
	case k == "struct", k == "map":
		return "an object"
	}
	return "a " + k
}
