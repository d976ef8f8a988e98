package mapping

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/common/ast"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// celTestMessage parses the 2 KB ORU^R01 of libs/hl7v2's test data.
func celTestMessage(t testing.TB) *hl7v2.Message {
	t.Helper()
	b, err := os.ReadFile("../hl7v2/testdata/oru_r01_2k.hl7")
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func celTestTables() Tables {
	return Tables{
		"lab_codes": NewTable("lab_codes", "3", map[string]Entry{
			"GLU": {Code: "2345-7", System: "LN", Display: "Glucose"},
			"HGB": {Code: "718-7", System: "LN", Display: "Hemoglobin"},
		}),
		"notifiable": NewTable("notifiable", "1", map[string]Entry{
			"718-7":   {Code: "718-7"},
			"94500-6": {Code: "94500-6"},
		}),
	}
}

func celTestEnv(t testing.TB) *Env {
	t.Helper()
	env, err := NewEnv(celTestTables())
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func celTestVars(t testing.TB) *Vars {
	return &Vars{
		Msg:       celTestMessage(t),
		Interface: "lab-in",
		Receipt: Receipt{
			MessageID:       "01HZX",
			ParentMessageID: "01HZW",
			ReceivedAt:      time.Date(2024, 3, 1, 9, 15, 0, 0, time.UTC),
		},
	}
}

func TestEvalBool(t *testing.T) {
	env := celTestEnv(t)
	vars := celTestVars(t)
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"msg.type == 'ORU'", true},
		{"msg.type == 'ADT'", false},
		{"msg.trigger == 'R01' && msg.structure == 'ORU_R01'", true},
		{"msg.version == '2.5.1'", true},
		{"msg.control_id == 'LAB000123456'", true},
		{"msg.processing_id == 'P'", true},
		{"msg.sending_application == 'LABSYS' && msg.sending_facility == 'NATLAB'", true},
		{"msg.receiving_application == 'HIS' && msg.receiving_facility == 'GENHOSP'", true},
		{"msg.sending_facility in ['NATLAB', 'OTHERLAB']", true},
		{"msg.sending_facility in ['OTHERLAB']", false},
		{"interface == 'lab-in' && destination == ''", true},
		{"receipt.message_id == '01HZX' && receipt.parent_message_id == '01HZW'", true},
		{"receipt.received_at > timestamp('2024-03-01T09:00:00Z')", true},
		{"receipt.received_at > timestamp('2024-03-01T10:00:00Z')", false},
		// msg.field: first value, "" when absent.
		{"msg.field('MSH-11') == 'P'", true},
		{"msg.field('PID-3.1') == '123456'", true},
		{"msg.field('PID-3[2].4') == 'NIMC'", true},
		{"msg.field('OBX[3]-5') == '13.2'", true},
		{"msg.field('OBX[*]-5') == '6.1'", true},
		{"msg.field('ZZZ-1') == ''", true},
		{"msg.field('NTE-3').contains('senior scientist')", true},
		// msg.fields: every value, wildcards on occurrence and repetition.
		{"msg.fields('OBX[*]-3.1').size() == 9", true},
		{"msg.fields('OBX[*]-3.1')[2] == '718-7'", true},
		{"msg.fields('PID-3[*].5') == ['MR', 'NI']", true},
		{"msg.fields('PID-3.5') == ['MR']", true},
		{"msg.fields('OBX[*]-8').filter(f, f == 'L').size() == 2", true},
		{"msg.fields('ZZZ[*]-1') == []", true},
		{"msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)", true},
		{"msg.fields('OBX[*]-3.1').exists(c, c == '94500-6')", false},
		// msg.has: present and not empty.
		{"msg.has('NTE-3')", true},
		{"msg.has('PID-2')", false},
		{"msg.has('ZZZ-1')", false},
		{"msg.has('OBX[*]-5')", true},
		// tables.<name> and lookup.
		{"'GLU' in tables.lab_codes", true},
		{"'XYZ' in tables.lab_codes", false},
		{"tables.lab_codes['GLU'].code == '2345-7'", true},
		{"tables.lab_codes['GLU'].system == 'LN' && tables.lab_codes['HGB'].display == 'Hemoglobin'", true},
		{"tables.lab_codes['GLU'] == {'code': '2345-7', 'system': 'LN', 'display': 'Glucose'}", true},
		{"tables.lab_codes.size() == 2", true},
		{"tables.lab_codes.exists(k, k == 'HGB')", true},
		{"lookup(tables.lab_codes, 'GLU') == '2345-7'", true},
		{"lookup(tables.lab_codes, 'NOPE') == ''", true},
		// The strings extension is on.
		{"msg.sending_facility.lowerAscii() == 'natlab'", true},
		// A path computed at run time.
		{"msg.field('PID-' + '8') == 'M'", true},
	} {
		p, err := env.CompileBool("when", tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got, err := p.EvalBool(vars)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestEvalString(t *testing.T) {
	env := celTestEnv(t)
	vars := celTestVars(t)
	vars.Destination = "national"
	for _, tc := range []struct{ expr, want string }{
		{"'HUB-' + interface", "HUB-lab-in"},
		{"destination", "national"},
		{"lookup(tables.lab_codes, 'HGB')", "718-7"},
		{"tables.lab_codes['HGB'].display", "Hemoglobin"},
		{"msg.field('OBX[2]-3.1')", "789-8"},
		{"msg.fields('OBX[*]-1').join(',')", "1,2,3,4,5,6,7,8,9"},
		{"msg.has('PID-2') ? 'yes' : 'no'", "no"},
		{"string(receipt.received_at)", "2024-03-01T09:15:00Z"},
	} {
		p, err := env.CompileString("expr", tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got, err := p.EvalString(vars)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestCELCompileErrors(t *testing.T) {
	env := celTestEnv(t)
	for _, tc := range []struct {
		name, expr string
		str        bool
		want       string // the whole error text
	}{
		{"unknown table", "'A' in tables.nope", false,
			`routes[1].when: column 8: tables has no table "nope"; tables has lab_codes, notifiable`},
		// A misspelt field of msg or receipt names the field and lists
		// what exists, not cel-go's "does not support field selection".
		{"misspelt msg field", "msg.processing_idd == 'T'", false,
			`routes[1].when: column 4: msg has no field "processing_idd"; msg has type, trigger, structure, version, ` +
				`control_id, processing_id, sending_application, sending_facility, receiving_application, receiving_facility, ` +
				`and field(path), fields(path), has(path)`},
		{"misspelt msg field under a select", "msg.Type.x == 'T' || msg.trigger == 'A01'", false,
			`routes[1].when: column 4: msg has no field "Type"; msg has type, `},
		{"two misspelt msg fields", "msg.typ == 'ORU' && msg.x == ''", false,
			"routes[1].when: column 4: msg has no field \"typ\"; msg has type, trigger, structure, version, " +
				"control_id, processing_id, sending_application, sending_facility, receiving_application, receiving_facility, " +
				"and field(path), fields(path), has(path)\n" +
				"routes[1].when: column 24: msg has no field \"x\"; msg has type, "},
		{"misspelt receipt field", "receipt.x == ''", false,
			`routes[1].when: column 1: receipt has no field "x"; receipt has message_id, parent_message_id, received_at`},
		{"misspelt receipt field, second line", "msg.type == 'ORU' &&\n  receipt.received_att < timestamp('2026-01-01T00:00:00Z')", false,
			`routes[1].when: line 2, column 3: receipt has no field "received_att"; receipt has message_id, parent_message_id, received_at`},
		{"receipt alone", "receipt == ''", false,
			"routes[1].when: column 1: receipt is not a value by itself; receipt has message_id, parent_message_id, received_at"},
		{"unknown variable", "msg.type == 'ORU' && facility == 'X'", false,
			"routes[1].when: column 22: undeclared reference to 'facility' (in container '')"},
		{"not bool", "msg.type", false,
			"routes[1].when: must be a bool expression, this one is string"},
		{"not string", "msg.has('PID-3')", true,
			"routes[1].when: must be a string expression, this one is bool"},
		{"bad path constant", "msg.field('PID3') == ''", false,
			`routes[1].when: column 11: hl7v2: invalid path "PID3": too short; expected e.g. PID-3`},
		{"bad wildcard", "msg.has('OBX-3.[*]')", false,
			`routes[1].when: column 9: hl7v2: invalid path "OBX-3.[*]": component: expected a number`},
		{"two bad paths", "msg.has('PID-0') || msg.has('PID-1x')", false,
			"routes[1].when: column 9: hl7v2: invalid path \"PID-0\": field: \"0\" is not a positive index\n" +
				"routes[1].when: column 29: hl7v2: invalid path \"PID-1x\": unexpected \"x\""},
		{"wrong argument type", "msg.field(3) == ''", false,
			"routes[1].when: column 10: found no matching overload for 'field' applied to 'hl7bus.Message.(int)'"},
		{"lookup on a non-table", "lookup({'a': 'b'}, 'a') == ''", false,
			"routes[1].when: column 7: found no matching overload for 'lookup' applied to '(map(string, string), string)'"},
		{"second line", "msg.type == 'ORU' &&\n  nope", false,
			"routes[1].when: line 2, column 3: undeclared reference to 'nope' (in container '')"},
		{"syntax", "msg.type == ", false,
			"routes[1].when: column 13: Syntax error: mismatched input '<EOF>' expecting"},
		{"empty", "  ", false, "routes[1].when: empty expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.str {
				_, err = env.CompileString("routes[1].when", tc.expr)
			} else {
				_, err = env.CompileBool("routes[1].when", tc.expr)
			}
			if err == nil {
				t.Fatalf("compiled %q", tc.expr)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

// TestCELCompileErrorNoTables: with no table loaded, tables.<name> says
// so rather than listing nothing.
func TestCELCompileErrorNoTables(t *testing.T) {
	env, err := NewEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.CompileBool("k", "'A' in tables.facilities")
	want := `k: column 8: tables has no table "facilities"; no code table is configured (root key tables)`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

// interface is not a CEL reserved word (design.md names the variable so);
// this pins it against a cel-go upgrade that would reserve it.
func TestInterfaceIsAVariable(t *testing.T) {
	env := celTestEnv(t)
	p, err := env.CompileBool("when", "interface == 'x'")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.EvalBool(&Vars{Interface: "x"})
	if err != nil || !got {
		t.Fatalf("got %v, %v", got, err)
	}
}

// Runtime errors become dead-letter reasons and log lines: their text
// holds a fixed reason, the function and the column, never a value of
// the message or of a table (cel-go's own texts quote them).
func TestEvalErrors(t *testing.T) {
	env := celTestEnv(t)
	vars := celTestVars(t)
	// Values of the test message that must not show: PID-5.1, PID-5.2,
	// PID-3.1, PID-3[2].1, PID-7, PID-13, the NTE text.
	phi := []string{"OKAFOR", "CHIDI", "123456", "NG-1234567", "19850214", "2348012345678", "senior"}
	for _, tc := range []struct{ expr, want string }{
		{"tables.lab_codes[msg.field('PID-5.1')].code == ''",
			"evaluation: column 39: no such key in a map or table"},
		{"tables.lab_codes['NOPE'].code == ''",
			"evaluation: column 25: no such key in a map or table"},
		{"{'a': 'b'}[msg.field('PID-3.1')] == ''",
			"evaluation: column 11: no such key in a map or table in '[]'"},
		{"msg.fields('OBX[*]-3.1')[int(msg.field('PID-3.1'))] == ''",
			"evaluation: column 25: index out of range in '[]'"},
		{"[1, 2][int(msg.field('PID-7'))] == 1",
			"evaluation: column 7: index out of range in '[]'"},
		{"int(msg.field('PID-5.1')) > 0",
			"evaluation: column 4: type conversion failed in 'int'"},
		{"double(msg.field('PID-5.2')) > 0.0",
			"evaluation: column 7: type conversion failed in 'double'"},
		{"timestamp(msg.field('PID-5.1')) > receipt.received_at",
			"evaluation: column 10: type conversion failed in 'timestamp'"},
		{"duration(msg.field('PID-3[2].1')) > duration('1s')",
			"evaluation: column 9: type conversion failed in 'duration'"},
		{"bool(msg.field('PID-5.1'))",
			"evaluation: column 5: type conversion failed in 'bool'"},
		{"msg.field('PID-5.1').matches(msg.field('PID-5.1') + '[')",
			"evaluation: column 29: invalid regular expression in 'matches'"},
		{"msg.field('PID-5.1').substring(40) == ''",
			"evaluation: column 31: index out of range in 'substring'"},
		{"msg.field('PID-5.1').charAt(40) == ''",
			"evaluation: column 28: index out of range in 'charAt'"},
		// A path computed from the message: its text is content.
		{"msg.field(msg.field('PID-5.1')) == ''",
			"evaluation: column 10: invalid path computed at run time in 'field'"},
		{"msg.has(msg.field('PID-13') + '-1')",
			"evaluation: column 8: invalid path computed at run time in 'has'"},
		{"1 / (size(msg.field('PID-5.1')) - 6) == 1",
			"evaluation: column 3: division by zero in '/'"},
		{"1 % (size(msg.field('PID-5.1')) - 6) == 1",
			"evaluation: column 3: modulus by zero in '%'"},
		{"9223372036854775807 + size(msg.field('PID-5.1')) > 0",
			"evaluation: column 21: integer overflow in '+'"},
		{"dyn(msg.field('PID-5.1')) == 1 || dyn(msg.field('PID-5.1')) > 1",
			"evaluation: column 61: no matching overload for '>'"},
		{"msg.field('NTE-3').split(' ')[int(msg.field('PID-3.1'))] == ''",
			"evaluation: column 30: index out of range in '[]'"},
		{"msg.type == 'ORU' &&\n  tables.lab_codes[msg.field('PID-5.1')] == {}",
			"evaluation: line 2, column 19: no such key in a map or table in '[]'"},
	} {
		p, err := env.CompileBool("when", tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		_, err = p.EvalBool(vars)
		if err == nil {
			t.Errorf("%s: no error", tc.expr)
			continue
		}
		var ee *EvalError
		if !errors.As(err, &ee) {
			t.Errorf("%s: %T, not an *EvalError", tc.expr, err)
		}
		if err.Error() != tc.want {
			t.Errorf("%s:\nerror %s\nwant  %s", tc.expr, err, tc.want)
		}
		for _, v := range phi {
			if strings.Contains(err.Error(), v) {
				t.Errorf("%s: error %q quotes %q", tc.expr, err, v)
			}
		}
	}
}

// A string expression fails the same way (set.expr).
func TestEvalStringErrorHasNoContent(t *testing.T) {
	env := celTestEnv(t)
	p, err := env.CompileString("rules[0].set.expr", "tables.lab_codes[msg.field('PID-5.1')].display")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.EvalString(celTestVars(t))
	if err == nil || strings.Contains(err.Error(), "OKAFOR") || !strings.Contains(err.Error(), "no such key in a map or table") {
		t.Fatalf("error %v", err)
	}
}

// celDisplayName shows operators as written.
func TestCELDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"_[_]": "[]", "_+_": "+", "_==_": "==", "@in": "in", "!_": "!", "-_": "-",
		"_?_:_": "?:", "int": "int", "matches": "matches", "_&&_": "&&",
	} {
		if got := celDisplayName(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// celBigORU is an ORU^R01 with n OBX segments.
func celBigORU(t testing.TB, n int) *hl7v2.Message {
	t.Helper()
	var b strings.Builder
	b.WriteString("MSH|^~\\&|LABSYS|NATLAB|HIS|GENHOSP|20240301101500||ORU^R01^ORU_R01|C1|P|2.5.1\r")
	b.WriteString("PID|1||123456^^^GENHOSP^MR\rOBR|1|O1|F1|58410-2^CBC^LN\r")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "OBX|%d|NM|%d-1^Test %d^LN||%d|g/dL|||||F\r", i, i, i, i)
	}
	m, err := hl7v2.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCostLimitStopsNestedComprehension(t *testing.T) {
	env := celTestEnv(t)
	// Quadratic: every pair of OBX codes, each inner pass listing the
	// message again.
	p, err := env.CompileBool("routes[0].when",
		"msg.fields('OBX[*]-3.1').all(a, msg.fields('OBX[*]-3.1').all(b, a == b || a != b))")
	if err != nil {
		t.Fatal(err)
	}
	// Small message: well within the limit.
	if ok, err := p.EvalBool(&Vars{Msg: celBigORU(t, 10)}); err != nil || !ok {
		t.Fatalf("10 OBX: %v, %v", ok, err)
	}
	start := time.Now()
	_, err = p.EvalBool(&Vars{Msg: celBigORU(t, 2000)})
	if !errors.Is(err, ErrCostLimit) {
		t.Fatalf("2000 OBX: error %v, want the cost limit", err)
	}
	if err.Error() != "evaluation: cost limit exceeded" {
		t.Errorf("error %q", err)
	}
	t.Logf("stopped after %v: %v", time.Since(start), err)
}

func TestNilMessage(t *testing.T) {
	env := celTestEnv(t)
	p, err := env.CompileBool("when", "msg.type == '' && msg.field('PID-3') == '' && !msg.has('PID-3') && msg.fields('OBX[*]-3') == []")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*Vars{nil, {}} {
		if ok, err := p.EvalBool(v); err != nil || !ok {
			t.Errorf("%v: %v, %v", v, ok, err)
		}
	}
}

func TestPathConstantsCached(t *testing.T) {
	env := celTestEnv(t)
	if _, err := env.CompileBool("when", "msg.has('OBX[*]-3.1') && msg.field('PID-3[2].4') != ''"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"OBX[*]-3.1", "PID-3[2].4"} {
		v, ok := env.paths.Load(s)
		if !ok {
			t.Fatalf("%s not cached", s)
		}
		if cp := v.(*celPath); cp.id < 0 || s == "OBX[*]-3.1" && !(cp.p.WildcardOccurrence && !cp.p.WildcardRepetition) {
			t.Errorf("%s parsed as %+v", s, v)
		}
	}
	// A path computed at run time is not cached: the cache stays bounded
	// by the configuration.
	p, err := env.CompileString("expr", "msg.field('PID-' + '8')")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.EvalString(celTestVars(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := env.paths.Load("PID-8"); ok {
		t.Error("run-time path cached")
	}
}

func TestParseCELPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want hl7v2.Path
		err  string
	}{
		{in: "PID-3", want: hl7v2.Path{Segment: "PID", Field: 3}},
		{in: "OBX[*]-5", want: hl7v2.Path{Segment: "OBX", Field: 5, WildcardOccurrence: true}},
		{in: "PID-3[*].1", want: hl7v2.Path{Segment: "PID", Field: 3, Component: 1, WildcardRepetition: true}},
		{in: "OBX[*]-5[*].1.2", want: hl7v2.Path{Segment: "OBX", Field: 5, Component: 1, Subcomponent: 2, WildcardOccurrence: true, WildcardRepetition: true}},
		{in: "OBX[2]-5[3]", want: hl7v2.Path{Segment: "OBX", Occurrence: 2, Field: 5, Repetition: 3}},
		// The largest index is an index, not a stand-in for [*].
		{in: "OBX[1048576]-5", want: hl7v2.Path{Segment: "OBX", Occurrence: 1 << 20, Field: 5}},
		{in: "OBX[1048577]-5", err: `hl7v2: invalid path "OBX[1048577]-5": segment occurrence: "1048577" is not a positive index`},
		{in: "OBX-[*]", err: `hl7v2: invalid path "OBX-[*]": field: expected a number`},
		{in: "OBX[*]-5[*]x", err: `hl7v2: invalid path "OBX[*]-5[*]x": unexpected "x"`},
		{in: "OB[*]-5", err: "segment must be 3 upper-case letters or digits"},
	} {
		p, err := parseCELPath(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err && !strings.HasSuffix(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if p.p != tc.want || p.id != -1 {
			t.Errorf("%s = %+v, want %+v", tc.in, *p, tc.want)
		}
	}
}

func TestNewEnvRejectsBadTableName(t *testing.T) {
	for _, name := range []string{"Lab", "1lab", "lab-codes", ""} {
		if _, err := NewEnv(Tables{name: NewTable(name, "", nil)}); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

// One program, many goroutines: Programs and the path cache are shared
// by the stage's workers (run with -race).
func TestEvalConcurrent(t *testing.T) {
	env := celTestEnv(t)
	p, err := env.CompileBool("when", "msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable) && msg.field('PID-3[2].4') == 'NIMC'")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		vars := celTestVars(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if ok, err := p.EvalBool(vars); err != nil || !ok {
					t.Errorf("%v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Which programs skip runtime cost tracking: only those linear in the
// message by construction (see celNeedsCostLimit).
func TestCostTrackingClassification(t *testing.T) {
	env := celTestEnv(t)
	for _, tc := range []struct {
		expr    string
		tracked bool
	}{
		{"msg.type == 'ORU' && msg.sending_facility in ['A', 'B']", false},
		{"!msg.has('PID-3') || -size(msg.field('PID-5')) < 0", false},
		{"lookup(tables.lab_codes, msg.field('OBX-3.1')) != ''", false},
		{"msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)", false},
		{"msg.fields('OBX[*]-8').all(f, f in ['H', 'L'] || f == '')", false},
		{"msg.fields('OBX[*]-8').exists_one(f, f == 'H')", false},
		// A loop body reading the message: size of the field times the
		// number of iterations.
		{"msg.fields('OBX[*]-8').exists(f, f == msg.field('NTE-3'))", true},
		{"msg.fields('OBX[*]-8').exists(f, f in msg.fields('OBX[*]-3.1'))", true},
		// Nested loops, list-building loops.
		{"msg.fields('OBX[*]-8').exists(a, ['x'].exists(b, a == b))", true},
		{"msg.fields('OBX[*]-8').filter(f, f == 'H').size() > 0", true},
		{"msg.fields('OBX[*]-8').map(f, f + f).size() > 0", true},
		// The strings extension: replace can multiply sizes.
		{"msg.field('NTE-3').replace('', msg.field('NTE-3')) != ''", true},
		{"msg.field('NTE-3').lowerAscii() != ''", true},
	} {
		p, err := env.CompileBool("when", tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if p.tracked != tc.tracked {
			t.Errorf("%s: tracked %v, want %v", tc.expr, p.tracked, tc.tracked)
		}
	}
}

// The memo in Vars follows the message: changed in place (as the rules
// of a rule set do between their when expressions), replaced, or the
// Vars copied, every evaluation sees the message as it is.
func TestVarsMemoFollowsMessage(t *testing.T) {
	env := celTestEnv(t)
	field, err := env.CompileBool("when", "msg.field('MSH-11') == 'T'")
	if err != nil {
		t.Fatal(err)
	}
	header, err := env.CompileBool("when", "msg.type == 'ADT'")
	if err != nil {
		t.Fatal(err)
	}
	has, err := env.CompileBool("when", "msg.has('ZHB-2') && msg.fields('OBX[*]-3.1').size() == 8")
	if err != nil {
		t.Fatal(err)
	}
	eval := func(p *Program, v *Vars) bool {
		t.Helper()
		ok, err := p.EvalBool(v)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	vars := celTestVars(t)
	m := vars.Msg
	if eval(field, vars) || eval(header, vars) || eval(has, vars) {
		t.Fatal("true before any change")
	}
	// In place: a field set, a segment added, a segment removed.
	if err := m.Set("MSH-11", "T"); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("MSH-9.1", "ADT"); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("ZHB-2", "HUB"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteSegment("OBX", 9); err != nil {
		t.Fatal(err)
	}
	if !eval(field, vars) || !eval(header, vars) || !eval(has, vars) {
		t.Error("a change in place not seen")
	}
	// Another message in the same Vars.
	vars.Msg = celTestMessage(t)
	if eval(field, vars) || eval(header, vars) {
		t.Error("the previous message's values after Msg changed")
	}
	// A copy has its own memo: the original's message changes, the
	// copy's does not.
	cp := *vars
	cp.Msg = m
	if !eval(field, &cp) || eval(field, vars) {
		t.Error("copy and original share a memo")
	}
	// The same Vars with a program of another environment (a reload).
	env2 := celTestEnv(t)
	p2, err := env2.CompileBool("when", "msg.field('PID-3.1') == '123456'")
	if err != nil {
		t.Fatal(err)
	}
	if !eval(p2, vars) || eval(field, vars) {
		t.Error("memo confused across environments")
	}
}

// list.exists(x, x in set) over a table or a list literal is rewritten
// to a native call; other shapes stay comprehensions; both agree.
func TestExistsInRewrite(t *testing.T) {
	env := celTestEnv(t)
	vars := celTestVars(t)
	for _, tc := range []struct {
		expr      string
		rewritten bool
		want      bool
	}{
		{"msg.fields('OBX[*]-3.1').exists(c, c in tables.notifiable)", true, true},
		{"msg.fields('OBX[*]-3.1').exists(c, c in tables.lab_codes)", true, false},
		{"msg.fields('OBX[*]-8').exists(f, f in ['H', 'L', 'A'])", true, true},
		{"msg.fields('OBX[*]-8').exists(f, f in ['H', 'A'])", true, false},
		{"msg.fields('ZZZ[*]-1').exists(f, f in ['H'])", true, false},
		{"!msg.fields('OBX[*]-8').exists(f, f in ['H', 'L'])", true, false},
		// Not the shape: the set read from the message, a map range,
		// another predicate, all.
		{"msg.fields('OBX[*]-8').exists(f, f in msg.fields('OBX[*]-8'))", false, true},
		{"tables.lab_codes.exists(k, k in ['GLU'])", false, true},
		{"msg.fields('OBX[*]-8').exists(f, f == 'L')", false, true},
		{"msg.fields('OBX[*]-8').all(f, f in ['N', 'L'])", false, true},
		{"msg.fields('OBX[*]-8').exists(f, 'L' in [f])", false, true},
	} {
		p, err := env.CompileBool("when", tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		rewritten := false
		ast.PostOrderVisit(p.ast.Expr(), ast.NewExprVisitor(func(x ast.Expr) {
			if x.Kind() == ast.CallKind && x.AsCall().FunctionName() == celFnExistsIn {
				rewritten = true
			}
		}))
		if rewritten != tc.rewritten {
			t.Errorf("%s: rewritten %v, want %v", tc.expr, rewritten, tc.rewritten)
		}
		got, err := p.EvalBool(vars)
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	// The rewritten name cannot be written by an analyst.
	if _, err := env.CompileBool("when", "@hl7bus_exists_in(['a'], ['a'])"); err == nil {
		t.Error("@hl7bus_exists_in compiled")
	}
}

// lookup and `in` over a big table cost a hash lookup, not a walk of the
// table (cel-go's runtime type guard would visit every row).
func BenchmarkEvalLookupBigTable(b *testing.B) {
	rows := make(map[string]Entry, 100_000)
	for i := range 100_000 {
		c := fmt.Sprintf("L%06d", i)
		rows[c] = Entry{Code: c, System: "LN"}
	}
	env, err := NewEnv(Tables{"big": NewTable("big", "1", rows)})
	if err != nil {
		b.Fatal(err)
	}
	p, err := env.CompileBool("when", "lookup(tables.big, 'L054321') == 'L054321' && 'L000001' in tables.big")
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
