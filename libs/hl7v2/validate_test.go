package hl7v2

import (
	"fmt"
	"strings"
	"testing"
)

const (
	vMSH = `MSH|^~\&|HIS|GENHOSP|LIS|NATLAB|20240301101500||ADT^A01^ADT_A01|C1|P|2.5`
	vEVN = `EVN|A01|20240301101500`
	vPID = `PID|1||123^^^GENHOSP^MR||DOE^JANE||19800101|F`
	vPV1 = `PV1|1|I`
)

// issueKeys renders issues as "SEVERITY rule location" for comparison.
func issueKeys(r *Report) []string {
	var out []string
	for _, i := range r.Issues {
		out = append(out, fmt.Sprintf("%s %s %s %d", i.Severity, i.Rule, i.Location, i.Code))
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		segs []string
		want []string // exact issue list
	}{
		{"valid ADT^A01", []string{vMSH, vEVN, vPID, vPV1}, nil},
		{"Z-segment anywhere", []string{vMSH, vEVN, "ZPI|x", vPID, vPV1, "ZZ1|y"}, nil},
		{"explicit null satisfies nothing but is not an error", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||""`, vPV1}, nil},
		{"required field missing", []string{vMSH, vEVN, `PID|1||||DOE^JANE`, vPV1},
			[]string{"E required PID[1]-3 101"}},
		{"bad date", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19801301`, vPV1},
			[]string{"E datatype PID[1]-7[1] 102"}},
		{"bad date/time", []string{vMSH, `EVN|A01|2024-03-01`, vPID, vPV1},
			[]string{"E datatype EVN[1]-2[1] 102"}},
		{"table value", []string{strings.Replace(vMSH, "|P|2.5", "|X|2.5", 1), vEVN, vPID, vPV1},
			[]string{"E table MSH[1]-11[1].1 103"}},
		{"bad sequence ID", []string{vMSH, vEVN, `PID|one||123^^^H^MR||DOE`, vPV1},
			[]string{"E datatype PID[1]-1[1] 102"}},
		{"missing segment", []string{vMSH, vPID, vPV1},
			[]string{"E structure.required EVN 100"}},
		{"out of order", []string{vMSH, vEVN, vPV1, vPID},
			[]string{"E structure.required PID 100", "E structure.sequence PID[1] 100"}},
		{"unknown segment kept", []string{vMSH, vEVN, vPID, "QAK|1", vPV1},
			[]string{"W structure.unexpected-segment QAK[1] 100"}},
		{"too long", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE|||FEMALE`, vPV1},
			[]string{"W length PID[1]-8[1] 104"}},
		{"repeats", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19800101~19800102`, vPV1},
			[]string{"W repetition PID[1]-7 102"}},
		{"malformed escape", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE\Q\`, vPV1},
			[]string{"W escape PID[1]-5 102"}},
		{"version", []string{strings.Replace(vMSH, "|2.5", "|3.0", 1), vEVN, vPID, vPV1},
			[]string{"E version MSH[1]-12 203"}},
		{"no version", []string{strings.Replace(vMSH, "|2.5", "|", 1), vEVN, vPID, vPV1},
			[]string{"E required MSH[1]-12 101"}},
		{"message type", []string{strings.Replace(vMSH, "ADT^A01^ADT_A01", "XYZ^A01", 1), vEVN},
			[]string{"E message-type MSH[1]-9.1 200"}},
		{"event", []string{strings.Replace(vMSH, "ADT^A01^ADT_A01", "ADT^Z99", 1), vEVN},
			[]string{"E event MSH[1]-9.2 201"}},
		{"unknown charset", []string{vMSH + "|||||US|KLINGON", vEVN, vPID, vPV1},
			[]string{"W charset MSH[1]-18 102"}},
		{"invalid utf-8", []string{vMSH, vEVN, "PID|1||123^^^H^MR||D\xffE", vPV1},
			[]string{"W charset PID[1] 102"}},
		{"event maps to structure", []string{strings.Replace(vMSH, "ADT^A01^ADT_A01", "ADT^A04", 1), vEVN, vPID, vPV1}, nil},
		{"v2.3 TS", []string{strings.Replace(vMSH, "ADT^A01^ADT_A01|C1|P|2.5", "ADT^A01|C1|P|2.3", 1), `EVN|A01|yesterday`, vPID, vPV1},
			[]string{"E datatype EVN[1]-2[1] 102"}},
		{"v2.8 withdrawn EVN-1 still sent", []string{strings.Replace(vMSH, "|2.5", "|2.8", 1), vEVN, vPID, vPV1}, nil},
		{"coded value naming its table", []string{strings.Replace(vMSH, "|2.5", "|2.7", 1), vEVN, `PID|1||123^^^H^MR||DOE||19800101|Q^Queer^HL70001`, vPV1},
			[]string{"E table PID[1]-8[1].1 103"}},
		{"coded value without coding system", []string{strings.Replace(vMSH, "|2.5", "|2.7", 1), vEVN, `PID|1||123^^^H^MR||DOE||19800101|Q`, vPV1},
			[]string{"W table.coded PID[1]-8[1].1 103"}},
		{"coded value of another system", []string{strings.Replace(vMSH, "|2.5", "|2.7", 1), vEVN, `PID|1||123^^^H^MR||DOE||19800101|248152002^Female^SCT`, vPV1}, nil},
		{"coded value in table", []string{strings.Replace(vMSH, "|2.5", "|2.7", 1), vEVN, `PID|1||123^^^H^MR||DOE||19800101|F^Female^HL70001`, vPV1}, nil},
		{"user-defined value not checked by default", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19800101|Q`, vPV1}, nil},
		{"ACK", []string{`MSH|^~\&|LIS|NATLAB|HIS|GENHOSP|20240301||ACK^A01^ACK|A1|P|2.5`, `MSA|AA|C1`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Validate(mustParse(t, msg(tt.segs...)))
			got := issueKeys(r)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if r.Valid() != !strings.Contains(strings.Join(tt.want, " "), "E ") {
				t.Errorf("Valid() = %v", r.Valid())
			}
		})
	}
}

func TestValidateReportsStructureAndVersion(t *testing.T) {
	r := Validate(mustParse(t, msg(strings.Replace(vMSH, "ADT^A01^ADT_A01|C1|P|2.5", "ADT^A08|C1|P|2.5.1", 1), vEVN, vPID, vPV1)))
	if r.Version != "2.5.1" || r.Structure != "ADT_A01" {
		t.Errorf("version %q structure %q", r.Version, r.Structure)
	}
}

func TestIssuesCarryNoContent(t *testing.T) {
	r := Validate(mustParse(t, msg(vMSH, vEVN, `PID|SECRETNAME||123^^^H^MR||DOE||BIRTHDAY|FEMALEX`, vPV1)))
	if len(r.Issues) == 0 {
		t.Fatal("expected issues")
	}
	for _, i := range r.Issues {
		if strings.Contains(i.Text, "SECRET") || strings.Contains(i.Text, "BIRTHDAY") || strings.Contains(i.Text, "FEMALEX") {
			t.Errorf("issue quotes content: %s", i)
		}
	}
}

func TestProfile(t *testing.T) {
	p, err := ParseProfile([]byte(`
name: natlab
message_types: ["ADT^A01", "ORU"]
versions: ["2.5"]
required: ["PID-7", "PID[1]-8", "NK1-2"]
values:
  PID-8: [F, M]
forbidden_segments: [ZPI]
severity:
  length: error
  structure.unexpected-segment: ignore
`))
	if err != nil {
		t.Fatal(err)
	}
	v := NewValidator(p)
	tests := []struct {
		name string
		segs []string
		want []string
	}{
		{"conforms", []string{vMSH, vEVN, vPID, vPV1}, nil},
		{"required and values", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE|||X`, vPV1},
			[]string{"E profile.required PID[1]-7 101", "E profile.values PID[1]-8 103"}},
		{"required in every occurrence", []string{vMSH, vEVN, vPID, "NK1|1|SMITH", "NK1|2", vPV1},
			[]string{"E profile.required NK1[2]-2 101"}},
		{"forbidden segment", []string{vMSH, vEVN, vPID, "ZPI|1", vPV1},
			[]string{"E profile.forbidden-segment ZPI[1] 100"}},
		{"severity raised", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19800101|FF`, vPV1},
			[]string{"E length PID[1]-8[1] 104", "E profile.values PID[1]-8 103"}},
		{"rule ignored", []string{vMSH, vEVN, vPID, "QAK|1", vPV1}, nil},
		{"user-defined table when asked", []string{vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19800101|Q`, vPV1},
			[]string{"E profile.values PID[1]-8 103"}},
		{"type and version", []string{strings.Replace(vMSH, "ADT^A01^ADT_A01|C1|P|2.5", "ADT^A04|C1|P|2.5.1", 1), vEVN, vPID, vPV1},
			[]string{"E profile.message-type MSH[1]-9 200", "E profile.version MSH[1]-12 203"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := issueKeys(v.Validate(mustParse(t, msg(tt.segs...))))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestUserDefinedTableOnRequest(t *testing.T) {
	p, err := ParseProfile([]byte("name: x\nseverity:\n  table.user-defined: warning\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := issueKeys(NewValidator(p).Validate(mustParse(t, msg(vMSH, vEVN, `PID|1||123^^^H^MR||DOE||19800101|Q`, vPV1))))
	if strings.Join(got, ";") != "W table.user-defined PID[1]-8[1] 103" {
		t.Errorf("issues = %v", got)
	}
}

func TestValidateControlCharacters(t *testing.T) {
	obx := func(typ, value string) string { return "OBX|1|" + typ + "|8302-2^Height^LN||" + value + "||||||F" }
	soh := func(seg string) string { return strings.ReplaceAll(seg, "|", "\x01") }
	oru := strings.Replace(vMSH, "ADT^A01^ADT_A01", "ORU^R01^ORU_R01", 1)
	tests := []struct {
		name string
		segs []string
		want []string
	}{
		{"probe 1.6: NUL in PID-5", []string{vMSH, vEVN, "PID|1||123^^^GENHOSP^MR||DOE\x00\x00^JANE||19800101|F", vPV1},
			[]string{"E control-character PID[1]-5[1].1 102"}},
		{"NUL in a subcomponent", []string{vMSH, vEVN, "PID|1||123^^^GENHOSP&x\x00y^MR||DOE^JANE||19800101|F", vPV1},
			[]string{"E control-character PID[1]-3[1].4.2 102"}},
		{"escape character ESC in the second repetition", []string{vMSH, vEVN, "PID|1||123^^^H^MR~45\x1b6^^^H^MR||DOE^JANE||19800101|F", vPV1},
			[]string{"E control-character PID[1]-3[2].1 102"}},
		{"one issue per field", []string{vMSH, vEVN, "PID|1||123^^^H^MR||D\x01O\x02E^J\x03||19800101|F", vPV1},
			[]string{"E control-character PID[1]-5[1].1 102"}},
		{"Z-segment and unknown version too", []string{strings.Replace(vMSH, "|2.5", "|9.9", 1), "ZZ1|a\x00b"},
			[]string{"E version MSH[1]-12 203", "E control-character ZZ1[1]-1[1].1 102"}},
		{"SUB inside a field", []string{vMSH, vEVN, vPID, "PV1|1|I|W\x1aARD"},
			[]string{"E control-character PV1[1]-3[1].1 102"}},
		{"TAB and LF in TX are text", []string{oru, vPID, "OBR|1|||8302-2^Height^LN", obx("TX", "line one\nline\ttwo")}, nil},
		{"TAB in FT is text", []string{oru, vPID, "OBR|1|||8302-2^Height^LN", "NTE|1||a\tb"}, nil},
		{"TAB in a name is layout, not data", []string{vMSH, vEVN, "PID|1||123^^^H^MR||DOE\tX^JANE||19800101|F", vPV1},
			[]string{"W control-character.layout PID[1]-5[1].1 102"}},
		{"LF in ST OBX-5", []string{oru, vPID, "OBR|1|||8302-2^Height^LN", obx("ST", "a\nb")},
			[]string{"W control-character.layout OBX[1]-5[1].1 102"}},
		{"TAB in a Z-segment is not judged", []string{vMSH, vEVN, vPID, vPV1, "ZZ1|a\tb"}, nil},
		{"control character as a delimiter is fine", []string{soh(vMSH), soh(vEVN), soh(vPID), soh(vPV1)}, nil},
		{"DEL and bytes above 0x7F are not C0", []string{vMSH, vEVN, "PID|1||123^^^H^MR||DO\x7fE^JANE||19800101|F", vPV1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := issueKeys(Validate(mustParse(t, msg(tt.segs...))))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
