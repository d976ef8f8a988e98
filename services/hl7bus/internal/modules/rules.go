package modules

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// lazyRules is the process's one compilation of the rules, tables and
// routes (transform and route share it: one table load, one version),
// and the stages a reload hands new ones to.
type lazyRules struct {
	mu sync.Mutex
	// compiled is the configuration in force; nil until first use.
	compiled *config.Compiled
	// file is the file the first stage compiled it from: the one the
	// modules run with (a standalone's points at the embedded broker,
	// which a reloaded file does not), for the reloader's audit writer.
	file *config.File
	// targets get every configuration a reload applies, under mu, so a
	// stage registering while a reload applies cannot miss it.
	targets []func(*config.Compiled)
}

// Rules returns the process's compiled rules, compiled from f on first
// use. onReload (when not nil) is called with them at once and with each
// configuration a reload applies from then on, all under one lock, so a
// stage passing its SetRules cannot end on older rules than the ones in
// force.
func (d Deps) Rules(f *config.File, onReload func(*config.Compiled)) (*config.Compiled, error) {
	d.rules.mu.Lock()
	defer d.rules.mu.Unlock()
	if d.rules.compiled == nil {
		c, err := f.Rules()
		if err != nil {
			return nil, err
		}
		d.rules.compiled, d.rules.file = c, f
		newReloadMetrics(d.Telemetry).inForce("", c.Version)
	}
	if onReload != nil {
		onReload(d.rules.compiled)
		d.rules.targets = append(d.rules.targets, onReload)
	}
	return d.rules.compiled, nil
}

// inForce returns the compiled configuration in force (nil if no stage
// of this process has asked for one) and whether any stage reloads.
func (r *lazyRules) inForce() (*config.Compiled, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.compiled, len(r.targets) > 0
}

// runningFile returns the file the rules in force were first compiled
// from (nil before).
func (r *lazyRules) runningFile() *config.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.file
}

// apply hands c to every stage that registered and makes it the
// configuration in force; it returns the version it replaced.
func (r *lazyRules) apply(c *config.Compiled) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := ""
	if r.compiled != nil {
		old = r.compiled.Version
	}
	for _, t := range r.targets {
		t(c)
	}
	r.compiled = c
	return old
}

// reloadMetrics are the reloader's metrics, on the process's registry.
type reloadMetrics struct {
	reloads *prometheus.CounterVec
	info    *prometheus.GaugeVec
}

// newReloadMetrics registers (or finds) the metrics on tel's registry;
// without telemetry they go to a registry of their own, unread.
func newReloadMetrics(tel *telemetry.Telemetry) reloadMetrics {
	var reg prometheus.Registerer = prometheus.NewRegistry()
	if tel != nil && tel.Registry != nil {
		reg = tel.Registry
	}
	return reloadMetrics{
		reloads: telemetry.RegisterOrFind(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hl7bus_config_reloads_total",
			Help: "Configuration reloads (SIGHUP or a changed configuration or table file), by result: applied, or refused (invalid; the configuration in force keeps running).",
		}, []string{"result"})),
		info: telemetry.RegisterOrFind(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hl7bus_config_info",
			Help: "1 for the configuration version (config_version) whose rules, tables and routes are in force.",
		}, []string{"config_version"})),
	}
}

// inForce moves hl7bus_config_info from version old to version now.
func (m reloadMetrics) inForce(old, now string) {
	if old != "" && old != now {
		m.info.DeleteLabelValues(old)
	}
	m.info.WithLabelValues(now).Set(1)
}
