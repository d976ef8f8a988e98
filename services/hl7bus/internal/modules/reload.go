package modules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// DefaultReloadDebounce is how long the files must be quiet after a change
// before the reloader reads them: an editor's save, or Kubernetes swapping
// a ConfigMap, is several events, and the tables and the file that names
// them often change together.
const DefaultReloadDebounce = 500 * time.Millisecond

// configMapData is the name of the symbolic link Kubernetes swaps when a
// mounted ConfigMap changes: the files keep their names (links into it),
// so only an event on this one says they changed.
const configMapData = "..data"

// ReloadConfig configures a Reloader.
type ReloadConfig struct {
	// Path is the configuration file and Overrides the --set flags the
	// process loaded it with; every reload loads it the same way.
	Path      string
	Overrides []string
	// Prepare does to each loaded file what the command did before it
	// validated it (flags over keys, the standalone's addresses), and may
	// refuse it. nil: nothing.
	Prepare func(*config.File) error
	// Signals delivers SIGHUP (the command passes signal.Notify's
	// channel; tests their own). Each one reloads at once.
	Signals <-chan os.Signal
	// Debounce is the quiet time after a file change before the reload.
	// Default (0) DefaultReloadDebounce.
	Debounce time.Duration
}

// Reloader reloads the rules, tables and routes of the stages of this
// process (those that took them through Deps.Rules) on SIGHUP and when
// the configuration file or a table file changes: it loads, validates and
// compiles the file again, and on success hands the result to every
// stage's SetRules (records in flight finish on the old rules); on
// failure it logs the errors, counts a refusal and the old rules keep
// running. Keys other than rules, tables and routes take a restart: a
// reload names those that differ from the file the process started with
// (once per distinct set of them) and ignores them.
type Reloader struct {
	cfg     ReloadConfig
	deps    Deps
	rules   *lazyRules
	log     *slog.Logger
	metrics reloadMetrics
	// baseline is the file as the process started with it, prepared like
	// every reload, to tell which keys need a restart.
	baseline *config.File
	// applied is the file of the configuration in force (at first the
	// baseline), to name the keys a reload changes.
	applied *config.File
	// warned is the set of restart keys last warned about (sorted). The
	// keys are compared with the baseline, since the process still runs
	// the baseline's values, so every later reload would find the same
	// ones again: a reload warns only when the set differs from the last
	// one (a key newly changed, or one changed back), once per set.
	warned []string
	// destinations are those configured at start: the route stage has an
	// out topic for these only.
	destinations map[string]bool
	// watched are the files whose changes reload, and dirs their
	// directories (fsnotify watches directories: an editor's save and a
	// ConfigMap swap replace the file).
	watched map[string]bool
	dirs    []string
	// w watches dirs, from NewReloader on: a change made between
	// NewReloader and Run is not missed. nil when the system refused a
	// watcher (SIGHUP still reloads).
	w *fsnotify.Watcher
	// events are the config.reload audit events waiting for writeAudit.
	events chan canonical.AuditEvent
}

// NewReloader returns the reloader of the stages built with d; it writes
// each reload to the audit trail through d's audit writer (Deps.Audit). It loads
// the file once more as the baseline of what a reload may change.
func NewReloader(cfg ReloadConfig, d Deps) (*Reloader, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultReloadDebounce
	}
	base, err := load(cfg)
	if err != nil {
		return nil, err
	}
	r := &Reloader{cfg: cfg, deps: d, rules: d.rules, log: d.Log, metrics: newReloadMetrics(d.Telemetry),
		baseline: base, applied: base, destinations: map[string]bool{},
		events: make(chan canonical.AuditEvent, reloadAuditQueue)}
	for _, dst := range base.Destinations {
		r.destinations[dst.Name] = true
	}
	r.watch(base)
	if r.w, err = fsnotify.NewWatcher(); err != nil {
		r.log.Warn("cannot watch the configuration files; reload with SIGHUP", logattr.Error(err))
		r.w = nil
	} else {
		r.addDirs(r.w, nil)
	}
	return r, nil
}

// load loads the configuration as the process did.
func load(cfg ReloadConfig) (*config.File, error) {
	f, err := config.Load(cfg.Path, cfg.Overrides...)
	if err != nil {
		return nil, err
	}
	if cfg.Prepare != nil {
		if err := cfg.Prepare(f); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// watch makes the files of f (the configuration file and its tables) the
// ones whose changes reload.
func (r *Reloader) watch(f *config.File) {
	r.watched = map[string]bool{}
	r.dirs = r.dirs[:0]
	for _, p := range append([]string{f.Path()}, f.TablePaths()...) {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		r.watched[abs] = true
		if d := filepath.Dir(abs); !slices.Contains(r.dirs, d) {
			r.dirs = append(r.dirs, d)
		}
	}
}

// Run reloads on each SIGHUP and each (debounced) file change until ctx
// ends, and closes the watcher NewReloader started (call it once).
// Without a file watcher (the system refused one) SIGHUP still works.
func (r *Reloader) Run(ctx context.Context) error {
	w := r.w
	if w != nil {
		defer w.Close()
	}
	actx, cancel := context.WithCancel(ctx)
	audited := make(chan struct{})
	go func() {
		defer close(audited)
		r.writeAudit(actx)
	}()
	defer func() {
		cancel()
		<-audited
	}()
	var events <-chan fsnotify.Event
	var werrs <-chan error
	if w != nil {
		events, werrs = w.Events, w.Errors
	}
	var timer *time.Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-r.cfg.Signals:
			if !ok {
				r.cfg.Signals = nil
				continue
			}
			r.reload(w, "SIGHUP")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !r.concerns(ev) {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(r.cfg.Debounce)
			} else {
				timer.Reset(r.cfg.Debounce)
			}
			fire = timer.C
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			r.log.Warn("watching the configuration files", logattr.Error(err))
		case <-fire:
			fire = nil
			r.reload(w, "file changed")
		}
	}
}

// addDirs watches the directories of the watched files not in old.
func (r *Reloader) addDirs(w *fsnotify.Watcher, old []string) {
	for _, d := range r.dirs {
		if slices.Contains(old, d) {
			continue
		}
		if err := w.Add(d); err != nil {
			r.log.Warn("cannot watch a configuration directory; reload with SIGHUP", logattr.Error(err))
		}
	}
	for _, d := range old {
		if !slices.Contains(r.dirs, d) {
			_ = w.Remove(d)
		}
	}
}

// concerns reports whether ev changed a watched file (chmod alone does
// not count).
func (r *Reloader) concerns(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if filepath.Base(ev.Name) == configMapData {
		return true
	}
	abs, err := filepath.Abs(ev.Name)
	return err == nil && r.watched[abs]
}

// reload loads, validates and compiles the configuration and applies it
// to this process's stages, or refuses it, and writes a config.reload
// audit event either way (not for an unchanged file).
func (r *Reloader) reload(w *fsnotify.Watcher, trigger string) {
	current, reloads := r.rules.inForce()
	if !reloads {
		if trigger == "SIGHUP" {
			r.log.Info("SIGHUP received; no stage of this process has rules, tables or routes to reload (restart to apply changes)")
		}
		return
	}
	inForce := ""
	if current != nil {
		inForce = current.Version
	}
	f, c, err := r.check()
	if err != nil {
		r.metrics.reloads.WithLabelValues("refused").Inc()
		// Configuration errors name keys and the file's own text (a CEL
		// expression, a path), never message content.
		r.log.Error("configuration refused; the configuration in force keeps running",
			logattr.Trigger(trigger), logattr.ConfigVersion(inForce), logattr.Error(err))
		r.audit(canonical.AuditError, fmt.Sprintf("trigger=%s refused; in force config_version=%s: %s",
			trigger, inForce, firstProblem(err)))
		return
	}
	if w != nil {
		// The tables section may name other files now.
		dirs := slices.Clone(r.dirs)
		r.watch(f)
		r.addDirs(w, dirs)
	}
	if c.Version == inForce {
		r.log.Info("configuration unchanged", logattr.Trigger(trigger), logattr.ConfigVersion(inForce))
		return
	}
	keys := f.RestartKeys(r.baseline)
	slices.Sort(keys)
	if !slices.Equal(keys, r.warned) {
		if len(keys) > 0 {
			r.log.Warn("configuration keys changed that only a restart applies; ignored until then",
				logattr.ConfigKeys(keys), logattr.ConfigVersion(c.Version))
		}
		r.warned = keys
	}
	old := r.rules.apply(c)
	changed := reloadedKeys(r.applied, f)
	r.applied = f
	r.metrics.inForce(old, c.Version)
	r.metrics.reloads.WithLabelValues("applied").Inc()
	r.log.Info("configuration reloaded", logattr.Trigger(trigger), logattr.ConfigVersion(c.Version))
	r.audit(canonical.AuditOK, fmt.Sprintf("trigger=%s config_version=%s previous=%s changed=[%s] restart_needed=[%s]",
		trigger, c.Version, old, strings.Join(changed, " "), strings.Join(keys, " ")))
}

// reloadAuditTimeout bounds the audit write of one reload.
const reloadAuditTimeout = 10 * time.Second

// reloadAuditQueue is how many reload events may wait for their write
// (Kafka away); more are logged and dropped.
const reloadAuditQueue = 16

// audit queues the config.reload event of a reload for writeAudit: the
// reload has happened (or been refused) either way, and it must not
// wait for Kafka, nor a valid configuration be refused because Kafka is
// away.
func (r *Reloader) audit(outcome, detail string) {
	e := canonical.AuditEvent{At: time.Now().UTC(), Service: AuditService, Actor: "system", Auth: "system",
		Action: "config.reload", Resource: "config", Outcome: outcome, Detail: detail}
	select {
	case r.events <- e:
	default:
		r.log.Error("too many configuration reloads wait for the audit trail; this one is not recorded there")
	}
}

// writeAudit writes the queued reload events through the process's
// audit writer, built from the file the modules run with, until ctx
// ends. A failed write is logged, not retried.
func (r *Reloader) writeAudit(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.events:
			f := r.rules.runningFile()
			if f == nil {
				continue // no stage compiled rules: reload returns before auditing
			}
			wctx, cancel := context.WithTimeout(ctx, reloadAuditTimeout)
			wr, err := r.deps.Audit(f)
			if err == nil {
				err = r.deps.PrepareAudit(wctx)
			}
			if err == nil {
				err = wr.Audit(wctx, e)
			}
			cancel()
			if err != nil {
				r.log.Error("cannot write a configuration reload to the audit trail", logattr.Error(err))
			}
		}
	}
}

// maxProblemLen bounds the refusal quoted in an audit event: the log
// has all of it.
const maxProblemLen = 300

// firstProblem is the first line of a refusal (errors.Join puts one
// problem a line), with how many more there are.
func firstProblem(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	s := lines[0]
	if len(s) > maxProblemLen {
		s = s[:maxProblemLen] + "..."
	}
	if len(lines) > 1 {
		s += fmt.Sprintf(" (and %d more lines; see the log)", len(lines)-1)
	}
	return s
}

// reloadedKeys names the reloadable keys whose values differ between
// old and f: routes, tables, and each interface's and destination's
// rules. A change inside a table file changes the version only.
func reloadedKeys(old, f *config.File) []string {
	var keys []string
	if !reflect.DeepEqual(old.Routes, f.Routes) {
		keys = append(keys, "routes")
	}
	if !reflect.DeepEqual(old.Tables, f.Tables) {
		keys = append(keys, "tables")
	}
	for i := range min(len(old.Interfaces), len(f.Interfaces)) {
		if !reflect.DeepEqual(old.Interfaces[i].Rules, f.Interfaces[i].Rules) {
			keys = append(keys, fmt.Sprintf("interfaces[%d].rules", i))
		}
	}
	for i := range min(len(old.Destinations), len(f.Destinations)) {
		if !reflect.DeepEqual(old.Destinations[i].Rules, f.Destinations[i].Rules) {
			keys = append(keys, fmt.Sprintf("destinations[%d].rules", i))
		}
	}
	return keys
}

// check loads, validates and compiles the configuration, and checks that
// its routes name only destinations the process started with (the route
// stage has out topics for those only).
func (r *Reloader) check() (*config.File, *config.Compiled, error) {
	f, err := load(r.cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := f.Checked()
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for i, rt := range f.Routes {
		for j, d := range rt.Destinations {
			if !r.destinations[d] {
				errs = append(errs, fmt.Errorf("routes[%d].destinations[%d]: %q is not a destination of the running configuration (a new destination needs a restart)", i, j, d))
			}
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return f, c, nil
}
