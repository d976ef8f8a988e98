//go:build interop

package hl7v2

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// key locates one decoded leaf value.
type key struct {
	seg             string
	occ, f, r, c, s int
}

func (k key) String() string {
	return fmt.Sprintf("%s[%d]-%d[%d].%d.%d", k.seg, k.occ, k.f, k.r, k.c, k.s)
}

// leaves returns every non-empty leaf value of m, keyed like HAPI's dump.
func leaves(m *Message) map[key]string {
	out := map[key]string{}
	occ := map[string]int{}
	for _, seg := range m.Segments() {
		name := seg.Name()
		occ[name]++
		header := seg.isHeader()
		for f := 1; f <= seg.NumFields(); f++ {
			if header && f <= 2 {
				continue
			}
			field := seg.Field(f)
			for r, rep := range field.Reps() {
				for c := 1; c <= rep.NumComps(); c++ {
					comp := rep.Comp(c)
					for s := 1; s <= comp.NumSubs(); s++ {
						if v := comp.Sub(s).String(); v != "" {
							out[key{name, occ[name], f, r + 1, c, s}] = v
						}
					}
				}
			}
		}
	}
	return out
}

// TestCrossCheckWithHAPI parses every corpus message with HAPI HL7v2 and
// with this package and compares them value by value. It writes the report
// to HL7BUS_TEST_CROSSCHECK_REPORT (or the test's temp dir).
func TestCrossCheckWithHAPI(t *testing.T) {
	cp := os.Getenv("HL7BUS_TEST_HAPI_CP")
	if cp == "" {
		t.Fatal("HL7BUS_TEST_HAPI_CP must be the HAPI peer's classpath (scripts/interop.sh sets it)")
	}
	files := sharedCorpus(t, "fhir-converter/hl7v2/*.hl7")
	for _, f := range sharedCorpus(t, "python-hl7/*.hl7") {
		if b := filepath.Base(f); !strings.HasPrefix(b, "sample_bad") && !strings.Contains(b, "batch") && !strings.Contains(b, "file") {
			files = append(files, f)
		}
	}
	out, err := exec.Command("java", append([]string{"-cp", cp, "org.hl7bus.interop.HapiPeer", "dump"}, files...)...).Output()
	if err != nil {
		t.Fatalf("HAPI dump: %v", err)
	}
	hapi := map[string]map[key]string{}
	skipped := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 8)
		if len(parts) == 3 && parts[1] == "SKIP" {
			skipped[parts[0]] = parts[2]
			continue
		}
		if len(parts) != 8 {
			t.Fatalf("bad dump line %q", sc.Text())
		}
		var k key
		k.seg = parts[1]
		fmt.Sscan(parts[2], &k.occ)
		fmt.Sscan(parts[3], &k.f)
		fmt.Sscan(parts[4], &k.r)
		fmt.Sscan(parts[5], &k.c)
		fmt.Sscan(parts[6], &k.s)
		if hapi[parts[0]] == nil {
			hapi[parts[0]] = map[key]string{}
		}
		hapi[parts[0]][k] = unescapeDump(parts[7])
	}
	var report, unexplained []string
	compared, agreed, messages, whitespace := 0, 0, 0, 0
	for _, f := range files {
		if _, ok := skipped[f]; ok {
			continue
		}
		data, _ := os.ReadFile(f)
		m, err := Parse(data)
		if err != nil {
			report = append(report, fmt.Sprintf("%s: HAPI parses it, hl7v2 does not: %v", filepath.Base(f), err))
			continue
		}
		messages++
		ours, theirs := leaves(m), hapi[f]
		all := map[key]bool{}
		for k := range ours {
			all[k] = true
		}
		for k := range theirs {
			all[k] = true
		}
		for k := range all {
			compared++
			if ours[k] == theirs[k] {
				agreed++
				continue
			}
			line := fmt.Sprintf("%s\t%s\thl7v2=%q\tHAPI=%q", filepath.Base(f), k, ours[k], theirs[k])
			report = append(report, line)
			// HAPI trims leading and trailing spaces; hl7v2 keeps every
			// byte (docs/conformance.md explains why). Anything else is a
			// disagreement to fix or explain.
			if strings.TrimSpace(ours[k]) == strings.TrimSpace(theirs[k]) {
				whitespace++
			} else {
				unexplained = append(unexplained, line)
			}
		}
	}
	sort.Strings(report)
	var skippedLines []string
	for f, why := range skipped {
		skippedLines = append(skippedLines, fmt.Sprintf("%s: %s", filepath.Base(f), why))
	}
	sort.Strings(skippedLines)
	summary := fmt.Sprintf("files %d, HAPI could not parse %d, messages compared %d, values compared %d, agreed %d (%.3f%%), disagreements %d (surrounding whitespace %d, unexplained %d)",
		len(files), len(skipped), messages, compared, agreed, 100*float64(agreed)/float64(max(compared, 1)), len(report), whitespace, len(unexplained))
	path := os.Getenv("HL7BUS_TEST_CROSSCHECK_REPORT")
	if path == "" {
		path = filepath.Join(t.TempDir(), "crosscheck.txt")
	}
	body := summary + "\n\nHAPI could not parse:\n" + strings.Join(skippedLines, "\n") + "\n\nDisagreements:\n" + strings.Join(report, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log(summary)
	t.Logf("report: %s", path)
	sort.Strings(unexplained)
	for _, u := range unexplained {
		t.Errorf("unexplained disagreement with HAPI (fix it, or explain it in docs/conformance.md and here): %s", u)
	}
	if messages < 100 {
		t.Errorf("only %d messages compared", messages)
	}
}

func unescapeDump(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\r`, "\r", `\n`, "\n").Replace(s)
}
