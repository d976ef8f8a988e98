// Package archtest checks the import rules of the design: stages meet only
// on Kafka topics and schemas, so no stage imports another, libs imports no
// service, only the composition root (services/hl7bus) imports stages, and
// the load generator uses libs only.
package archtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/hl7bus/internal/modules"
)

const mod = "github.com/hl7bus/hl7bus/"

func TestImportRules(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := exec.Command("go", "-C", root, "list", "-m", "-f", "{{.Dir}}/...").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	args := append([]string{"-C", root, "list", "-test", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}"}, strings.Fields(string(dirs))...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// The stages are the registry's modules that are not part of the
	// embedded default: a new stage is checked without touching this file.
	var stages []string
	for _, m := range modules.Default().Modules() {
		if !m.Embedded {
			stages = append(stages, m.Name)
		}
	}
	if len(stages) < 5 {
		t.Fatalf("stages %v: the module registry lost some", stages)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		pkg, _, _ = strings.Cut(pkg, " ") // "pkg [pkg.test]" variants
		if !strings.HasPrefix(pkg, mod) {
			continue
		}
		checked++
		for _, imp := range strings.Split(imports, ",") {
			if !strings.HasPrefix(imp, mod+"services/") && !strings.HasPrefix(imp, mod+"loadtest") {
				continue
			}
			switch {
			case strings.HasPrefix(pkg, mod+"libs/"), strings.HasPrefix(pkg, mod+"schemas"):
				t.Errorf("%s imports %s: libs and schemas never import services or loadtest", pkg, imp)
			case strings.HasPrefix(pkg, mod+"loadtest"):
				if !strings.HasPrefix(imp, mod+"loadtest") {
					t.Errorf("%s imports %s: the load generator uses libs only", pkg, imp)
				}
			case strings.HasPrefix(pkg, mod+"services/hl7bus"):
				// The composition root may import every stage.
			default:
				for _, st := range stages {
					if strings.HasPrefix(pkg, mod+"services/"+st) && !strings.HasPrefix(imp, mod+"services/"+st) {
						t.Errorf("%s imports %s: stages meet only on Kafka topics", pkg, imp)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d packages checked; go list output: %q", checked, out)
	}
}
