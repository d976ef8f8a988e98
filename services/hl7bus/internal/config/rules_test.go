package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRulesGood: the good fixture compiles into one version, set on the
// transform and route rules alike, with a rule set for each interface and
// destination that has rules (and none for those without).
func TestRulesGood(t *testing.T) {
	f, err := Load("testdata/rules.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Checked()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(c.Version) {
		t.Errorf("version %q is not 12 hex digits", c.Version)
	}
	if c.Transform.Version != c.Version || c.Route.Version != c.Version {
		t.Errorf("versions differ: compiled %q, transform %q, route %q", c.Version, c.Transform.Version, c.Route.Version)
	}
	if n := c.Transform.Interfaces["lab-in"].Len(); n != 3 {
		t.Errorf("lab-in has %d rules, want 3", n)
	}
	if n := c.Route.Destinations["lis"].Len(); n != 1 {
		t.Errorf("lis has %d rules, want 1", n)
	}
	if _, ok := c.Route.Destinations["health-dept"]; ok {
		t.Error("health-dept has no rules but got a rule set")
	}
	if c.Env == nil || c.Env.Tables()["lab_codes"].Len() != 2 || c.Env.Tables()["notifiable"].Len() != 1 {
		t.Errorf("tables not loaded: %+v", c.Env)
	}
}

// TestRulesWithoutRules: a file with no rules, tables or when compiles to
// no rule sets and still has a version.
func TestRulesWithoutRules(t *testing.T) {
	f, err := Load("testdata/standalone.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Transform.Interfaces) != 0 || len(c.Route.Destinations) != 0 || len(c.Version) != 12 {
		t.Errorf("compiled %+v", c)
	}
}

// TestVersion: the version changes with the configuration file's bytes
// and with each table file's, and only with them.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hl7bus.yaml")
	table := filepath.Join(dir, "codes.csv")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	body := "registry: {url: http://127.0.0.1:8081}\ntables: [{name: codes, file: codes.csv}]\n"
	write(cfg, body)
	write(table, "local_code,code\nA,1\n")
	version := func() string {
		t.Helper()
		f, err := Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Version()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1 := version()
	if v := version(); v != v1 {
		t.Errorf("same files, versions %s and %s", v1, v)
	}
	write(table, "local_code,code\nA,2\n")
	v2 := version()
	if v2 == v1 {
		t.Error("a changed table file did not change the version")
	}
	write(cfg, body+"# a comment is a change too\n")
	if v := version(); v == v2 || v == v1 {
		t.Errorf("a changed configuration file did not change the version: %s", v)
	}
	if err := os.Remove(table); err != nil {
		t.Fatal(err)
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Version(); err == nil || !strings.Contains(err.Error(), "tables[0].file") {
		t.Errorf("a missing table file: %v", err)
	}
}

// TestVersionOfLoadedTables: the version hashes the bytes the tables
// were parsed from, not the files as they are when it is computed. A
// table saved between the two must not give the old rules the new file's
// version: the reload that follows would find that version in force and
// never apply the new table.
func TestVersionOfLoadedTables(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hl7bus.yaml")
	table := filepath.Join(dir, "codes.csv")
	body := "registry: {url: http://127.0.0.1:8081}\ntables: [{name: codes, file: codes.csv}]\n"
	const old, edited = "local_code,code\nA,1\n", "local_code,code\nA,2\n"
	writeFile(t, cfg, body)
	writeFile(t, table, old)
	// The definition, computed by hand: SHA-256 over the configuration
	// file's bytes, then each table file's.
	want := func(tableBytes string) string {
		sum := sha256.Sum256([]byte(body + tableBytes))
		return hex.EncodeToString(sum[:])[:12]
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := f.loadTables()
	if err != nil {
		t.Fatal(err)
	}
	if got != want(old) {
		t.Errorf("version = %s, want %s", got, want(old))
	}
	writeFile(t, table, edited)
	c, err := f.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Env.Tables()["codes"].Lookup("A"); e.Code != "2" || c.Version != want(edited) {
		t.Errorf("compiled A=%q with version %s; want A=2 with %s", e.Code, c.Version, want(edited))
	}
}

// TestVersionAgreesWithTables: while a table file is replaced over and
// over, every compiled configuration's version is that of the table
// content it compiled against.
func TestVersionAgreesWithTables(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hl7bus.yaml")
	table := filepath.Join(dir, "codes.csv")
	writeFile(t, cfg, "registry: {url: http://127.0.0.1:8081}\ntables: [{name: codes, file: codes.csv}]\n")
	contents := []string{"local_code,code\nA,1\n", "local_code,code\nA,2\n"}
	versions := map[string]string{} // code of A -> version
	for i, c := range contents {
		writeFile(t, table, c)
		f, err := Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Version()
		if err != nil {
			t.Fatal(err)
		}
		versions[strconv.Itoa(i+1)] = v
	}
	f, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		// Replaced by rename, as editors and ConfigMaps do, so every
		// read sees one whole content or the other.
		defer close(done)
		tmp := table + ".tmp"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.WriteFile(tmp, []byte(contents[i%2]), 0o600); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tmp, table); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// At least 300 compilations, and on until both contents were compiled
	// (a race the test must exercise, not just the static case).
	seen := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 300 || (len(seen) < 2 && time.Now().Before(deadline)); i++ {
		c, err := f.Rules()
		if err != nil {
			t.Fatal(err)
		}
		e, _ := c.Env.Tables()["codes"].Lookup("A")
		seen[e.Code] = true
		if c.Version != versions[e.Code] {
			t.Errorf("rules with A=%s carry version %s, want %s", e.Code, c.Version, versions[e.Code])
			break
		}
	}
	close(stop)
	<-done
	if len(seen) < 2 {
		t.Errorf("only %v compiled while the file alternated: the race was not exercised", seen)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTablePaths: table files are relative to the configuration file's
// directory, not the working directory.
func TestTablePaths(t *testing.T) {
	f, err := Load("testdata/rules.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := f.TablePaths()
	if len(got) != 2 || got[0] != filepath.Join("testdata", "tables", "lab_codes.csv") {
		t.Errorf("table paths %v", got)
	}
}

// TestRestartKeys: a reload applies rules, tables and routes; every
// other changed key is named, by element for lists of the same length.
func TestRestartKeys(t *testing.T) {
	load := func(overrides ...string) *File {
		t.Helper()
		f, err := Load("testdata/rules.good.yaml", overrides...)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := load()
	if keys := load().RestartKeys(old); len(keys) != 0 {
		t.Errorf("same file: %v", keys)
	}
	rulesOnly := load()
	rulesOnly.Interfaces[0].Rules = rulesOnly.Interfaces[0].Rules[:1]
	rulesOnly.Destinations[0].Rules = nil
	rulesOnly.Routes = rulesOnly.Routes[:1]
	rulesOnly.Tables = nil
	if keys := rulesOnly.RestartKeys(old); len(keys) != 0 {
		t.Errorf("rules, routes and tables changed: %v", keys)
	}
	other := load("log.level=debug", "kafka.topic_prefix=x.")
	other.Destinations[1].Address = "127.0.0.1:3000"
	other.Interfaces = append(other.Interfaces, other.Interfaces[0])
	want := []string{"log", "kafka", "interfaces", "destinations[1]"}
	if keys := other.RestartKeys(old); strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("keys %v, want %v", keys, want)
	}
}
