package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func seedFuzz(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.hl7")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("MSH|^~\\&|\rPID|1|a^b&c~d\\X41\\|\"\"\r"))
	f.Add([]byte("MSH!@#$%!A\nZZZ!1\n"))
}

// FuzzParse checks that any input either fails with an error or parses to a
// message that re-encodes and re-parses to the same bytes, and that reading
// every value and validating never panics.
func FuzzParse(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		out := m.Bytes()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of encoded message failed: %v", err)
		}
		if !bytes.Equal(again.Bytes(), out) {
			t.Fatalf("encode is not stable")
		}
		for _, s := range m.Segments() {
			for _, fv := range s.Fields() {
				for _, r := range fv.Reps() {
					for c := 1; c <= r.NumComps(); c++ {
						_ = r.Comp(c).String()
					}
				}
			}
		}
		_ = Validate(m)
		_ = m.View()
	})
}

// FuzzParseBatch does the same for batch files.
func FuzzParseBatch(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseBatch(data)
		if err != nil {
			return
		}
		if _, err := ParseBatch(file.Bytes()); err != nil {
			t.Fatalf("re-parse of encoded batch failed: %v", err)
		}
	})
}

// FuzzUnescape checks that decoding never panics and that Escape followed
// by Unescape gives back the input.
func FuzzUnescape(f *testing.F) {
	f.Add([]byte(`a\F\b\X41\\H\\.br\\Q\`), []byte(`|^~\&#`))
	f.Add([]byte(`\X4`), []byte(`|^~\&`))
	f.Fuzz(func(t *testing.T, v, delims []byte) {
		d := DefaultDelimiters
		if len(delims) >= 5 {
			seg := append([]byte("MSH"), delims[:5]...)
			seg = append(seg, delims[0])
			if dd, _, err := delimitersFrom(seg); err == nil {
				d = dd
			}
		}
		_ = Unescape(v, d)
		_ = MalformedEscape(v, d)
		if got := Unescape(Escape(v, d), d); !bytes.Equal(got, v) {
			t.Fatalf("Unescape(Escape(%q)) = %q", v, got)
		}
	})
}

// FuzzPath checks the path grammar never panics and formats stably.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"PID-3[2].1", "OBX[3]-5", "MSH-9.2", "PID-11[1].2.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("%q -> %q does not re-parse: %v", s, p.String(), err)
		}
	})
}
