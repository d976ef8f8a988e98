// Package modules is the composition root's module registry (after Loki's
// pkg/loki/modules.go and dskit's modules): every part hl7bus can run —
// the embedded broker and registry, and each stage — is one entry with its
// name, dependencies, input and output topics and constructor. `hl7bus
// standalone [--targets ...]` and the per-stage subcommands (`hl7bus parse
// --config ...`) both iterate it, so the stage list exists once, and a new
// stage (index, admin, aggregate) is one entry.
package modules

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/audit"
	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// Service is what a module's constructor returns: it runs until ctx ends
// (nil) or it fails (an error).
type Service interface {
	Run(ctx context.Context) error
}

// Starter is a Service that must be ready before the modules after it are
// constructed: Run calls Start and waits for it. The embedded broker and
// registry bind their ports there (and point the configuration at them);
// ingress opens its listeners.
type Starter interface {
	Start(ctx context.Context) error
}

// Stopper is a Service that stops gracefully: stop taking input and finish
// what is in flight, within ctx. Run calls it at shutdown (and after a
// failed Start) before it cancels the service's context.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Deps is what a constructor receives besides the configuration file.
type Deps struct {
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	// Instance names this process among the instances of each stage
	// (the transactional IDs and static group membership derive from it).
	Instance string

	serde  *lazySerde
	parser *lazyParser
	rules  *lazyRules
	audit  *lazyAudit
}

// NewDeps returns the dependencies of one process's modules. Close them
// once the modules and the reloader have stopped.
func NewDeps(log *slog.Logger, tel *telemetry.Telemetry, instance string) Deps {
	return Deps{Log: log, Telemetry: tel, Instance: instance, serde: &lazySerde{}, parser: &lazyParser{},
		rules: &lazyRules{}, audit: &lazyAudit{}}
}

// Close closes what the modules opened through d and did not close
// themselves (the audit producer). Call it after Run and the reloader
// have returned; a later Audit builds a new writer.
func (d Deps) Close() {
	if d.audit == nil {
		return
	}
	d.audit.mu.Lock()
	defer d.audit.mu.Unlock()
	if d.audit.prod != nil {
		d.audit.prod.Close()
	}
	d.audit.prod, d.audit.w, d.audit.prepared = nil, nil, false
}

// AuditService is the service name of the audit events written through
// Deps.Audit that do not name their own (the admin API names "admin";
// a configuration reload is the process's).
const AuditService = "hl7bus"

// lazyAudit is the process's one audit writer and its acks=all
// producer, made on first use like the serde (a standalone's broker
// address is known only once the embedded broker has started).
type lazyAudit struct {
	mu       sync.Mutex
	prod     *kgo.Client
	w        *audit.Writer
	prepared bool
}

// Audit returns the process's audit writer, built on first use from f
// (its kafka section, and the registry through Serde) with one acks=all
// producer for every module of the process. Pass the file the modules
// run with (a standalone's points at the embedded broker). Call
// PrepareAudit before the first event.
func (d Deps) Audit(f *config.File) (*audit.Writer, error) {
	if d.audit == nil {
		return nil, errors.New("audit: no audit writer in these dependencies (use NewDeps)")
	}
	serde, err := d.Serde(f)
	if err != nil {
		return nil, err
	}
	d.audit.mu.Lock()
	defer d.audit.mu.Unlock()
	if d.audit.w == nil {
		prod, err := kafka.NewProducer(f.Kafka, d.Log, kafka.Instrument(d.Telemetry, "audit").Opts()...)
		if err != nil {
			return nil, fmt.Errorf("audit: producer: %w", err)
		}
		d.audit.prod, d.audit.w = prod, audit.NewWriter(prod, serde, f.Kafka, AuditService)
	}
	return d.audit.w, nil
}

// PrepareAudit creates the audit topic and registers its schema, once
// per process (Audit must have built the writer); a failure is tried
// again on the next call.
func (d Deps) PrepareAudit(ctx context.Context) error {
	if d.audit == nil {
		return errors.New("audit: no audit writer in these dependencies (use NewDeps)")
	}
	d.audit.mu.Lock()
	defer d.audit.mu.Unlock()
	if d.audit.w == nil {
		return errors.New("audit: PrepareAudit before Audit")
	}
	if d.audit.prepared {
		return nil
	}
	if err := d.audit.w.Prepare(ctx); err != nil {
		return err
	}
	d.audit.prepared = true
	return nil
}

// lazySerde is the process's one registry serde (one schema cache for
// every stage), made on first use: in a standalone, registry.url is known
// only once the embedded registry has started.
type lazySerde struct {
	mu    sync.Mutex
	serde *canonical.Serde
}

// lazyParser is the process's one HL7 parser, shared by ingress, parse
// and transform: the header ingress computes is carried downstream, so
// every stage must read a payload as ingress did.
type lazyParser struct {
	mu     sync.Mutex
	parser *hl7v2.Parser
}

// Parser returns the process's parser, built from f.Parser on first use.
func (d Deps) Parser(f *config.File) (*hl7v2.Parser, error) {
	d.parser.mu.Lock()
	defer d.parser.mu.Unlock()
	if d.parser.parser == nil {
		p, err := f.Parser.NewParser()
		if err != nil {
			return nil, fmt.Errorf("parser.%w", err)
		}
		d.parser.parser = p
	}
	return d.parser.parser, nil
}

// Serde returns the process's serde for the registry of f.
func (d Deps) Serde(f *config.File) (*canonical.Serde, error) {
	d.serde.mu.Lock()
	defer d.serde.mu.Unlock()
	if d.serde.serde == nil {
		cl, err := f.Registry.Client()
		if err != nil {
			return nil, err
		}
		d.serde.serde = canonical.NewSerde(cl)
	}
	return d.serde.serde, nil
}

// Module is one entry of the registry.
type Module struct {
	// Name is the target name (`--targets`) and, for a stage, its
	// subcommand.
	Name string
	// Summary is one line for `hl7bus help`.
	Summary string
	// Deps are the modules this one needs running first, declared before
	// it. A stage process (`hl7bus parse`) runs without them: it finds
	// them through kafka.brokers and registry.url.
	Deps []string
	// Input is the topic the module consumes and Outputs the topics it
	// writes, without kafka.topic_prefix; "out.<destination>" stands for
	// one topic per destination. Shutdown follows them: a module stops
	// after the modules that write its input.
	Input   string
	Outputs []string
	// Embedded marks a part of the embedded default (broker, registry): it
	// runs only inside `hl7bus standalone` and has no subcommand.
	Embedded bool
	// Flags, when not nil, adds the module's own flags to its subcommand's
	// flag set (`hl7bus index --rebuild`) and returns what they do to the
	// loaded file; the command applies that before it validates the file,
	// and to each reload, so a reload sees the flags as the start did.
	Flags func(fs *flag.FlagSet) func(*config.File)
	// New builds the module's service from the configuration. It runs
	// after every module before it has started, so it sees the addresses
	// and credentials those set in f.
	New func(f *config.File, d Deps) (Service, error)
}

// Registry is an ordered set of modules, each after its dependencies.
type Registry struct {
	mods  []Module
	index map[string]int
}

// NewRegistry checks the table: names unique, every dependency declared
// before the module that needs it (which also rules out cycles).
func NewRegistry(mods ...Module) (*Registry, error) {
	r := &Registry{index: map[string]int{}}
	for i, m := range mods {
		if m.Name == "" || m.New == nil {
			return nil, fmt.Errorf("%w: entry %d has no name or no constructor", ErrBadRegistry, i)
		}
		if _, dup := r.index[m.Name]; dup {
			return nil, fmt.Errorf("%w: %q is declared twice", ErrBadRegistry, m.Name)
		}
		for _, d := range m.Deps {
			if _, ok := r.index[d]; !ok {
				return nil, fmt.Errorf("%w: %q depends on %q, which is not declared before it", ErrBadRegistry, m.Name, d)
			}
		}
		r.index[m.Name] = i
		r.mods = append(r.mods, m)
	}
	return r, nil
}

// Modules returns every module, dependencies first.
func (r *Registry) Modules() []Module { return append([]Module(nil), r.mods...) }

// Get returns the module called name.
func (r *Registry) Get(name string) (Module, bool) {
	i, ok := r.index[name]
	if !ok {
		return Module{}, false
	}
	return r.mods[i], true
}

// Names returns the module names, dependencies first.
func (r *Registry) Names() []string {
	out := make([]string, len(r.mods))
	for i, m := range r.mods {
		out[i] = m.Name
	}
	return out
}

// Resolve returns the modules targets names plus everything they depend
// on, dependencies first; no targets means all. Every unknown name is
// reported at once, with the valid ones.
func (r *Registry) Resolve(targets []string) ([]Module, error) {
	if len(targets) == 0 {
		return r.Modules(), nil
	}
	want := make([]bool, len(r.mods))
	var unknown []string
	var mark func(i int)
	mark = func(i int) {
		if want[i] {
			return
		}
		want[i] = true
		for _, d := range r.mods[i].Deps {
			mark(r.index[d])
		}
	}
	for _, t := range targets {
		i, ok := r.index[t]
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", t))
			continue
		}
		mark(i)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w %s (valid: %s)", ErrUnknownTarget, strings.Join(unknown, ", "), strings.Join(r.Names(), ", "))
	}
	var out []Module
	for i, m := range r.mods {
		if want[i] {
			out = append(out, m)
		}
	}
	return out, nil
}

// ParseTargets splits a --targets value (comma-separated, spaces allowed).
func ParseTargets(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}
