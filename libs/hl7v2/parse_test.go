package hl7v2

import (
	"errors"
	"strings"
	"testing"
)

func msg(segs ...string) []byte { return []byte(strings.Join(segs, "\r") + "\r") }

const mshLine = `MSH|^~\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5`

func mustParse(t *testing.T, data []byte) *Message {
	t.Helper()
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
		text string
	}{
		{"empty", "", ErrNoMSH, ""},
		{"only blank lines", "\r\n\r\n", ErrNoMSH, ""},
		{"starts with PID", "PID|1\rMSH|^~\\&|A\r", ErrNoMSH, ""},
		{"three encoding characters", "MSH|^~\\|A|B\r", ErrDelimiters, "4 or 5 characters"},
		{"six encoding characters", "MSH|^~\\&#!|A|B\r", ErrDelimiters, "4 or 5 characters"},
		{"duplicate delimiter", "MSH|^~\\^|A|B\r", ErrDelimiters, "two delimiters"},
		{"field separator reused", "MSH|^~\\||A|B\r", ErrDelimiters, ""},
		{"alphanumeric delimiter", "MSH|^~\\A|A|B\r", ErrDelimiters, "cannot be a delimiter"},
		{"msh too short", "MSH", ErrDelimiters, ""},
		{"lower-case segment", mshLine + "\rpid|1\r", ErrSegmentName, ""},
		{"two-letter segment", mshLine + "\rPI|1\r", ErrSegmentName, ""},
		{"four-letter segment", mshLine + "\rPIDX|1\r", ErrSegmentName, ""},
		{"second MSH", mshLine + "\rPID|1\r" + mshLine + "\r", ErrBatch, "second MSH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err %q does not mention %q", err, tt.text)
			}
		})
	}
}

func TestParseErrorCarriesNoContent(t *testing.T) {
	_, err := Parse(msg(mshLine, "pid|1||SECRET-MRN^^^H||DOE^JANE"))
	if err == nil || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "DOE") {
		t.Fatalf("error must locate the problem without quoting content: %v", err)
	}
}

func TestTerminators(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		segments int
		obx5     string
	}{
		{"CR", mshLine + "\rPID|1\rOBX|1|TX|||a\r", 3, "a"},
		{"LF", mshLine + "\nPID|1\nOBX|1|TX|||a\n", 3, "a"},
		{"CRLF", mshLine + "\r\nPID|1\r\nOBX|1|TX|||a\r\n", 3, "a"},
		{"no final terminator", mshLine + "\rPID|1\rOBX|1|TX|||a", 3, "a"},
		{"blank lines", "\r\n" + mshLine + "\r\r\nPID|1\r  \rOBX|1|TX|||a\r\r", 3, "a"},
		{"LF inside a CR message is data", mshLine + "\rPID|1\rOBX|1|TX|||a\nb\r", 3, "a\nb"},
		{"BOM", "\uFEFF" + mshLine + "\rPID|1\rOBX|1|TX|||a\r", 3, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.in))
			if m.Len() != tt.segments {
				t.Errorf("segments = %d, want %d", m.Len(), tt.segments)
			}
			if got, _ := m.Get("OBX-5"); got != tt.obx5 {
				t.Errorf("OBX-5 = %q, want %q", got, tt.obx5)
			}
		})
	}
}

func TestValueStates(t *testing.T) {
	m := mustParse(t, msg(mshLine, `PID|1||""|||A^^""~~B`))
	tests := []struct {
		path                   string
		present, empty, isNull bool
		str                    string
	}{
		{"PID-1", true, false, false, "1"},
		{"PID-2", true, true, false, ""},
		{"PID-3", true, false, true, `""`},
		{"PID-4", true, true, false, ""},
		{"PID-7", false, true, false, ""},
		{"PID-6[1].2", true, true, false, ""},
		{"PID-6[1].3", true, false, true, `""`},
		{"PID-6[1].4", false, true, false, ""},
		{"PID-6[2]", true, true, false, ""},
		{"PID-6[3]", true, false, false, "B"},
		{"PID-6[4]", false, true, false, ""},
		{"ZZZ-1", false, true, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := ParsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Value(p)
			if v.Present() != tt.present || v.IsEmpty() != tt.empty || v.IsNull() != tt.isNull || v.String() != tt.str {
				t.Errorf("present=%v empty=%v null=%v str=%q; want %v %v %v %q",
					v.Present(), v.IsEmpty(), v.IsNull(), v.String(), tt.present, tt.empty, tt.isNull, tt.str)
			}
		})
	}
	pid6, _ := m.Segment("PID", 1)
	if n := pid6.Field(6).NumReps(); n != 3 {
		t.Errorf("PID-6 repetitions = %d, want 3 (empty ones kept)", n)
	}
}

func TestMSHNumbering(t *testing.T) {
	m := mustParse(t, msg(mshLine))
	for path, want := range map[string]string{
		"MSH-1": "|", "MSH-2": `^~\&`, "MSH-3": "A", "MSH-7": "20240101",
		"MSH-9": "ADT^A01", "MSH-9.1": "ADT", "MSH-9.2": "A01", "MSH-10": "X1", "MSH-12": "2.5",
		"MSH-2.2": "", "MSH-13": "",
	} {
		if got, err := m.Get(path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if c, tr, st := m.Type(); c != "ADT" || tr != "A01" || st != "" {
		t.Errorf("Type = %s %s %s", c, tr, st)
	}
}
