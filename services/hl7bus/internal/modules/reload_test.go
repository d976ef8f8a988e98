package modules

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// syncBuffer is a log sink the reloader's goroutine and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// reloadFixture is a configuration in a directory of its own, a Deps
// with a stage registered for reloads (it records what it is handed) and
// a running Reloader.
type reloadFixture struct {
	t       *testing.T
	path    string
	log     *syncBuffer
	tel     *telemetry.Telemetry
	deps    Deps
	got     chan *config.Compiled
	sighup  chan os.Signal
	initial *config.Compiled
}

// reloadConfig is a valid configuration: destinations a and b, one route
// to routeTo, and extra appended.
func reloadConfig(routeTo, extra string) string {
	return `registry: {url: "http://127.0.0.1:8081"}
kafka: {brokers: ["127.0.0.1:9092"]}
interfaces:
  - {name: lab-in, protocol: mllp, address: "127.0.0.1:2575"}
destinations:
  - {name: a, protocol: mllp, address: "127.0.0.1:2576"}
  - {name: b, protocol: mllp, address: "127.0.0.1:2577"}
routes:
  - {name: r, destinations: [` + routeTo + `]}
` + extra
}

func newReloadFixture(t *testing.T, debounce time.Duration, stage bool) *reloadFixture {
	t.Helper()
	return newReloadFixtureWith(t, debounce, stage, reloadConfig("a", ""))
}

// newReloadFixtureWith is newReloadFixture starting on the file body.
func newReloadFixtureWith(t *testing.T, debounce time.Duration, stage bool, body string) *reloadFixture {
	t.Helper()
	x := &reloadFixture{t: t, path: filepath.Join(t.TempDir(), "hl7bus.yaml"), log: &syncBuffer{},
		tel: telemetry.Nop(), got: make(chan *config.Compiled, 10), sighup: make(chan os.Signal, 1)}
	x.write(body)
	x.deps = NewDeps(slog.New(slog.NewTextHandler(x.log, nil)), x.tel, "test")
	// After the reloader's cleanup (cleanups run last first): its audit
	// producer.
	t.Cleanup(x.deps.Close)
	if stage {
		f, err := config.Load(x.path)
		if err != nil {
			t.Fatal(err)
		}
		if x.initial, err = x.deps.Rules(f, func(c *config.Compiled) { x.got <- c }); err != nil {
			t.Fatal(err)
		}
		if c := <-x.got; c != x.initial {
			t.Fatal("Rules did not hand the stage the rules it returned")
		}
	}
	rl, err := NewReloader(ReloadConfig{Path: x.path, Signals: x.sighup, Debounce: debounce}, x.deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rl.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return x
}

func (x *reloadFixture) write(body string) {
	x.t.Helper()
	// Write then rename, as editors and ConfigMaps do: the reloader must
	// never read half a file.
	tmp := x.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		x.t.Fatal(err)
	}
	if err := os.Rename(tmp, x.path); err != nil {
		x.t.Fatal(err)
	}
}

// next waits for the stage to be handed a configuration.
func (x *reloadFixture) next() *config.Compiled {
	x.t.Helper()
	select {
	case c := <-x.got:
		return c
	case <-time.After(10 * time.Second):
		x.t.Fatalf("no configuration applied; log:\n%s", x.log)
		return nil
	}
}

// none checks that the stage was handed nothing.
func (x *reloadFixture) none() {
	x.t.Helper()
	select {
	case c := <-x.got:
		x.t.Fatalf("configuration %s applied, want none", c.Version)
	default:
	}
}

// waitLog waits for a log line containing s.
func (x *reloadFixture) waitLog(s string) {
	x.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(x.log.String(), s) {
		if time.Now().After(deadline) {
			x.t.Fatalf("no log line %q in:\n%s", s, x.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of the series of name with label = value.
func (x *reloadFixture) metric(name, label, value string) float64 {
	x.t.Helper()
	mfs, err := x.tel.Registry.Gather()
	if err != nil {
		x.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				if mf.GetType() == dto.MetricType_COUNTER {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestReloaderFileChange: a changed file is applied (a new version to the
// stage, the metrics moved, other changed keys named as needing a
// restart); an invalid one is refused and counted, the old rules kept.
func TestReloaderFileChange(t *testing.T) {
	x := newReloadFixture(t, 50*time.Millisecond, true)
	v0 := x.initial.Version
	if x.metric("hl7bus_config_info", "config_version", v0) != 1 {
		t.Fatalf("hl7bus_config_info{config_version=%q} is not 1 at start", v0)
	}

	x.write(reloadConfig("b", "log: {level: debug}\n"))
	c := x.next()
	if c.Version == v0 || c.Route.Version != c.Version || c.Transform.Version != c.Version {
		t.Fatalf("applied version %q (route %q, transform %q), was %q", c.Version, c.Route.Version, c.Transform.Version, v0)
	}
	x.waitLog("configuration reloaded")
	x.waitLog("only a restart applies")
	x.waitLog("keys=[log]")
	if x.metric("hl7bus_config_reloads_total", "result", "applied") != 1 ||
		x.metric("hl7bus_config_info", "config_version", c.Version) != 1 ||
		x.metric("hl7bus_config_info", "config_version", v0) != 0 {
		t.Error("metrics not moved to the applied version")
	}

	// A CEL-free error Validate finds, and a destination the process did
	// not start with: both refused.
	bads := []string{
		reloadConfig("nowhere", ""),
		strings.Replace(reloadConfig("c", ""), "routes:", "  - {name: c, protocol: mllp, address: \"127.0.0.1:2578\"}\nroutes:", 1),
	}
	for i, bad := range bads {
		x.write(bad)
		deadline := time.Now().Add(10 * time.Second)
		for x.metric("hl7bus_config_reloads_total", "result", "refused") != float64(i+1) {
			if time.Now().After(deadline) {
				t.Fatalf("bad file %d not refused; log:\n%s", i, x.log)
			}
			time.Sleep(10 * time.Millisecond)
		}
		x.none()
	}
	x.waitLog(`routes[0].destinations[0]: \"nowhere\" is not a configured destination`)
	x.waitLog("a new destination needs a restart")
	if cur, _ := x.deps.rules.inForce(); cur != c {
		t.Error("a refused configuration replaced the one in force")
	}
	if x.metric("hl7bus_config_info", "config_version", c.Version) != 1 {
		t.Error("hl7bus_config_info moved on a refusal")
	}
}

// TestReloaderSIGHUP: SIGHUP reloads at once (the file watcher's debounce
// is an hour here, so only the signal can); a second one with nothing
// changed says so and applies nothing.
func TestReloaderSIGHUP(t *testing.T) {
	x := newReloadFixture(t, time.Hour, true)
	x.write(reloadConfig("a, b", ""))
	x.sighup <- syscall.SIGHUP
	c := x.next()
	if c.Version == x.initial.Version {
		t.Fatal("SIGHUP applied the same version")
	}
	x.waitLog("trigger=SIGHUP")
	x.sighup <- syscall.SIGHUP
	x.waitLog("configuration unchanged")
	x.none()
	if x.metric("hl7bus_config_reloads_total", "result", "applied") != 1 {
		t.Error("an unchanged configuration counted as applied")
	}
}

// TestReloaderNoStage: in a process without transform or route, SIGHUP
// says there is nothing to reload instead of pretending.
func TestReloaderNoStage(t *testing.T) {
	x := newReloadFixture(t, time.Hour, false)
	x.sighup <- syscall.SIGHUP
	x.waitLog("no stage of this process has rules")
}

// TestReloaderTableChange: a changed table file (in a directory of its
// own: the watcher watches each file's directory) is a new configuration
// version, applied without touching the configuration file.
func TestReloaderTableChange(t *testing.T) {
	tables := filepath.Join(t.TempDir(), "codes.csv")
	if err := os.WriteFile(tables, []byte("local_code,code\nGLU,2345-7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	x := newReloadFixture(t, 50*time.Millisecond, false)
	x.write(reloadConfig("a", "tables: [{name: codes, file: \""+tables+"\", version: \"1\"}]\n"))
	f, err := config.Load(x.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.deps.Rules(f, func(c *config.Compiled) { x.got <- c }); err != nil {
		t.Fatal(err)
	}
	v0 := x.next().Version
	// The reloader started before the file named the table: a reload
	// (of the same version: unchanged) makes it watch the table too.
	x.sighup <- syscall.SIGHUP
	x.waitLog("configuration unchanged")
	if err := os.WriteFile(tables, []byte("local_code,code\nGLU,2345-7\nK,2823-3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := x.next()
	if c.Version == v0 || c.Env.Tables()["codes"].Len() != 2 {
		t.Fatalf("table change: version %s (was %s), table %+v", c.Version, v0, c.Env.Tables()["codes"])
	}
}

// TestReloaderRuleChange: a changed interface rule reaches the stage as a
// new rule set; a rule with a bad CEL expression is refused with the key
// and column in the log, and the rules in force stay.
func TestReloaderRuleChange(t *testing.T) {
	withRules := func(rules string) string {
		return strings.Replace(reloadConfig("a", ""), `address: "127.0.0.1:2575"}`,
			`address: "127.0.0.1:2575", rules: [`+rules+`]}`, 1)
	}
	x := newReloadFixture(t, 50*time.Millisecond, false)
	x.write(withRules(`{name: receiver, set: {path: MSH-5, value: LIS}}`))
	f, err := config.Load(x.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.deps.Rules(f, func(c *config.Compiled) { x.got <- c }); err != nil {
		t.Fatal(err)
	}
	first := x.next()
	if n := first.Transform.Interfaces["lab-in"].Len(); n != 1 {
		t.Fatalf("lab-in has %d rules, want 1", n)
	}
	x.write(withRules(`{name: receiver, set: {path: MSH-5, value: LAB}}, {name: no-ssn, clear: {path: PID-19}}`))
	c := x.next()
	if c.Version == first.Version || c.Transform.Interfaces["lab-in"].Len() != 2 {
		t.Fatalf("rule change: version %s (was %s), %d rules", c.Version, first.Version, c.Transform.Interfaces["lab-in"].Len())
	}
	x.write(withRules(`{name: typo, when: "msg.type == 'ORU' && nosuch", filter: {reason: x}}`))
	x.waitLog("configuration refused")
	x.waitLog("interfaces[0].rules[0].when: column")
	x.none()
	if cur, _ := x.deps.rules.inForce(); cur != c {
		t.Error("a refused rule replaced the rules in force")
	}
}

// TestReloaderRestartKeysWarnOnce: the restart keys are those that differ
// from the file the process started with (it still runs those values), so
// every reload after one that changed log finds log again; the warning is
// logged once per distinct set of keys, not on every reload.
func TestReloaderRestartKeysWarnOnce(t *testing.T) {
	// SIGHUP reloads (the watcher's debounce is an hour), so each step
	// is one reload.
	x := newReloadFixture(t, time.Hour, true)
	const warning = "only a restart applies"
	withIface := func(body string) string {
		return strings.Replace(body, `address: "127.0.0.1:2575"`, `address: "127.0.0.1:2585"`, 1)
	}
	steps := []struct {
		name, body string
		warnings   int    // in the log after this reload
		keys       string // the keys of the last warning, when this reload warned
	}{
		{"log changed", reloadConfig("b", "log: {level: debug}\n"), 1, "keys=[log]"},
		{"same set, a rule change", reloadConfig("a, b", "log: {level: debug}\n"), 1, ""},
		{"same set again", reloadConfig("a", "log: {level: debug}\n"), 1, ""},
		{"a key more", withIface(reloadConfig("b", "log: {level: debug}\n")), 2, "keys=\"[interfaces[0] log]\""},
		{"back to the start's values", reloadConfig("a, b", ""), 2, ""},
		{"log changed again", reloadConfig("b", "log: {level: debug}\n"), 3, "keys=[log]"},
	}
	for _, st := range steps {
		x.write(st.body)
		x.sighup <- syscall.SIGHUP
		x.next() // the warning, if any, is logged before the rules are applied
		out := x.log.String()
		if n := strings.Count(out, warning); n != st.warnings {
			t.Fatalf("%s: %d warnings, want %d; log:\n%s", st.name, n, st.warnings, out)
		}
		if st.keys != "" {
			last := out[strings.LastIndex(out, warning):]
			if line, _, _ := strings.Cut(last, "\n"); !strings.Contains(line, st.keys) {
				t.Errorf("%s: warning %q lacks %s", st.name, line, st.keys)
			}
		}
	}
}

// TestReloaderAudits: an applied reload and a refused one each write a
// config.reload event to the audit topic (of the broker the running file
// names), with the versions, the trigger and the keys that changed; never
// blocking the reload.
func TestReloaderAudits(t *testing.T) {
	env := kafkatest.New(t)
	onEnv := func(body string) string {
		body = strings.Replace(body, `registry: {url: "http://127.0.0.1:8081"}`, `registry: {url: "`+env.RegistryURL+`"}`, 1)
		return strings.Replace(body, `kafka: {brokers: ["127.0.0.1:9092"]}`,
			`kafka: {brokers: ["`+strings.Join(env.Kafka.Brokers, `","`)+`"], topic_prefix: "`+env.Kafka.TopicPrefix+`"}`, 1)
	}
	x := newReloadFixtureWith(t, time.Hour, true, onEnv(reloadConfig("a", "")))
	v0 := x.initial.Version

	x.write(onEnv(reloadConfig("b", "log: {level: debug}\n")))
	x.sighup <- syscall.SIGHUP
	c := x.next()
	x.write(onEnv(reloadConfig("nowhere", "")))
	x.sighup <- syscall.SIGHUP
	x.waitLog("configuration refused")

	topic := env.Kafka.Topic(kafka.TopicAudit)
	recs := env.Read(t, topic, 2)
	dec := env.ReadDecoded(t, topic, 2)
	want := []struct{ outcome, detail string }{
		{canonical.AuditOK, "trigger=SIGHUP config_version=" + c.Version + " previous=" + v0 + " changed=[routes] restart_needed=[log]"},
		{canonical.AuditError, "trigger=SIGHUP refused; in force config_version=" + c.Version + `: routes[0].destinations[0]: "nowhere" is not a configured destination`},
	}
	for i, r := range dec {
		e, ok := r.(*canonical.AuditEvent)
		if !ok {
			t.Fatalf("record %d is %T", i, r)
		}
		if e.Action != "config.reload" || e.Actor != "system" || e.Auth != "system" || e.Service != AuditService ||
			e.Resource != "config" || e.Outcome != want[i].outcome || string(recs[i].Key) != "system" {
			t.Errorf("event %d: %+v key %q", i, e, recs[i].Key)
		}
		if !strings.HasPrefix(e.Detail, want[i].detail) {
			t.Errorf("event %d detail:\n%s\nwant it to start with\n%s", i, e.Detail, want[i].detail)
		}
	}
	if strings.Contains(x.log.String(), "cannot write a configuration reload") {
		t.Errorf("audit write failed:\n%s", x.log)
	}
}

// TestReloaderAuditFailureDoesNotBlock: with no broker, the reload is
// applied at once and the failed audit write is logged.
func TestReloaderAuditFailureDoesNotBlock(t *testing.T) {
	x := newReloadFixture(t, time.Hour, true)
	for _, to := range []string{"b", "a"} {
		x.write(reloadConfig(to, ""))
		x.sighup <- syscall.SIGHUP
		select {
		case <-x.got:
		case <-time.After(2 * time.Second):
			t.Fatalf("reload to %s waited (for the audit trail?); log:\n%s", to, x.log)
		}
	}
}

func TestReloadedKeys(t *testing.T) {
	load := func(body string) *config.File {
		t.Helper()
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	withRule := strings.Replace(reloadConfig("a", ""), `address: "127.0.0.1:2577"}`,
		`address: "127.0.0.1:2577", rules: [{name: r1, set: {path: MSH-5, value: X}}]}`, 1)
	base := load(reloadConfig("a", ""))
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"same", reloadConfig("a", ""), nil},
		{"route", reloadConfig("a, b", ""), []string{"routes"}},
		{"restart key only", reloadConfig("a", "log: {level: debug}\n"), nil},
		{"destination rules", withRule, []string{"destinations[1].rules"}},
	} {
		if got := reloadedKeys(base, load(tc.body)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
