package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/admin/api"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/standalone"
)

// The commands over the admin API (messages, dlq, replay, destinations)
// find the API and a token in this order, each on its own: flags (--api,
// --token-file), the environment (HL7BUS_API_URL, HL7BUS_TOKEN), then the
// configuration file: admin.address and the token the standalone wrote
// to <standalone.data_dir>/secrets/admin-token.
const (
	envAPIURL = "HL7BUS_API_URL"
	envToken  = "HL7BUS_TOKEN"
	// adminTokenFile is the standalone's generated admin token in its
	// secrets directory (design.md, "Contracts").
	adminTokenFile = "admin-token"
	// defaultAPIConfig is read when --config is not given, as hl7bus tail
	// does; when it does not exist the defaults stand in for it.
	defaultAPIConfig = "deploy/standalone/hl7bus.yaml"
	// apiTimeout bounds one request; the API answers from the index, and
	// a longer wait means it is stuck, not busy.
	apiTimeout = 30 * time.Second
)

// apiFlags are the flags every command over the admin API takes.
type apiFlags struct {
	api, tokenFile, tlsCA, config string
	sets                          stringList
	json                          bool
}

// register adds the flags to fs; withJSON adds --json too.
func (a *apiFlags) register(fs *flag.FlagSet, withJSON bool) {
	fs.StringVar(&a.api, "api", "", "admin API base `URL` (default: $"+envAPIURL+", else admin.address of --config)")
	fs.StringVar(&a.tokenFile, "token-file", "", "read the bearer token from `FILE` (default: $"+envToken+", else <standalone.data_dir>/secrets/admin-token of --config)")
	fs.StringVar(&a.tlsCA, "tls-ca", "", "also trust the CA certificates in `FILE` (PEM) for an https API")
	fs.StringVar(&a.config, "config", "", "configuration `FILE` naming admin.address and standalone.data_dir (default "+defaultAPIConfig+" when present)")
	fs.Var(&a.sets, "set", "override a configuration key: `KEY=VALUE` (repeatable)")
	if withJSON {
		fs.BoolVar(&a.json, "json", false, "print one JSON object per line")
	}
}

// apiTarget is where the API is and how to talk to it, with where each
// came from, so an error can say which setting to fix.
type apiTarget struct {
	URL         string
	Token       string
	URLSource   string
	TokenSource string
	// TLSCA is a PEM file of extra roots (--tls-ca).
	TLSCA string
}

// resolveAPI finds the API's URL and the token, in the order flags,
// environment (getenv), configuration file. The file is read only when a
// flag or variable leaves something open.
func resolveAPI(a apiFlags, getenv func(string) string) (apiTarget, error) {
	t := apiTarget{TLSCA: a.tlsCA}
	switch {
	case a.api != "":
		t.URL, t.URLSource = a.api, "--api"
	case getenv(envAPIURL) != "":
		t.URL, t.URLSource = getenv(envAPIURL), envAPIURL
	}
	switch {
	case a.tokenFile != "":
		tok, err := readToken(a.tokenFile)
		if err != nil {
			return t, fmt.Errorf("--token-file: %w", err)
		}
		t.Token, t.TokenSource = tok, "--token-file "+a.tokenFile
	case getenv(envToken) != "":
		t.Token, t.TokenSource = strings.TrimSpace(getenv(envToken)), envToken
	}
	if t.URL == "" || t.Token == "" {
		f, src, err := loadAPIConfig(a)
		if err != nil {
			return t, err
		}
		if t.URL == "" {
			t.URL, t.URLSource = configURL(f.Admin), "admin.address of "+src
		}
		if t.Token == "" {
			path := filepath.Join(standalone.SecretsDir(f.Standalone.DataDir), adminTokenFile)
			tok, err := readToken(path)
			if errors.Is(err, fs.ErrNotExist) {
				return t, fmt.Errorf("no admin token: give --token-file or set %s; %s does not exist (it is written by hl7bus standalone with standalone.data_dir %q)",
					envToken, path, f.Standalone.DataDir)
			}
			if err != nil {
				return t, fmt.Errorf("standalone.data_dir: %w", err)
			}
			t.Token, t.TokenSource = tok, path
		}
	}
	if _, err := url.Parse(t.URL); err != nil {
		return t, fmt.Errorf("%s: %w", t.URLSource, err)
	}
	return t, nil
}

// loadAPIConfig loads --config (with --set), or the default file when it
// exists, or the defaults alone.
func loadAPIConfig(a apiFlags) (*config.File, string, error) {
	path := a.config
	if path == "" {
		if _, err := os.Stat(defaultAPIConfig); err != nil {
			if len(a.sets) > 0 {
				return nil, "", fmt.Errorf("--set needs --config (%s does not exist)", defaultAPIConfig)
			}
			// No file: what a standalone started without one uses.
			f := &config.File{}
			f.Standalone.DataDir = "hl7bus-data"
			return f, "the defaults", nil
		}
		path = defaultAPIConfig
	}
	f, err := config.Load(path, a.sets...)
	if err != nil {
		return nil, "", err
	}
	return f, path, nil
}

// configURL is the URL of the API a configuration's admin section serves:
// https when it has a certificate, and a wildcard listen address reached
// over loopback.
func configURL(c admin.Config) string {
	addr := c.Address
	if addr == "" {
		addr = admin.DefaultAddress
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		switch host {
		case "", "0.0.0.0":
			addr = net.JoinHostPort("127.0.0.1", port)
		case "::":
			addr = net.JoinHostPort("::1", port)
		}
	}
	scheme := "http"
	if c.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + addr
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}

// apiClient is a typed client of the admin API: one method per endpoint
// the commands use, each answering the api package's types.
type apiClient struct {
	target apiTarget
	base   *url.URL
	http   *http.Client
}

func newAPIClient(t apiTarget) (*apiClient, error) {
	base, err := url.Parse(t.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("%s: %q is not an http(s) URL", t.URLSource, t.URL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", t.TLSCA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &apiClient{target: t, base: base, http: &http.Client{Transport: tr, Timeout: apiTimeout}}, nil
}

// clientFor resolves flags and environment into a client.
func clientFor(a apiFlags) (*apiClient, error) {
	t, err := resolveAPI(a, os.Getenv)
	if err != nil {
		return nil, err
	}
	return newAPIClient(t)
}

// apiError is a 4xx/5xx answer: the API's api.Error, with what the
// command needed the permission for.
type apiError struct {
	Status int
	Param  string
	Msg    string
	// Body is the answer as sent (a 409 replay answer is a plan).
	Body []byte
	// Role is the token's role, looked up after a 403.
	Role string
	// Needs says what the request needed ("read content").
	Needs string
}

func (e *apiError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the API refused the token (401 %s); check --token-file or $%s", e.Msg, envToken)
	case http.StatusForbidden:
		role := e.Role
		if role == "" {
			role = "unknown"
		}
		return fmt.Sprintf("the token's role (%s) may not %s (403)", role, e.Needs)
	}
	msg := e.Msg
	if msg == "" {
		msg = fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Param != "" {
		return e.Param + ": " + msg
	}
	return msg
}

// What each permission lets a token do, for a 403's message.
const (
	needsMetadata = "read message metadata"
	needsContent  = "read content"
	needsReplay   = "replay or discard"
	needsControl  = "pause, resume or reset destinations"
)

// do sends one request and decodes a 2xx answer into out; it answers the
// status too (the replay endpoint's 200 and 201 differ).
func (c *apiClient) do(ctx context.Context, method string, path []string, q url.Values, body, out any, needs string) (int, error) {
	esc := make([]string, len(path))
	for i, p := range path {
		esc[i] = url.PathEscape(p)
	}
	u := c.base.JoinPath(append(strings.Split(strings.TrimPrefix(api.Prefix, "/"), "/"), esc...)...)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.target.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, c.connError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer of %s %s: %w", method, u.Path, err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode, Body: raw, Needs: needs}
		var ae api.Error
		if json.Unmarshal(raw, &ae) == nil {
			e.Param, e.Msg = ae.Param, ae.Error
		}
		if e.Status == http.StatusForbidden && needs != "" {
			// The answer names no role; whoami does (any valid token may
			// ask; its own needs are "", so this does not recurse).
			var w api.Whoami
			if _, err := c.do(ctx, http.MethodGet, []string{"whoami"}, nil, nil, &w, ""); err == nil {
				e.Role = w.Role
			}
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer of %s %s: %w", method, u.Path, err)
		}
	}
	return resp.StatusCode, nil
}

// connError says, for a connection refused, that nothing listens there
// and how to start it.
func (c *apiClient) connError(err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("the admin API isn't running at %s (from %s): start it with `hl7bus standalone --config FILE` or `hl7bus admin --config FILE`, or point --api or $%s at it",
			c.target.URL, c.target.URLSource, envAPIURL)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error repeats the URL with its query, which may hold a
		// patient ID as typed: say only the underlying error and where.
		return fmt.Errorf("admin API at %s: %w", c.target.URL, ue.Err)
	}
	return fmt.Errorf("admin API at %s: %w", c.target.URL, err)
}

func (c *apiClient) messages(ctx context.Context, q url.Values) (api.MessagePage, error) {
	var p api.MessagePage
	_, err := c.do(ctx, http.MethodGet, []string{"messages"}, q, nil, &p, needsMetadata)
	return p, err
}

func (c *apiClient) message(ctx context.Context, id string, content bool) (api.MessageDetail, error) {
	var d api.MessageDetail
	q, needs := url.Values{}, needsMetadata
	if content {
		q.Set("content", "true")
		needs = needsContent
	}
	_, err := c.do(ctx, http.MethodGet, []string{"messages", id}, q, nil, &d, needs)
	return d, err
}

func (c *apiClient) deadLetters(ctx context.Context, q url.Values) (api.DeadLetterPage, error) {
	var p api.DeadLetterPage
	_, err := c.do(ctx, http.MethodGet, []string{"dead-letters"}, q, nil, &p, needsMetadata)
	return p, err
}

func (c *apiClient) discard(ctx context.Context, r api.DiscardRequest) (api.DiscardResult, error) {
	var res api.DiscardResult
	_, err := c.do(ctx, http.MethodPost, []string{"dead-letters", "discard"}, nil, r, &res, needsReplay)
	return res, err
}

// replay posts a replay request: a dry run answers the plan, a confirmed
// one the job. A 409 with a plan (warnings, no confirm_newer) answers the
// plan and the error.
func (c *apiClient) replay(ctx context.Context, r api.ReplayRequest) (*api.ReplayPlan, *api.ReplayJob, error) {
	var raw json.RawMessage
	status, err := c.do(ctx, http.MethodPost, []string{"replay-jobs"}, nil, r, &raw, needsReplay)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			var p api.ReplayPlan
			if json.Unmarshal(ae.Body, &p) == nil && len(p.Warnings) > 0 {
				return &p, nil, err
			}
		}
		return nil, nil, err
	}
	if status == http.StatusCreated {
		var j api.ReplayJob
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, nil, fmt.Errorf("decoding the replay job: %w", err)
		}
		return nil, &j, nil
	}
	var p api.ReplayPlan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, nil, fmt.Errorf("decoding the replay plan: %w", err)
	}
	return &p, nil, nil
}

func (c *apiClient) replayJobs(ctx context.Context) (api.ReplayJobList, error) {
	var l api.ReplayJobList
	_, err := c.do(ctx, http.MethodGet, []string{"replay-jobs"}, nil, nil, &l, needsMetadata)
	return l, err
}

func (c *apiClient) replayJob(ctx context.Context, id string) (api.ReplayJob, error) {
	var j api.ReplayJob
	_, err := c.do(ctx, http.MethodGet, []string{"replay-jobs", id}, nil, nil, &j, needsMetadata)
	return j, err
}

func (c *apiClient) cancelReplayJob(ctx context.Context, id string) (api.ReplayJob, error) {
	var j api.ReplayJob
	_, err := c.do(ctx, http.MethodPost, []string{"replay-jobs", id, "cancel"}, nil, struct{}{}, &j, needsReplay)
	return j, err
}

func (c *apiClient) destinations(ctx context.Context) (api.DestinationList, error) {
	var l api.DestinationList
	_, err := c.do(ctx, http.MethodGet, []string{"destinations"}, nil, nil, &l, needsMetadata)
	return l, err
}

// control posts pause or resume for a destination.
func (c *apiClient) control(ctx context.Context, name, verb string, req api.PauseRequest) (api.DestinationState, error) {
	var s api.DestinationState
	_, err := c.do(ctx, http.MethodPost, []string{"destinations", name, verb}, nil, req, &s, needsControl)
	return s, err
}

func (c *apiClient) reset(ctx context.Context, name string, to time.Time) (api.DestinationState, error) {
	var s api.DestinationState
	_, err := c.do(ctx, http.MethodPost, []string{"destinations", name, "reset"}, nil, api.ResetRequest{To: to}, &s, needsControl)
	return s, err
}

// apiCmd is what every command over the API shares: its flag set with the
// API flags, its name for messages, and its environment.
type apiCmd struct {
	name  string
	usage string
	fs    *flag.FlagSet
	flags apiFlags
	env   Env
}

// newAPICmd makes the flag set of the command "hl7bus <name>"; usage is
// printed before the flags on -h and on a usage error.
func newAPICmd(name, usage string, env Env, withJSON bool) *apiCmd {
	c := &apiCmd{name: name, usage: usage, env: env}
	c.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	c.fs.SetOutput(env.Stderr)
	c.flags.register(c.fs, withJSON)
	c.fs.Usage = func() { fmt.Fprint(env.Stderr, usage); c.fs.PrintDefaults() }
	return c
}

// parse parses flags anywhere among the arguments and answers the rest;
// ok is false (usage printed) on a bad flag.
func (c *apiCmd) parse(args []string) ([]string, bool) {
	rest, err := parseInterleaved(c.fs, args)
	return rest, err == nil
}

// usageErr says what is wrong with the command line and answers ExitUsage.
func (c *apiCmd) usageErr(format string, a ...any) int {
	fmt.Fprintf(c.env.Stderr, "hl7bus %s: %s\n\n", c.name, fmt.Sprintf(format, a...))
	c.fs.Usage()
	return ExitUsage
}

// fail prints err as "error: ..." and answers ExitInvalid.
func (c *apiCmd) fail(err error) int {
	fmt.Fprintf(c.env.Stderr, "error: %v\n", err)
	return ExitInvalid
}

func (c *apiCmd) client() (*apiClient, error) { return clientFor(c.flags) }

// apiContext is a request context ended by SIGINT/SIGTERM.
func apiContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// jsonLines writes values one JSON object per line.
type jsonLines struct{ enc *json.Encoder }

func newJSONLines(w io.Writer) jsonLines {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return jsonLines{enc}
}

func (j jsonLines) write(v any) error { return j.enc.Encode(v) }

// table writes aligned columns; cells are escaped to one line each.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(escapeLine(c), "\t", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fmtTime prints a time in RFC 3339 UTC to the second, a zero time as "-".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash prints an empty cell as "-", so columns stay readable.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time as the API does: RFC 3339, or a Go duration
// meaning that long before now ("24h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration back from now (24h)", s)
	}
	return now.Add(-d).UTC(), nil
}

// errNotTTY answers confirm when it cannot ask.
var errNotTTY = errors.New("stdin is not a terminal")

// isTerminal reports whether r is a character device (a terminal), the
// only place a question can be answered by a person.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// confirm asks question on out and reads the answer from in; only "y" or
// "yes" agree. Without a terminal it answers errNotTTY: a script must say
// --yes rather than have a pipe agree for it.
func confirm(in io.Reader, tty bool, out io.Writer, question string) (bool, error) {
	if !tty {
		return false, errNotTTY
	}
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// usageText is a command's usage without the "options:" line that
// introduces the flags, for where the flags are not printed.
func usageText(u string) string { return strings.TrimSuffix(u, "options:\n") }
