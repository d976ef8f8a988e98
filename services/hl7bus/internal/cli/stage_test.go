package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
)

// TestStageFlagsRebuild: `hl7bus index --rebuild` sets index.rebuild for
// this run (and for each reload's file: the prepare function applies
// it); without the flag it is false unless the file or --set says so;
// another stage has no --rebuild.
func TestStageFlagsRebuild(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "hl7bus.yaml")
	if err := os.WriteFile(cfg, []byte(`registry: {url: "http://127.0.0.1:8081"}
kafka: {brokers: ["127.0.0.1:9092"]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := modules.Default()
	index, _ := reg.Get("index")
	parse, _ := reg.Get("parse")
	for _, tc := range []struct {
		name    string
		mod     modules.Module
		args    []string
		code    int
		rebuild bool
		stderr  string
	}{
		{"no flag", index, []string{"--config", cfg}, ExitOK, false, ""},
		{"flag", index, []string{"--config", cfg, "--rebuild"}, ExitOK, true, ""},
		{"flag first", index, []string{"--rebuild", "--config", cfg}, ExitOK, true, ""},
		{"flag false", index, []string{"--config", cfg, "--rebuild=false"}, ExitOK, false, ""},
		{"the key still works", index, []string{"--config", cfg, "--set", "index.rebuild=true"}, ExitOK, true, ""},
		{"not a flag of parse", parse, []string{"--config", cfg, "--rebuild"}, ExitUsage, false, "flag provided but not defined: -rebuild"},
		{"usage names it", index, []string{}, ExitUsage, false, "usage: hl7bus index --config FILE [--instance NAME] [--http-address ADDR] [--data-dir DIR] [--rebuild]"},
	} {
		var stderr bytes.Buffer
		st, code := parseStage(tc.mod, tc.args, Env{Stdout: &bytes.Buffer{}, Stderr: &stderr})
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d: %s", tc.name, code, tc.code, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, stderr.String(), tc.stderr)
		}
		if code != ExitOK {
			continue
		}
		if st.f.Index.Rebuild != tc.rebuild {
			t.Errorf("%s: index.rebuild %v, want %v", tc.name, st.f.Index.Rebuild, tc.rebuild)
		}
		// A reload loads the file again through prepare: the flag holds
		// there too, so the reloader sees no difference.
		again, err := loadAgain(st)
		if err != nil || again.Index.Rebuild != tc.rebuild {
			t.Errorf("%s: reloaded index.rebuild %v (%v), want %v", tc.name, again.Index.Rebuild, err, tc.rebuild)
		}
	}
}

// loadAgain loads the stage's file as a reload does.
func loadAgain(st *stageArgs) (*config.File, error) {
	f, err := config.Load(st.path, st.sets...)
	if err != nil {
		return nil, err
	}
	return f, st.prepare(f)
}
