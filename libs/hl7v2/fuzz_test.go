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

// maxErrorText bounds what a parse error may say. Errors name positions
// and lengths only; one that grows with the input is quoting it.
const maxErrorText = 300

// checkErrorText fails when a parse error could be carrying input: too long,
// or not plain printable ASCII (every text the package writes is).
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	text := err.Error()
	if len(text) > maxErrorText {
		t.Fatalf("error text is %d bytes long: %q", len(text), text)
	}
	for i := 0; i < len(text); i++ {
		if text[i] < 0x20 || text[i] > 0x7e {
			t.Fatalf("error text holds byte 0x%02x: %q", text[i], text)
		}
	}
	if is := ParseIssue(err); is.Text != text {
		t.Fatalf("ParseIssue text %q differs from the error", is.Text)
	}
}

// FuzzParse checks that any input either fails with an error that quotes
// nothing of it or parses to a message that re-encodes and re-parses to the
// same bytes, and that peeking, reading every value and validating never
// panics.
func FuzzParse(f *testing.F) {
	seedFuzz(f)
	f.Add([]byte("MSH#~\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|PHI4|P|2.5\nPID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN\r"))
	f.Add([]byte("MSH|^^\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|C3|P|2.3\rPID|1\x00\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = PeekHeader(data)
		m, err := Parse(data)
		if err != nil {
			checkErrorText(t, err)
			return
		}
		_ = RequiredHeaderIssues(m)
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
		for _, is := range Validate(m).Issues {
			// Issue texts are built from positions, definitions and
			// numbers; one that grows with the input is quoting it.
			if len(is.Text) > maxErrorText {
				t.Fatalf("issue text is %d bytes long: %q", len(is.Text), is.Text)
			}
		}
		_ = m.View()
	})
}

// FuzzParseBatch does the same for batch files.
func FuzzParseBatch(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseBatch(data)
		if err != nil {
			checkErrorText(t, err)
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

// FuzzPath checks the path grammar never panics and formats stably, and
// that reading and expanding any path over a message agree: Values are the
// present values at Expand's concrete paths, none of which is a wildcard,
// and Get refuses exactly the wildcard paths.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"PID-3[2].1", "OBX[3]-5", "MSH-9.2", "PID-11[1].2.1", "OBX[*]-5", "PID-3[*].1", "OBX[*]-3[*].1", "MSH[*]-2[*]"} {
		f.Add(s)
	}
	m, err := Parse(msg(mshLine, `PID|1||A~B^x&y~~C`, `OBX|1|CE|X^Y~Z||1`, `OBX|2`, `OBX|3|ST|||\F\`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		q, err := ParsePath(p.String())
		if err != nil || q.String() != p.String() || q.IsWildcard() != p.IsWildcard() {
			t.Fatalf("%q -> %q does not re-parse to the same path: %v", s, p.String(), err)
		}
		if _, err := m.Get(s); (err != nil) != p.IsWildcard() {
			t.Fatalf("Get(%q) err = %v", s, err)
		}
		var present []string
		for _, c := range m.Expand(p) {
			if c.IsWildcard() {
				t.Fatalf("Expand(%q) gave a wildcard %q", s, c)
			}
			if v := m.Value(c); v.Present() {
				present = append(present, v.String())
			}
		}
		vals := m.Values(p)
		if len(vals) != len(present) {
			t.Fatalf("Values(%q) has %d, Expand %d present", s, len(vals), len(present))
		}
		for i := range vals {
			if vals[i].String() != present[i] {
				t.Fatalf("Values(%q)[%d] differs from Expand's", s, i)
			}
		}
		if len(vals) > 0 && m.Value(p).String() != present[0] {
			t.Fatalf("Value(%q) is not the first match", s)
		}
	})
}
