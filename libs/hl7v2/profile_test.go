package hl7v2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileFixtures(t *testing.T) {
	good, _ := filepath.Glob("testdata/profiles/*.good.yaml")
	if len(good) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range good {
		if _, err := LoadProfile(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	bad := map[string][]string{
		"unknown-key.bad.yaml":  {"field requried not found"},
		"bad-path.bad.yaml":     {"required[1]", "invalid path"},
		"empty-values.bad.yaml": {"values.PID-8", "at least one"},
		"unknown-rule.bad.yaml": {"severity.lenght", "unknown rule"},
		"bad-severity.bad.yaml": {"severity.length", `"fatal"`},
		"bad-type.bad.yaml":     {"message_types[0]", "CODE^EVENT"},
		"bad-segment.bad.yaml":  {"forbidden_segments[0]"},
		"syntax.bad.yaml":       {"parsing profile"},
	}
	files, _ := filepath.Glob("testdata/profiles/*.bad.yaml")
	if len(files) != len(bad) {
		t.Errorf("%d bad fixtures, %d expectations", len(files), len(bad))
	}
	for name, wants := range bad {
		_, err := LoadProfile(filepath.Join("testdata/profiles", name))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
	}
	if _, err := LoadProfile("testdata/profiles/missing.yaml"); !os.IsNotExist(errUnwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func errUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}
