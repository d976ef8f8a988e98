package mapping

import (
	"os"
	"testing"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// benchRules are the issue's budget case: 20 operations, three of them
// table lookups, on the 2 KB ORU^R01 of libs/hl7v2/testdata, at most
// 20 µs per message on one core. Two operations use a wildcard (every
// OBX), as real rule sets do, two have a CEL condition and one computes
// its value in CEL.
const benchRules = `
- {name: receiver, when: "msg.type == 'ORU' && msg.sending_facility != 'TEST'", set: {path: MSH-5, value: LIS}}
- {name: receiving-facility, set: {path: MSH-6, value: NATLAB}}
- {name: mrn-to-alt, copy: {from: "PID-3[1].1", to: PID-2}}
- {name: mv, move: {from: PID-19, to: PID-20}}
- {name: no-phone, when: "msg.has('PID-13')", clear: {path: PID-13}}
- {name: no-obs-by, clear: {path: "OBX[*]-16"}}
- {name: no-notes, delete_segment: {segment: NTE}}
- {name: hub, add_segment: {segment: "ZHB|1|NATIONAL^HUB", after: MSH}}
- {name: loinc, map: {path: "OBR-4.1", table: lab_codes, system_path: "OBR-4.3", display_path: "OBR-4.2", unmapped: flag}}
- {name: sex, map: {path: PID-8, table: sex}}
- {name: facility, map: {path: MSH-4.1, table: facilities, system_path: MSH-4.3, unmapped: reject}}
- {name: utc-obr, normalize: {path: "OBR-7", to: utc}}
- {name: utc-msh, normalize: {path: MSH-7, to: utc}}
- {name: dob-day, normalize: {path: PID-7, precision: day}}
- {name: final, set: {path: "OBX[*]-11", value: F}}
- {name: units, copy: {from: "OBX-6.1", to: "OBX-6.2"}}
- {name: location, set: {path: PV1-3.4, value: NATLAB}}
- {name: no-address, clear: {path: PID-11}}
- {name: v26, version: {to: "2.6"}}
- {name: stamp, set: {path: ZHB-3, expr: "'HUB-' + interface"}}
`

// benchRulesWildcards is a heavier set: the same 20 operations with six of
// them over every OBX (9 in the sample), so the loinc map alone does 9
// lookups and 27 writes; about 80 writes in all.
const benchRulesWildcards = `
- {name: receiver, set: {path: MSH-5, value: LIS}}
- {name: receiving-facility, set: {path: MSH-6, value: NATLAB}}
- {name: mrn-to-alt, copy: {from: "PID-3[1].1", to: PID-2}}
- {name: mv, move: {from: PID-19, to: PID-20}}
- {name: no-phone, clear: {path: PID-13}}
- {name: no-obs-by, clear: {path: "OBX[*]-16"}}
- {name: no-notes, delete_segment: {segment: NTE}}
- {name: hub, add_segment: {segment: "ZHB|1|NATIONAL^HUB", after: MSH}}
- {name: loinc, map: {path: "OBX[*]-3.1", table: lab_codes, system_path: "OBX[*]-3.3", display_path: "OBX[*]-3.2", unmapped: flag}}
- {name: sex, map: {path: PID-8, table: sex}}
- {name: facility, map: {path: MSH-4.1, table: facilities, system_path: MSH-4.3, unmapped: reject}}
- {name: utc-obr, normalize: {path: "OBR[*]-7", to: utc}}
- {name: utc-msh, normalize: {path: MSH-7, to: utc}}
- {name: obs-minute, normalize: {path: "OBX[*]-14", precision: minute}}
- {name: final, set: {path: "OBX[*]-11", value: F}}
- {name: units, copy: {from: "OBX[*]-6.1", to: "OBX[*]-6.2"}}
- {name: location, set: {path: PV1-3.4, value: NATLAB}}
- {name: no-address, clear: {path: PID-11}}
- {name: v26, version: {to: "2.6"}}
- {name: stamp, set: {path: ZHB-3, value: HUB-LAB}}
`

func benchTables() Tables {
	t := testTables()
	loinc := map[string]Entry{}
	loinc["58410-2"] = Entry{Code: "58410-2", System: "http://loinc.org", Display: "CBC panel"}
	for _, c := range []string{"6690-2", "789-8", "718-7", "4544-3", "787-2", "785-6", "786-4", "777-3", "770-8"} {
		loinc[c] = Entry{Code: c, System: "http://loinc.org", Display: "LOINC " + c}
	}
	t["lab_codes"] = testTable("lab_codes", loinc)
	t["sex"] = testTable("sex", map[string]Entry{"M": {Code: "M"}, "F": {Code: "F"}})
	t["facilities"] = testTable("facilities", map[string]Entry{"NATLAB": {Code: "2.16.840.1.113883.3.999", System: "ISO"}})
	return t
}

func BenchmarkApplyORU(b *testing.B) { benchApply(b, benchRules, 1) }

// BenchmarkApplyORUWildcards applies benchRulesWildcards.
func BenchmarkApplyORUWildcards(b *testing.B) { benchApply(b, benchRulesWildcards, 9) }

func benchApply(b *testing.B, rules string, mapped int) {
	raw, err := os.ReadFile("../hl7v2/testdata/oru_r01_2k.hl7")
	if err != nil {
		b.Fatal(err)
	}
	m, err := hl7v2.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	env, err := NewEnv(benchTables())
	if err != nil {
		b.Fatal(err)
	}
	rs, err := Compile("interfaces[0].rules", rulesYAML(b, rules), env, Inbound)
	if err != nil {
		b.Fatal(err)
	}
	if rs.Len() != 20 {
		b.Fatalf("%d rules", rs.Len())
	}
	vars := Vars{Interface: "lab-in"}
	res, err := rs.Apply(m.Clone(), vars)
	if err != nil || len(res.Messages) != 1 || len(res.Issues) != 1 { // OBR-7 has no offset: flagged
		b.Fatalf("apply: %v, %d messages, issues %v", err, len(res.Messages), res.Issues)
	}
	sys := 0
	for _, p := range []string{"OBR-4.3", "OBX[*]-3.3"} {
		q, _ := hl7v2.ParsePath(p)
		for _, v := range res.Messages[0].Values(q) {
			if v.String() == "http://loinc.org" {
				sys++
			}
		}
	}
	if sys != mapped {
		b.Fatalf("%d codes mapped, want %d", sys, mapped)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rs.Apply(m.Clone(), vars); err != nil {
			b.Fatal(err)
		}
	}
}
