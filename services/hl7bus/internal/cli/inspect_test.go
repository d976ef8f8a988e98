package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestInspectGet(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"one path", []string{"inspect", "--get", "PID-5.1", "testdata/adt_a01_basic.hl7"}, 0, "DOE\n"},
		{"several paths", []string{"inspect", "--get", "MSH-10", "--get", "PID-3[2].1", "testdata/adt_a01_basic.hl7"}, 0, "MSG00001\tNG-998877\n"},
		{"flags after file", []string{"inspect", "testdata/adt_a01_basic.hl7", "--get", "PID-8"}, 0, "F\n"},
		{"one line per batch message", []string{"inspect", "--get", "OBX-5", "testdata/batch_file.hl7"}, 0, "5.4\n7.9\n"},
		{"absent value", []string{"inspect", "--get", "PID-30", "testdata/adt_a01_basic.hl7"}, 0, "\n"},
		{"decoded escapes", []string{"inspect", "--get", "OBX[1]-5", "testdata/escapes.hl7"}, 1, `pipe | caret ^ amp & tilde ~ backslash \\ hex AB end` + "\n"},
		{"several files", []string{"inspect", "--get", "MSH-10", "testdata/adt_a01_basic.hl7", "testdata/batch_file.hl7"}, 0, "MSG00001\nB1M1\nB1M2\n"},
		{"profile makes it invalid", []string{"inspect", "--profile", "testdata/strict.yaml", "--get", "PID-7", "testdata/batch_file.hl7"}, 1, "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := run(t, "", tt.args...)
			if code != tt.code || out != tt.out {
				t.Errorf("code %d out %q (stderr %q); want %d %q", code, out, stderr, tt.code, tt.out)
			}
		})
	}
}

func TestInspectJSON(t *testing.T) {
	code, out, _ := run(t, "", "inspect", "--compact", "testdata/batch_file.hl7")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per message", len(lines))
	}
	var got inspectOutput
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Batch != 1 || got.Index != 2 || got.Header.ControlID != "B1M2" || got.Segments[0].Segment != "MSH" ||
		got.Validation == nil || got.Validation.Structure != "ORU_R01" {
		t.Errorf("got %+v", got)
	}
}

func TestInspectStdin(t *testing.T) {
	data, _ := os.ReadFile("testdata/adt_a01_basic.hl7")
	code, out, _ := run(t, string(data), "inspect", "--get", "PID-5.2", "-")
	if code != 0 || out != "JANE\n" {
		t.Errorf("code %d out %q", code, out)
	}
}

func TestInspectErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no file", []string{"inspect"}, 2, "no FILE"},
		{"bad path", []string{"inspect", "--get", "PID3", "testdata/adt_a01_basic.hl7"}, 2, "invalid path"},
		{"unknown flag", []string{"inspect", "--nope", "x"}, 2, "not defined"},
		{"bad profile", []string{"inspect", "--profile", "testdata/adt_a01_basic.hl7", "testdata/adt_a01_basic.hl7"}, 2, "--profile"},
		{"missing file", []string{"inspect", "testdata/nope.hl7"}, 1, "no such file"},
		{"unparseable", []string{"inspect", "testdata/no_msh.hl7"}, 1, "EVN segment outside a message"},
		{"invalid message", []string{"inspect", "testdata/escapes.hl7"}, 1, ""},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("code %d stderr %q; want %d %q", code, stderr, tt.code, tt.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	if code, out, _ := run(t, "", "help"); code != 0 || !strings.Contains(out, "inspect") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, _, errb := run(t, "", "inspect", "-h"); code != 0 || !strings.Contains(errb, "--get PATH") {
		t.Errorf("inspect -h: %d %q", code, errb)
	}
}
