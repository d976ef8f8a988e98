package mapping

import (
	"errors"
	"os"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// FuzzApply builds rules of every operation from random paths and segment
// names and applies them to random messages: compiling either succeeds or
// fails with an error, applying never panics, fails only with a
// *RuleError, and every message it returns encodes to bytes that parse.
func FuzzApply(f *testing.F) {
	oru, err := os.ReadFile("../hl7v2/testdata/oru_r01_2k.hl7")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ a, b, seg string }{
		{"OBX[*]-3.1", "OBX[*]-3.3", "OBR"}, {"PID-3[*].1", "PID-4[*].1", "NTE"}, {"MSH-7", "MSH-5", "ZHB|1|X^Y"},
		{"OBR[*]-7", "OBR[*]-8", "OBX[2]"}, {"PID-5[2].1.2", "ZZZ[3]-1", "PID"}, {"MSH-12", "MSH-9.3", "ORC"},
	} {
		f.Add(s.a, s.b, s.seg, oru)
	}
	f.Add("PID-3", "PID-2", "NTE", []byte("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.3\rPID|1||x~y^z&w\r"))
	f.Add("ZHB-1", "MSH-10", "OBR", []byte("MSH!#~\\&!A!B\nOBR!1\nOBR!2\nORC!x\nOBR!3\n"))
	env := testEnv(f)
	f.Fuzz(func(t *testing.T, a, b, seg string, data []byte) { fuzzApply(t, env, a, b, seg, data) })
}

func fuzzApply(t *testing.T, env *Env, a, b, seg string, data []byte) {
	{
		m, err := hl7v2.Parse(data)
		if err != nil {
			return
		}
		val := "v^al|ue"
		rules := []Rule{
			{Name: "set", Set: &SetOp{Path: b, Value: &val}},
			{Name: "copy", Copy: &CopyOp{From: a, To: b}},
			{Name: "map", Map: &MapOp{Path: a, Table: "lab_codes", SystemPath: b, Unmapped: UnmappedFlag}},
			{Name: "normalize", Normalize: &NormalizeOp{Path: a, To: "utc", Precision: "minute"}},
			{Name: "move", Move: &CopyOp{From: b, To: a}},
			{Name: "clear", Clear: &PathOp{Path: a}},
			{Name: "delete", DeleteSegment: &SegmentOp{Segment: seg}},
			{Name: "add", AddSegment: &AddSegmentOp{Segment: seg, After: seg}},
			{Name: "add-end", AddSegment: &AddSegmentOp{Segment: seg}},
			{Name: "version", Version: &VersionOp{To: "2.3"}},
			{Name: "version-up", Version: &VersionOp{To: "2.8.2"}},
			{Name: "split", Split: &SplitOp{Segment: seg}},
		}
		// Each rule on its own, so one failing does not hide the others,
		// then all of them together.
		sets := make([][]Rule, 0, len(rules)+1)
		for i := range rules {
			sets = append(sets, rules[i:i+1])
		}
		sets = append(sets, rules)
		for _, set := range sets {
			rs, err := Compile("r", set, env, Inbound)
			if err != nil {
				continue
			}
			res, err := rs.Apply(m.Clone(), Vars{})
			if err != nil {
				var re *RuleError
				if !errors.As(err, &re) {
					t.Fatalf("Apply error is %T, not a *RuleError: %v", err, err)
				}
				continue
			}
			for _, out := range res.Messages {
				if _, err := hl7v2.Parse(out.Bytes()); err != nil {
					t.Fatalf("rule %s made a message that does not parse: %v", set[0].Name, err)
				}
			}
		}
	}
}
