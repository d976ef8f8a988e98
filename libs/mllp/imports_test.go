package mllp

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTransportKnowsNoHL7 keeps mllp protocol-pure: it frames bytes, and
// what to answer (the HL7 reject of an oversize frame) is the caller's.
func TestTransportKnowsNoHL7(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasSuffix(p, "/libs/hl7v2") || strings.Contains(p, "/libs/hl7v2/") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
