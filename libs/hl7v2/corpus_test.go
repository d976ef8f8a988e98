package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedCorpus returns the files of a shared corpus directory, skipping the
// test when ../shared is absent (a user's fresh clone has none).
func sharedCorpus(t *testing.T, pattern string) []string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "corpus")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared corpus not present at %s", dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files match %s in %s: %v", pattern, dir, err)
	}
	return files
}

func TestCorpusValidMessages(t *testing.T) {
	files := sharedCorpus(t, "fhir-converter/hl7v2/*.hl7")
	py := sharedCorpus(t, "python-hl7/*.hl7")
	for _, f := range py {
		if !strings.HasPrefix(filepath.Base(f), "sample_bad") {
			files = append(files, f)
		}
	}
	messages := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, err := ParseBatch(data)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if got, want := file.Bytes(), normalizeWire(data); !bytes.Equal(got, want) {
			t.Errorf("%s: does not round-trip", filepath.Base(f))
		}
		for _, m := range file.Messages() {
			messages++
			// Every message re-parses to the same bytes on its own, and
			// validation runs to the end without panicking.
			again, err := Parse(m.Bytes())
			if err != nil || !bytes.Equal(again.Bytes(), m.Bytes()) {
				t.Errorf("%s: message %s does not re-parse: %v", filepath.Base(f), m.ControlID(), err)
			}
			_ = Validate(m)
		}
	}
	t.Logf("%d files, %d messages parsed and round-tripped", len(files), messages)
}

func TestCorpusBadBatchesRejected(t *testing.T) {
	want := map[string]string{
		"sample_bad_batch.hl7":  "EVN segment outside a message",
		"sample_bad_batch1.hl7": "BHS inside a batch that has no BTS",
		"sample_bad_file.hl7":   "EVN segment outside a message",
		"sample_bad_file1.hl7":  "BHS inside a batch that has no BTS",
		"sample_bad_file2.hl7":  "FHS is not the first segment",
		"sample_bad_file3.hl7":  "EVN segment outside a message",
	}
	files := sharedCorpus(t, "python-hl7/sample_bad*.hl7")
	if len(files) != len(want) {
		t.Errorf("%d bad samples, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		data, _ := os.ReadFile(f)
		_, err := ParseBatch(data)
		if err == nil || !strings.Contains(err.Error(), want[filepath.Base(f)]) {
			t.Errorf("%s: err = %v, want %q", filepath.Base(f), err, want[filepath.Base(f)])
		}
	}
}
