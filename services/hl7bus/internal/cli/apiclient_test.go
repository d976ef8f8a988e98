package cli

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin/api"
)

// fakeAPI is an httptest server standing in for the admin API: it records
// each request and answers the canned body of "METHOD /path" (path under
// /api/v1).
type fakeAPI struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu      sync.Mutex
	answers map[string][]fakeAnswer
	got     []fakeRequest
}

type fakeAnswer struct {
	status int
	body   any
	// query, when set, must match the request's for this answer (pages).
	query string
	// body, when set, must accept the request's body.
	match func([]byte) bool
}

type fakeRequest struct {
	Method, Path string
	Query        url.Values
	Body         []byte
	Auth         string
}

const fakeToken = "hl7b_ABCDEFGH_secret"

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, token: fakeToken, answers: map[string][]fakeAnswer{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// on adds an answer for method and path (under /api/v1).
func (f *fakeAPI) on(method, path string, status int, body any) *fakeAPI {
	return f.onQuery(method, path, "", status, body)
}

// onBody adds an answer given only when match accepts the request body.
func (f *fakeAPI) onBody(method, path string, match func([]byte) bool, status int, body any) *fakeAPI {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := method + " " + path
	f.answers[k] = append(f.answers[k], fakeAnswer{status: status, body: body, match: match})
	return f
}

// onQuery adds an answer given only when the query encodes to query.
func (f *fakeAPI) onQuery(method, path, query string, status int, body any) *fakeAPI {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := method + " " + path
	f.answers[k] = append(f.answers[k], fakeAnswer{status: status, body: body, query: query})
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.EscapedPath(), api.Prefix)
	f.mu.Lock()
	f.got = append(f.got, fakeRequest{Method: r.Method, Path: path, Query: r.URL.Query(), Body: body, Auth: r.Header.Get("Authorization")})
	answers := f.answers[r.Method+" "+path]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	want := "Bearer " + f.token
	f.mu.Unlock()
	if r.Header.Get("Authorization") != want {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(api.Error{Error: "invalid token"})
		return
	}
	for _, a := range answers {
		if a.query != "" && a.query != r.URL.Query().Encode() {
			continue
		}
		if a.match != nil && !a.match(body) {
			continue
		}
		w.WriteHeader(a.status)
		_ = json.NewEncoder(w).Encode(a.body)
		return
	}
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(api.Error{Error: "no fake answer for " + r.Method + " " + path + "?" + r.URL.RawQuery})
}

// requests returns what the fake received.
func (f *fakeAPI) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.got...)
}

// last returns the last request, failing the test when there was none.
func (f *fakeAPI) last() fakeRequest {
	f.t.Helper()
	got := f.requests()
	if len(got) == 0 {
		f.t.Fatal("the fake API got no request")
	}
	return got[len(got)-1]
}

// args prefixes a command line with the flags that reach the fake.
func (f *fakeAPI) args(cmd ...string) []string {
	f.t.Helper()
	tok := filepath.Join(f.t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(f.token+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return append(cmd, "--api", f.srv.URL, "--token-file", tok)
}

// decodeBody decodes a request body into v, failing the test otherwise.
func decodeBody(t *testing.T, r fakeRequest, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%s %s body %q: %v", r.Method, r.Path, r.Body, err)
	}
}

// jsonLinesOf parses out as JSON lines into maps.
func jsonLinesOf(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", l, err)
		}
		rows = append(rows, m)
	}
	return rows
}

func TestResolveAPIPrecedence(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagTok := write("flag-token", "tok-flag\n")
	data := filepath.Join(dir, "data")
	write("data/secrets/admin-token", "tok-file\n")
	cfg := write("hl7bus.yaml", "standalone: {data_dir: "+data+"}\nadmin: {address: 127.0.0.1:7001}\n")
	tlsCfg := write("tls.yaml", "standalone: {data_dir: "+data+"}\nadmin: {address: 0.0.0.0:7002, tls: {cert_file: c.pem, key_file: k.pem}}\n")
	env := map[string]string{envAPIURL: "http://env:1", envToken: "tok-env"}
	getenv := func(k string) string { return env[k] }
	none := func(string) string { return "" }
	tests := []struct {
		name           string
		flags          apiFlags
		getenv         func(string) string
		url, token     string
		urlSrc, tokSrc string
	}{
		{"flags win over env", apiFlags{api: "http://flag:1", tokenFile: flagTok, config: cfg}, getenv, "http://flag:1", "tok-flag", "--api", "--token-file " + flagTok},
		{"env wins over config", apiFlags{config: cfg}, getenv, "http://env:1", "tok-env", envAPIURL, envToken},
		{"config alone", apiFlags{config: cfg}, none, "http://127.0.0.1:7001", "tok-file", "admin.address of " + cfg, filepath.Join(data, "secrets", "admin-token")},
		{"each on its own", apiFlags{api: "http://flag:1", config: cfg}, none, "http://flag:1", "tok-file", "--api", filepath.Join(data, "secrets", "admin-token")},
		{"--set overrides the file", apiFlags{config: cfg, sets: stringList{"admin.address=127.0.0.1:7003"}}, none, "http://127.0.0.1:7003", "tok-file", "admin.address of " + cfg, filepath.Join(data, "secrets", "admin-token")},
		{"tls means https; wildcard means loopback", apiFlags{config: tlsCfg}, none, "https://127.0.0.1:7002", "tok-file", "admin.address of " + tlsCfg, filepath.Join(data, "secrets", "admin-token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveAPI(tt.flags, tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != tt.url || got.Token != tt.token || got.URLSource != tt.urlSrc || got.TokenSource != tt.tokSrc {
				t.Errorf("got %s (%s) token %s (%s), want %s (%s) token %s (%s)", got.URL, got.URLSource, got.Token, got.TokenSource,
					tt.url, tt.urlSrc, tt.token, tt.tokSrc)
			}
		})
	}
}

func TestResolveAPIErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("standalone: {data_dir: "+filepath.Join(dir, "nodata")+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	none := func(string) string { return "" }
	tests := []struct {
		name  string
		flags apiFlags
		want  string
	}{
		{"no token anywhere", apiFlags{config: cfg}, "no admin token: give --token-file or set HL7BUS_TOKEN; " + filepath.Join(dir, "nodata", "secrets", "admin-token") + " does not exist"},
		{"missing token file", apiFlags{api: "http://x:1", tokenFile: filepath.Join(dir, "nope")}, "--token-file: open "},
		{"empty token file", apiFlags{api: "http://x:1", tokenFile: empty}, "is empty"},
		{"missing config", apiFlags{config: filepath.Join(dir, "nope.yaml")}, "reading configuration"},
		{"--set without a file", apiFlags{sets: stringList{"admin.address=x:1"}}, "--set needs --config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveAPI(tt.flags, none)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// The environment reaches the commands themselves, not only resolveAPI.
func TestCommandsReadEnvironment(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/destinations", 200, api.DestinationList{Destinations: []api.DestinationState{{Name: "lis", State: "running"}}})
	t.Setenv(envAPIURL, f.srv.URL)
	t.Setenv(envToken, fakeToken)
	code, out, errb := run(t, "", "destinations", "list")
	if code != ExitOK {
		t.Fatalf("code %d: %s", code, errb)
	}
	if !strings.Contains(out, "lis") {
		t.Errorf("out %q", out)
	}
	if a := f.last().Auth; a != "Bearer "+fakeToken {
		t.Errorf("Authorization %q", a)
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET", "/messages", 400, api.Error{Error: `unknown parameter`, Param: "colour"})
	f.on("GET", "/messages/M1", 403, api.Error{Error: "forbidden"})
	f.on("GET", "/whoami", 200, api.Whoami{Actor: "alice", Role: "viewer", Auth: "token"})
	f.on("POST", "/destinations/lis/pause", 403, api.Error{Error: "forbidden"})
	f.on("POST", "/destinations/lis/reset", 409, api.Error{Error: "destination lis is not paused", Param: "name"})
	f.on("GET", "/replay-jobs", 500, "not json")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"400 names the parameter", f.args("messages", "find", "--control-id", "X"), "error: colour: unknown parameter\n"},
		{"403 says the role and what it may not do", f.args("messages", "show", "M1", "--content"), "error: the token's role (viewer) may not read content (403)\n"},
		{"403 for control", f.args("destinations", "pause", "lis"), "error: the token's role (viewer) may not pause, resume or reset destinations (403)\n"},
		{"409 message", f.args("destinations", "reset", "lis", "--to", "1h"), "error: name: destination lis is not paused\n"},
		{"5xx without a body", f.args("replay", "jobs"), "error: 500 Internal Server Error\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errb := run(t, "", tt.args...)
			if code != ExitInvalid || errb != tt.want || out != "" {
				t.Errorf("code %d out %q stderr %q, want 1 and %q", code, out, errb, tt.want)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	f := newFakeAPI(t)
	args := f.args("replay", "jobs")
	f.mu.Lock()
	f.token = "another" // the server now expects another token than the file's
	f.mu.Unlock()
	code, _, errb := run(t, "", args...)
	if code != ExitInvalid || !strings.Contains(errb, "error: the API refused the token (401 invalid token); check --token-file or $HL7BUS_TOKEN") {
		t.Errorf("code %d stderr %q", code, errb)
	}
}

func TestConnectionRefused(t *testing.T) {
	// A port nothing listens on: take one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tok := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(tok, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errb := run(t, "", "messages", "find", "--api", "http://"+addr, "--token-file", tok, "--patient-id", "SECRET-PID")
	want := "error: the admin API isn't running at http://" + addr + " (from --api): start it with `hl7bus standalone --config FILE` or `hl7bus admin --config FILE`"
	if code != ExitInvalid || !strings.HasPrefix(errb, want) {
		t.Errorf("code %d stderr %q", code, errb)
	}
	if strings.Contains(errb, "SECRET-PID") {
		t.Errorf("the error repeats the patient ID: %q", errb)
	}
}

func TestTLSCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(api.ReplayJobList{Jobs: []api.ReplayJob{{ID: "J1", State: "done"}}})
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "tok")
	if err := os.WriteFile(tok, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server's certificate is unknown.
	code, _, errb := run(t, "", "replay", "jobs", "--api", srv.URL, "--token-file", tok)
	if code != ExitInvalid || !strings.Contains(errb, "certificate") {
		t.Errorf("without --tls-ca: code %d stderr %q", code, errb)
	}
	code, out, errb := run(t, "", "replay", "jobs", "--api", srv.URL, "--token-file", tok, "--tls-ca", ca)
	if code != ExitOK || !strings.Contains(out, "J1") {
		t.Errorf("with --tls-ca: code %d out %q stderr %q", code, out, errb)
	}
	if code, _, errb := run(t, "", "replay", "jobs", "--api", srv.URL, "--token-file", tok, "--tls-ca", tok); code != ExitInvalid || !strings.Contains(errb, "holds no PEM certificate") {
		t.Errorf("bad --tls-ca: code %d stderr %q", code, errb)
	}
}

func TestParseWhen(t *testing.T) {
	now := mustTime(t, "2026-03-01T12:00:00Z")
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "2026-02-01T08:30:00+01:00", want: "2026-02-01T07:30:00Z"},
		{in: "24h", want: "2026-02-28T12:00:00Z"},
		{in: "90m", want: "2026-03-01T10:30:00Z"},
		{in: "yesterday", bad: true},
		{in: "-1h", bad: true},
	}
	for _, tt := range tests {
		got, err := parseWhen(tt.in, now)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: no error", tt.in)
			}
			continue
		}
		if err != nil || fmtTime(got) != tt.want {
			t.Errorf("%q: %v %v, want %s", tt.in, fmtTime(got), err, tt.want)
		}
	}
}

func TestConfirm(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		tty   bool
		agree bool
		err   error
	}{
		{"yes", "yes\n", true, true, nil},
		{"y", "Y\n", true, true, nil},
		{"no", "n\n", true, false, nil},
		{"empty", "\n", true, false, nil},
		{"eof", "", true, false, nil},
		{"not a terminal", "yes\n", false, false, errNotTTY},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			agree, err := confirm(strings.NewReader(tt.in), tt.tty, &out, "start?")
			if agree != tt.agree || err != tt.err {
				t.Errorf("got %v %v, want %v %v", agree, err, tt.agree, tt.err)
			}
			if tt.tty && out.String() != "start? [y/N] " {
				t.Errorf("asked %q", out.String())
			}
		})
	}
	if isTerminal(strings.NewReader("")) {
		t.Error("a strings.Reader is a terminal")
	}
}

func TestHelpListsAPICommands(t *testing.T) {
	code, out, _ := run(t, "", "help")
	if code != ExitOK {
		t.Fatalf("code %d", code)
	}
	for _, c := range []string{"messages", "dlq", "replay", "destinations"} {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help does not list %s:\n%s", c, out)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
