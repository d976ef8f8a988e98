package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args    []string
		want    string // a line the output must contain
		wantErr bool
	}{
		{[]string{"2.5", "PID"}, "PID-3\tCX   [1..*]", false},
		{[]string{"2.5", "CX"}, "data type CX (2.5)", false},
		{[]string{"2.5", "ADT^A04"}, "structure ADT_A01 (2.5)", false},
		{[]string{"2.5", "ORU_R01"}, "PATIENT_RESULT [1..*] (group)", false},
		{[]string{"2.5"}, "segments: ", false},
		{[]string{"table", "1"}, "0001 ", false},
		{[]string{"2.5", "NOPE"}, "", true},
		{[]string{"9.9"}, "", true},
		{[]string{"table", "x"}, "", true},
		{nil, "", true},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		err := run(&b, tt.args)
		if (err != nil) != tt.wantErr {
			t.Errorf("run(%q) err = %v, wantErr %v", tt.args, err, tt.wantErr)
		}
		if !strings.Contains(b.String(), tt.want) {
			t.Errorf("run(%q) = %q, want it to contain %q", tt.args, b.String(), tt.want)
		}
	}
}
