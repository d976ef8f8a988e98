package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/hl7bus/hl7bus/libs/mapping"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// Compiled is what the rules, tables and routes of one configuration
// compile to: what transform and route run, swapped whole on reload.
type Compiled struct {
	// Version is the configuration version (see Version), also set in
	// Transform and Route, so every record says which one handled it.
	Version string
	// Env is the CEL environment over the loaded tables (nil only for a
	// file with nothing to compile against one, if it cannot be built).
	Env *mapping.Env
	// Transform holds each interface's inbound rules.
	Transform *transform.Rules
	// Route holds the routes and each destination's outbound rules.
	Route *route.Rules
}

// Path returns the file Load read ("" for a File not loaded from one).
func (f *File) Path() string { return f.path }

// TablePaths returns the file of each table of the tables section, in
// order, resolved against the configuration file's directory.
func (f *File) TablePaths() []string {
	out := make([]string, len(f.Tables))
	for i, t := range f.Tables {
		out[i] = f.tablePath(t.File)
	}
	return out
}

func (f *File) tablePath(file string) string {
	if filepath.IsAbs(file) || file == "" {
		return file
	}
	return filepath.Join(f.dir, file)
}

// Version returns the configuration version: the first 12 hex digits of
// the SHA-256 of the configuration file's bytes followed by each table
// file's bytes, in the order of the tables section. Any edit of either
// changes it, so a record's config_version names the exact rules that
// handled it. It loads the tables to hash the bytes they are parsed from;
// Rules computes the version of the tables it compiled against.
func (f *File) Version() (string, error) {
	_, version, err := f.loadTables()
	return version, err
}

// Rules loads the code tables and compiles every interface's rules
// (Inbound), every destination's (Outbound) and the routes, with the
// configuration version. Every problem at once, each naming its key
// (interfaces[0].rules[2].when: column 14: ...).
func (f *File) Rules() (*Compiled, error) {
	var errs []error
	known := map[string]bool{}
	for _, d := range f.Destinations {
		known[d.Name] = true
	}
	tables, version, err := f.loadTables()
	var env *mapping.Env
	if err == nil {
		env, err = f.env(tables)
	}
	if err != nil {
		// Without the tables every rule naming one would fail too, and
		// those errors would only hide the cause: report the routes'
		// own problems and stop there.
		errs = append(errs, err)
		if err := route.Validate(f.Routes, known); err != nil {
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	tr := &transform.Rules{Interfaces: map[string]*mapping.RuleSet{}}
	for i, it := range f.Interfaces {
		if len(it.Rules) == 0 {
			continue
		}
		rs, err := mapping.Compile(fmt.Sprintf("interfaces[%d].rules", i), it.Rules, env, mapping.Inbound)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tr.Interfaces[it.Name] = rs
	}
	dests := map[string]*mapping.RuleSet{}
	for i, d := range f.Destinations {
		if len(d.Rules) == 0 {
			continue
		}
		rs, err := mapping.Compile(fmt.Sprintf("destinations[%d].rules", i), d.Rules, env, mapping.Outbound)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dests[d.Name] = rs
	}
	rr, err := route.Compile(f.Routes, env, dests, known)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	tr.Version, rr.Version = version, version
	return &Compiled{Version: version, Env: env, Transform: tr, Route: rr}, nil
}

// loadTables loads the tables section (none when it is empty) and
// returns the configuration version: the SHA-256 of the bytes Load parsed
// followed by the bytes each table was parsed from, as LoadTables read
// them (mapping.HashInto), never a second read of the files: a table saved
// between a load and a re-read would give the old rules the new file's
// version, and the reload that follows would find that version in force
// and never apply the new table.
func (f *File) loadTables() (mapping.Tables, string, error) {
	h := sha256.New()
	h.Write(f.raw)
	tables := mapping.Tables{}
	if len(f.Tables) > 0 {
		var err error
		if tables, err = mapping.LoadTables("tables", f.Tables, f.dir, mapping.HashInto(h)); err != nil {
			return nil, "", err
		}
	}
	return tables, hex.EncodeToString(h.Sum(nil))[:12], nil
}

// env builds the CEL environment over the loaded tables. A file with
// nothing to compile against one (no tables, rules or when) does not fail
// for want of it: its Env is nil if it cannot be built.
func (f *File) env(tables mapping.Tables) (*mapping.Env, error) {
	env, err := mapping.NewEnv(tables)
	if err != nil {
		if !f.usesEnv() {
			return nil, nil
		}
		return nil, fmt.Errorf("building the CEL environment: %w", err)
	}
	return env, nil
}

// usesEnv reports whether anything in f is compiled against the CEL
// environment: a table, a rule, or a route with a when.
func (f *File) usesEnv() bool {
	if len(f.Tables) > 0 {
		return true
	}
	for _, it := range f.Interfaces {
		if len(it.Rules) > 0 {
			return true
		}
	}
	for _, d := range f.Destinations {
		if len(d.Rules) > 0 {
			return true
		}
	}
	for _, r := range f.Routes {
		if r.When != "" {
			return true
		}
	}
	return false
}
