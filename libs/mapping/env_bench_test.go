package mapping

import (
	"fmt"
	"strings"
	"testing"
)

// celRoutes50 are 50 route predicates of the kind a hub's routes table
// holds: message type and facility lists, content (a notifiable code
// among the results), header fields and patient identifiers; each with
// its own constants, as 50 real routes would have.
func celRoutes50() []string {
	templates := []string{
		"msg.type == 'ORU' && msg.sending_facility in ['NATLAB', 'LAB{i}', 'LAB{i}B', 'REFLAB']",
		"msg.type == 'ORU' && msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)",
		"msg.type == 'ADT' && msg.trigger in ['A01', 'A04', 'A08'] && msg.sending_facility == 'HOSP{i}'",
		"msg.field('OBR-4.1') in ['58410-2', '{i}-1', '24323-8']",
		"interface == 'lab-{i}' || msg.receiving_facility == 'GENHOSP'",
		"msg.field('PID-3[2].4') == 'NIMC' && msg.processing_id == 'P'",
		"msg.has('NTE-3') && msg.version.startsWith('2.5')",
		"msg.field('PV1-2') == 'O' && msg.field('PV1-3.1') == 'OPD' && msg.type != 'ADT'",
		"lookup(tables.lab_codes, msg.field('OBX[1]-3.1')) != '' || msg.field('MSH-11') == 'T'",
		"msg.fields('OBX[*]-8').exists(f, f in ['H', 'L', 'A']) && msg.sending_facility != 'LAB{i}'",
	}
	out := make([]string, 0, 50)
	for i := range 50 {
		out = append(out, strings.ReplaceAll(templates[i%len(templates)], "{i}", fmt.Sprint(i)))
	}
	return out
}

func celBenchTables() Tables {
	notifiable := map[string]Entry{"718-7": {Code: "718-7"}}
	for i := range 50 {
		c := fmt.Sprintf("%d-%d", 94000+i, i%10)
		notifiable[c] = Entry{Code: c}
	}
	return Tables{
		"notifiable": NewTable("notifiable", "1", notifiable),
		"lab_codes":  NewTable("lab_codes", "1", map[string]Entry{"GLU": {Code: "2345-7"}}),
	}
}

// BenchmarkEvalRoutes50 evaluates 50 route predicates over the 2 KB
// ORU^R01, one op being all 50 (the bar: 10 µs on one core).
func BenchmarkEvalRoutes50(b *testing.B) {
	env, err := NewEnv(celBenchTables())
	if err != nil {
		b.Fatal(err)
	}
	var progs []*Program
	for i, expr := range celRoutes50() {
		p, err := env.CompileBool(fmt.Sprintf("routes[%d].when", i), expr)
		if err != nil {
			b.Fatal(err)
		}
		progs = append(progs, p)
	}
	vars := celTestVars(b)
	matched := 0
	for _, p := range progs {
		ok, err := p.EvalBool(vars)
		if err != nil {
			b.Fatal(err)
		}
		if ok {
			matched++
		}
	}
	if matched == 0 || matched == len(progs) {
		b.Fatalf("%d of %d routes match: the benchmark would not measure both outcomes", matched, len(progs))
	}
	b.ReportAllocs()
	cpuPerOp(b, func() {
		for _, p := range progs {
			if _, err := p.EvalBool(vars); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEvalField is one msg.field over a constant path: the cached
// path, the segment scan and the value's string.
func BenchmarkEvalField(b *testing.B) {
	env := celTestEnv(b)
	p, err := env.CompileBool("when", "msg.field('PID-3[2].4') == 'NIMC'")
	if err != nil {
		b.Fatal(err)
	}
	vars := celTestVars(b)
	b.ReportAllocs()
	cpuPerOp(b, func() {
		if ok, err := p.EvalBool(vars); err != nil || !ok {
			b.Fatal(ok, err)
		}
	})
}
