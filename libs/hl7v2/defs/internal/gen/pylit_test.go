package main

import (
	"reflect"
	"testing"
)

func TestParseModule(t *testing.T) {
	src := `# -*- coding: utf-8 -*-
from .segments import SEGMENTS

FIELDS = {
    'PID_3': ('sequence', DATATYPES_STRUCTS['CX'], 'CX', 'PATIENT_IDENTIFIER_LIST', None, -1),
    'QRD_1': ('leaf', None, 'TS', "it's", 'HL70001', 26),
}

for k, v in iteritems(FIELDS):
    if v[0] == 'sequence':
        v[1] = X[v[2]]

GROUPS = {
    'G': ('choice',
          (['OBR', SEGMENTS['OBR'], (1, 1), 'SEG'],
           ['NESTED', None, (0, -1), 'GRP'],)),
    'E': ('sequence',),
    'S': ('a' 'b',),
}
`
	got, err := parseModule(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"FIELDS": map[string]any{
			"PID_3": []any{"sequence", pyRef{"DATATYPES_STRUCTS", "CX"}, "CX", "PATIENT_IDENTIFIER_LIST", pyNone{}, -1},
			"QRD_1": []any{"leaf", pyNone{}, "TS", "it's", "HL70001", 26},
		},
		"GROUPS": map[string]any{
			"G": []any{"choice", []any{
				[]any{"OBR", pyRef{"SEGMENTS", "OBR"}, []any{1, 1}, "SEG"},
				[]any{"NESTED", pyNone{}, []any{0, -1}, "GRP"},
			}},
			"E": []any{"sequence"},
			"S": []any{"ab"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
}

func TestParseModuleErrors(t *testing.T) {
	for _, src := range []string{"X = {'a': 1", "X = {'a' 1}", "X = ('unterminated)", "X = {1: 2}", "X = @"} {
		if _, err := parseModule(src); err == nil {
			t.Errorf("parseModule(%q) succeeded", src)
		}
	}
}

func TestHelpers(t *testing.T) {
	if position("PID_28") != 28 || position("CX_1") != 1 {
		t.Error("position")
	}
	if tableNum("HL70001") != 1 || tableNum("HL70396") != 396 || tableNum(pyNone{}) != 0 {
		t.Error("tableNum")
	}
	if min, max := card([]any{1, -1}); min != 1 || max != -1 {
		t.Error("card")
	}
	if titleCase("SET_ID_PID") != "Set Id Pid" {
		t.Error("titleCase")
	}
	if !versionLess("2.5", "2.5.1") || !versionLess("2.9", "2.10") || versionLess("2.8.2", "2.8.1") {
		t.Error("versionLess")
	}
}
