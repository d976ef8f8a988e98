package hl7v2

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

// fileView is what the golden files hold for each input.
type fileView struct {
	FileHeader *SegmentView  `json:"file_header,omitempty"`
	Batches    []batchView   `json:"batches"`
	Messages   []messageView `json:"messages"`
}

type batchView struct {
	Header   *SegmentView `json:"header,omitempty"`
	Trailer  *SegmentView `json:"trailer,omitempty"`
	Messages int          `json:"messages"`
}

type messageView struct {
	Header     HeaderView    `json:"header"`
	Segments   []SegmentView `json:"segments"`
	Validation *Report       `json:"validation"`
}

func viewOf(f *File) fileView {
	opt := func(s Segment) *SegmentView {
		if !s.Present() {
			return nil
		}
		v := s.View()
		return &v
	}
	out := fileView{FileHeader: opt(f.Header)}
	for _, b := range f.Batches {
		out.Batches = append(out.Batches, batchView{Header: opt(b.Header), Trailer: opt(b.Trailer), Messages: len(b.Messages)})
	}
	for _, m := range f.Messages() {
		out.Messages = append(out.Messages, messageView{Header: m.HeaderView(), Segments: m.View(), Validation: Validate(m)})
	}
	return out
}

// normalizeWire is the reference for what Bytes must return: no BOM, CR
// terminators (a lone LF is a terminator only when there is no CR at all),
// no blank lines, a final CR. It is written independently of the parser's
// scanner on purpose.
func normalizeWire(b []byte) []byte {
	s := strings.TrimPrefix(string(b), "\uFEFF")
	if strings.Contains(s, "\r") {
		s = strings.ReplaceAll(s, "\r\n", "\r")
	} else {
		s = strings.ReplaceAll(s, "\n", "\r")
	}
	var out []string
	for _, line := range strings.Split(s, "\r") {
		if strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\r") + "\r")
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hl7")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".hl7")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseBatch(data)
			if err != nil {
				t.Fatalf("ParseBatch: %v", err)
			}
			if got, want := f.Bytes(), normalizeWire(data); !bytes.Equal(got, want) {
				t.Errorf("round trip differs:\n got %q\nwant %q", got, want)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(viewOf(f)); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("view differs from %s (go test -run TestGolden -update, then review the diff):\n%s", golden, got)
			}
		})
	}
}
