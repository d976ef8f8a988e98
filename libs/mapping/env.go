package mapping

// The CEL environment: the variables an analyst's expression sees (msg.*,
// interface, destination, receipt.*, tables.<name>), the functions we add
// (msg.field, msg.fields, msg.has, lookup), compile-time checks of path
// constants, and cost-limited evaluation over Vars.

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// CostLimit is the CEL cost one evaluation may spend (cel.CostLimit):
// enough for a predicate over every value of a message with thousands of
// segments, small enough that a nested comprehension over a big message
// stops within milliseconds instead of running or allocating unbounded.
const CostLimit = 1_000_000

// ErrCostLimit is the error (errors.Is) of an evaluation stopped by the
// cost limit.
var ErrCostLimit = errors.New("cel cost limit exceeded")

// Receipt is what the exchange knows about how a message arrived, as CEL
// sees it (receipt.message_id, receipt.received_at, ...).
type Receipt struct {
	MessageID string
	// ParentMessageID is the frame's message ID for a message of a batch.
	ParentMessageID string
	ReceivedAt      time.Time
}

// Vars are the values a CEL expression is evaluated over: msg (the
// message, by path: msg.field, msg.fields, msg.has; msg.type,
// msg.trigger, msg.structure, msg.version, msg.control_id,
// msg.sending_application, msg.sending_facility,
// msg.receiving_application, msg.receiving_facility, msg.processing_id),
// interface, receipt.* and tables.<name>.
type Vars struct {
	Msg       *hl7v2.Message
	Interface string
	Receipt   Receipt
	// Destination is the destination whose copy a destination rule works
	// on ("" elsewhere); CEL sees it as destination.
	Destination string
}

// Env is the CEL environment of one configuration: the variables above
// and one tables.<name> per loaded table, so a misspelt table name is a
// type-check error at load.
type Env struct {
	tables Tables
	cel    *cel.Env
	// tableVals are the CEL values of tables.<name>, keyed by the
	// qualified name the activation is asked for; built once here so an
	// evaluation converts nothing.
	tableVals map[string]ref.Val
	// paths caches parsed path constants (filled at compile time, read
	// at every evaluation), so msg.field('OBX[*]-3.1') does not re-parse
	// its path per call. Paths computed at run time are parsed per call
	// and not cached, which keeps the cache bounded by the configuration.
	paths     sync.Map // string -> *celPath
	costLimit uint64
}

// celMsgType is the CEL type of msg: opaque, reached only through its
// member functions and the msg.* variables.
var celMsgType = types.NewOpaqueType("hl7bus.Message")

// celEntryType and celTableType are the CEL types of a table row and of
// tables.<name>: maps, so tables.x[c].code, c in tables.x and
// tables.x.exists(...) are plain CEL.
var (
	celEntryType = cel.MapType(cel.StringType, cel.StringType)
	celTableType = cel.MapType(cel.StringType, celEntryType)
)

// celStringVars are the string variables, each read from Vars by
// celActivation.ResolveName.
var celStringVars = []string{
	"msg.type", "msg.trigger", "msg.structure", "msg.version", "msg.control_id",
	"msg.processing_id", "msg.sending_application", "msg.sending_facility",
	"msg.receiving_application", "msg.receiving_facility",
	"interface", "destination", "receipt.message_id", "receipt.parent_message_id",
}

// Overload IDs of the functions we add (the cost estimator keys on them).
const (
	celOvField  = "hl7bus_msg_field_string"
	celOvFields = "hl7bus_msg_fields_string"
	celOvHas    = "hl7bus_msg_has_string"
	celOvLookup = "hl7bus_lookup_table_string"
)

// NewEnv returns the environment over tables.
func NewEnv(tables Tables) (*Env, error) {
	e := &Env{tables: tables, tableVals: make(map[string]ref.Val, len(tables)), costLimit: CostLimit}
	opts := []cel.EnvOption{
		ext.Strings(),
		cel.Variable("msg", celMsgType),
		cel.Variable("receipt.received_at", cel.TimestampType),
		cel.Function("field", cel.MemberOverload(celOvField,
			[]*cel.Type{celMsgType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(e.msgField))),
		cel.Function("fields", cel.MemberOverload(celOvFields,
			[]*cel.Type{celMsgType, cel.StringType}, cel.ListType(cel.StringType),
			cel.BinaryBinding(e.msgFields))),
		cel.Function("has", cel.MemberOverload(celOvHas,
			[]*cel.Type{celMsgType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(e.msgHas))),
		cel.Function("lookup", cel.Overload(celOvLookup,
			[]*cel.Type{celTableType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(celLookup))),
	}
	for _, name := range celStringVars {
		opts = append(opts, cel.Variable(name, cel.StringType))
	}
	for name, t := range tables {
		if !validTableName(name) {
			return nil, fmt.Errorf("mapping: table name %q is not a CEL identifier ([a-z][a-z0-9_]*)", name)
		}
		if t == nil {
			return nil, fmt.Errorf("mapping: table %s is nil", name)
		}
		opts = append(opts, cel.Variable("tables."+name, celTableType))
		e.tableVals["tables."+name] = celTable{t}
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("mapping: cel environment: %w", err)
	}
	e.cel = env
	return e, nil
}

// validTableName reports whether name is [a-z][a-z0-9_]*: a CEL
// identifier, so tables.<name> parses.
func validTableName(name string) bool {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Tables returns the environment's code tables.
func (e *Env) Tables() Tables { return e.tables }

// Program is one compiled, type-checked CEL expression.
type Program struct {
	env *Env
	prg cel.Program
	// tracked: the program runs under the cost limit (see
	// celNeedsCostLimit for why some need not).
	tracked bool
}

// CompileBool compiles a bool expression; the error names key and the
// column (key: column N: ...).
func (e *Env) CompileBool(key, expr string) (*Program, error) {
	return e.compile(key, expr, cel.BoolType)
}

// CompileString compiles a string expression (for set.expr).
func (e *Env) CompileString(key, expr string) (*Program, error) {
	return e.compile(key, expr, cel.StringType)
}

func (e *Env) compile(key, expr string, want *cel.Type) (*Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%s: empty expression", key)
	}
	checked, iss := e.cel.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, celIssuesError(key, iss.Errors())
	}
	if got := checked.OutputType(); !got.IsExactType(want) {
		return nil, fmt.Errorf("%s: must be a %s expression, this one is %s", key, want, got)
	}
	if errs := e.checkPaths(checked.NativeRep()); len(errs) > 0 {
		return nil, celIssuesError(key, errs)
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	tracked := celNeedsCostLimit(checked.NativeRep())
	if tracked {
		popts = append(popts, cel.CostLimit(e.costLimit), cel.CostTracking(celCosts{}))
	}
	prg, err := e.cel.Program(checked, popts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &Program{env: e, prg: prg, tracked: tracked}, nil
}

// celLinearFuncs are the functions whose result is at most linear in the
// size of their arguments and whose time is at most their arguments'
// sizes multiplied: the standard ones an analyst uses and ours.
// Operators (_==_, _+_, @in, ...) are all of that kind too.
var celLinearFuncs = map[string]bool{
	"field": true, "fields": true, "has": true, "lookup": true,
	"size": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
	"int": true, "uint": true, "double": true, "string": true, "bytes": true, "bool": true,
	"timestamp": true, "duration": true, "dyn": true, "type": true,
	"getFullYear": true, "getMonth": true, "getDate": true, "getDayOfMonth": true,
	"getDayOfWeek": true, "getDayOfYear": true, "getHours": true, "getMinutes": true,
	"getSeconds": true, "getMilliseconds": true,
}

// celNeedsCostLimit reports whether a is outside what runs in time and
// memory linear in its input by construction (the message being bounded
// by max_message_size). Such a program skips cel-go's runtime cost
// tracking, which costs several times the evaluation of a small
// predicate; every other one runs under cel.CostLimit.
//
// Linear by construction: outside comprehensions every node is evaluated
// once, and the functions are linear ones (celLinearFuncs, operators),
// so each result is at most the sum of its inputs. A comprehension is
// linear when its accumulator is a bool or int (exists, all, exists_one:
// nothing grows per iteration) and its loop (condition, step, result)
// holds no comprehension and reads only its own variables, literals and
// tables.* through linear functions: each iteration then costs about the
// size of its element, and the elements are at most the range, which is
// itself checked. Anything else (a nested comprehension, map or filter,
// msg read inside a loop, the strings extension's replace, whose output
// can be the product of its inputs) is tracked.
func celNeedsCostLimit(a *ast.AST) bool {
	needs := false
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(x ast.Expr) {
		switch x.Kind() {
		case ast.ComprehensionKind:
			if !celLinearLoop(x.AsComprehension()) {
				needs = true
			}
		case ast.CallKind:
			if !celLinearFunc(x.AsCall().FunctionName()) {
				needs = true
			}
		}
	}))
	return needs
}

// celLinearFunc: an operator (its name starts with a non-letter: _==_,
// !_, -_, _[_], @in, @not_strictly_false) or a function of
// celLinearFuncs.
func celLinearFunc(fn string) bool {
	if fn == "" {
		return false
	}
	c := fn[0]
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') || celLinearFuncs[fn]
}

func celLinearLoop(c ast.ComprehensionExpr) bool {
	init := c.AccuInit()
	if init.Kind() != ast.LiteralKind {
		return false
	}
	switch init.AsLiteral().(type) {
	case types.Bool, types.Int:
	default:
		return false
	}
	own := func(name string) bool {
		return name == c.IterVar() || name == c.AccuVar() ||
			(c.HasIterVar2() && name == c.IterVar2()) || strings.HasPrefix(name, "tables.")
	}
	ok := true
	for _, part := range []ast.Expr{c.LoopCondition(), c.LoopStep(), c.Result()} {
		ast.PostOrderVisit(part, ast.NewExprVisitor(func(x ast.Expr) {
			switch x.Kind() {
			case ast.ComprehensionKind:
				ok = false
			case ast.IdentKind:
				if !own(x.AsIdent()) {
					ok = false
				}
			case ast.CallKind:
				// msg.field and the like take msg, which own refuses;
				// a linear function over the loop's own values is fine.
				if !celLinearFunc(x.AsCall().FunctionName()) {
					ok = false
				}
			}
		}))
	}
	return ok
}

// celIssuesError turns CEL issues into one error per issue, each
// "key: column N: message" (line L, column N for a multi-line
// expression), columns 1-based as an editor counts them.
func celIssuesError(key string, issues []*cel.Error) error {
	errs := make([]error, 0, len(issues))
	for _, is := range issues {
		loc := is.Location
		switch {
		case loc == nil || loc.Line() < 1:
			errs = append(errs, fmt.Errorf("%s: %s", key, is.Message))
		case loc.Line() > 1:
			errs = append(errs, fmt.Errorf("%s: line %d, column %d: %s", key, loc.Line(), loc.Column()+1, is.Message))
		default:
			errs = append(errs, fmt.Errorf("%s: column %d: %s", key, loc.Column()+1, is.Message))
		}
	}
	return errors.Join(errs...)
}

// checkPaths checks every string constant given to msg.field, msg.fields
// and msg.has, so a misspelt path is a configuration error at load and
// not a dead letter per message, and caches what it parsed.
func (e *Env) checkPaths(a *ast.AST) []*cel.Error {
	var errs []*cel.Error
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(x ast.Expr) {
		if x.Kind() != ast.CallKind {
			return
		}
		call := x.AsCall()
		if !call.IsMemberFunction() || len(call.Args()) != 1 {
			return
		}
		switch call.FunctionName() {
		case "field", "fields", "has":
		default:
			return
		}
		arg := call.Args()[0]
		if arg.Kind() != ast.LiteralKind {
			return
		}
		s, ok := arg.AsLiteral().(types.String)
		if !ok {
			return
		}
		if _, err := e.path(string(s), true); err != nil {
			errs = append(errs, &cel.Error{
				Location: a.SourceInfo().GetStartLocation(arg.ID()),
				Message:  err.Error(),
				ExprID:   arg.ID(),
			})
		}
	}))
	return errs
}

// path returns the parsed path s, from the cache when it was a constant
// of a compiled expression; store caches it.
func (e *Env) path(s string, store bool) (*celPath, error) {
	if p, ok := e.paths.Load(s); ok {
		return p.(*celPath), nil
	}
	p, err := parseCELPath(s)
	if err != nil {
		return nil, err
	}
	if store {
		e.paths.Store(s, p)
	}
	return p, nil
}

// EvalBool evaluates a bool program over v, within the cost limit.
func (p *Program) EvalBool(v *Vars) (bool, error) {
	out, err := p.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// EvalString evaluates a string program over v, within the cost limit.
func (p *Program) EvalString(v *Vars) (string, error) {
	out, err := p.eval(v)
	if err != nil {
		return "", err
	}
	s, ok := out.(types.String)
	if !ok {
		return "", fmt.Errorf("expression returned %s, not string", out.Type().TypeName())
	}
	return string(s), nil
}

func (p *Program) eval(v *Vars) (ref.Val, error) {
	if v == nil {
		v = &Vars{}
	}
	out, _, err := p.prg.Eval(&celActivation{v: v, env: p.env})
	if err != nil {
		var cancel interpreter.EvalCancelledError
		if errors.As(err, &cancel) && cancel.Cause == interpreter.CostLimitExceeded {
			return nil, fmt.Errorf("evaluation stopped: %w (%d)", ErrCostLimit, p.env.costLimit)
		}
		return nil, fmt.Errorf("evaluation: %w", err)
	}
	return out, nil
}

// celActivation resolves the variables of one evaluation from Vars; the
// header variables are read from the message when asked for, so an
// expression pays only for what it uses.
type celActivation struct {
	v   *Vars
	env *Env
}

// ResolveName implements interpreter.Activation.
func (a *celActivation) ResolveName(name string) (any, bool) {
	v := a.v
	switch name {
	case "msg":
		return celMsg{v.Msg}, true
	case "interface":
		return types.String(v.Interface), true
	case "destination":
		return types.String(v.Destination), true
	case "receipt.message_id":
		return types.String(v.Receipt.MessageID), true
	case "receipt.parent_message_id":
		return types.String(v.Receipt.ParentMessageID), true
	case "receipt.received_at":
		return types.Timestamp{Time: v.Receipt.ReceivedAt}, true
	}
	if strings.HasPrefix(name, "msg.") {
		m := v.Msg
		if m == nil || m.Len() == 0 {
			return types.String(""), true
		}
		h := m.MSH()
		switch name[len("msg."):] {
		case "type":
			return types.String(h.Field(9).Comp(1).String()), true
		case "trigger":
			return types.String(h.Field(9).Comp(2).String()), true
		case "structure":
			return types.String(h.Field(9).Comp(3).String()), true
		case "version":
			return types.String(h.Field(12).Comp(1).String()), true
		case "control_id":
			return types.String(h.Field(10).String()), true
		case "processing_id":
			return types.String(h.Field(11).Comp(1).String()), true
		case "sending_application":
			return types.String(h.Field(3).Comp(1).String()), true
		case "sending_facility":
			return types.String(h.Field(4).Comp(1).String()), true
		case "receiving_application":
			return types.String(h.Field(5).Comp(1).String()), true
		case "receiving_facility":
			return types.String(h.Field(6).Comp(1).String()), true
		}
		return nil, false
	}
	t, ok := a.env.tableVals[name]
	return t, ok
}

// Parent implements interpreter.Activation.
func (a *celActivation) Parent() interpreter.Activation { return nil }

// msgField is msg.field(path): the first value the path addresses, ""
// when absent.
func (e *Env) msgField(lhs, rhs ref.Val) ref.Val {
	m, p, errv := e.msgArgs(lhs, rhs)
	if errv != nil {
		return errv
	}
	out := ""
	p.each(m, func(v hl7v2.Value) bool {
		out = v.String()
		return false
	})
	return types.String(out)
}

// msgFields is msg.fields(path): every value the path addresses, in
// message order (absent positions left out).
func (e *Env) msgFields(lhs, rhs ref.Val) ref.Val {
	m, p, errv := e.msgArgs(lhs, rhs)
	if errv != nil {
		return errv
	}
	var out []ref.Val
	if m != nil && p.anyOcc && !p.anyRep {
		out = make([]ref.Val, 0, m.Count(p.p.Segment))
	}
	p.each(m, func(v hl7v2.Value) bool {
		if v.Present() {
			out = append(out, types.String(v.String()))
		}
		return true
	})
	return types.NewRefValList(types.DefaultTypeAdapter, out)
}

// msgHas is msg.has(path): whether some value the path addresses is
// present and not empty.
func (e *Env) msgHas(lhs, rhs ref.Val) ref.Val {
	m, p, errv := e.msgArgs(lhs, rhs)
	if errv != nil {
		return errv
	}
	found := false
	p.each(m, func(v hl7v2.Value) bool {
		found = !v.IsEmpty()
		return !found
	})
	return types.Bool(found)
}

func (e *Env) msgArgs(lhs, rhs ref.Val) (*hl7v2.Message, *celPath, ref.Val) {
	m, ok := lhs.(celMsg)
	if !ok {
		return nil, nil, types.MaybeNoSuchOverloadErr(lhs)
	}
	s, ok := rhs.(types.String)
	if !ok {
		return nil, nil, types.MaybeNoSuchOverloadErr(rhs)
	}
	p, err := e.path(string(s), false)
	if err != nil {
		return nil, nil, types.WrapErr(err)
	}
	return m.m, p, nil
}

// celLookup is lookup(tables.x, code): the code local code maps to, ""
// when the table lacks it.
func celLookup(tbl, code ref.Val) ref.Val {
	c, ok := code.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(code)
	}
	if t, ok := tbl.(celTable); ok {
		if en := t.t.entry(string(c)); en != nil {
			return types.String(en.Code)
		}
		return types.String("")
	}
	m, ok := tbl.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(tbl)
	}
	row, found := m.Find(c)
	if !found {
		return types.String("")
	}
	rm, ok := row.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(row)
	}
	v, found := rm.Find(types.String("code"))
	if !found {
		return types.String("")
	}
	return v
}

// celCosts charges msg.fields by the values it returns, so a
// comprehension that lists a big message over and over runs into the
// cost limit by what it allocates, not only by its iterations.
type celCosts struct{}

// CallCost implements interpreter.ActualCostEstimator.
func (celCosts) CallCost(function, overloadID string, args []ref.Val, result ref.Val) *uint64 {
	if overloadID != celOvFields {
		return nil
	}
	n := uint64(1)
	if l, ok := result.(traits.Sizer); ok {
		if sz, ok := l.Size().(types.Int); ok {
			n += uint64(sz)
		}
	}
	return &n
}

// celMsg is the CEL value of msg.
type celMsg struct{ m *hl7v2.Message }

func (v celMsg) ConvertToNative(t reflect.Type) (any, error) {
	if t == reflect.TypeOf((*hl7v2.Message)(nil)) {
		return v.m, nil
	}
	return nil, fmt.Errorf("msg cannot be converted to %v", t)
}
func (v celMsg) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return celMsgType
	}
	return types.NewErr("msg cannot be converted to %s", t.TypeName())
}
func (v celMsg) Equal(o ref.Val) ref.Val {
	w, ok := o.(celMsg)
	return types.Bool(ok && w.m == v.m)
}
func (v celMsg) Type() ref.Type { return celMsgType }
func (v celMsg) Value() any     { return v.m }

// celTable is the CEL value of tables.<name>: a read-only map from local
// code to row over the table itself (nothing copied per table or per
// evaluation).
type celTable struct{ t *Table }

func (v celTable) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("table %s cannot be converted to %v", v.t.Name, t)
}
func (v celTable) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return v
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("table %s cannot be converted to %s", v.t.Name, t.TypeName())
}
func (v celTable) Equal(o ref.Val) ref.Val {
	w, ok := o.(celTable)
	return types.Bool(ok && w.t == v.t)
}
func (v celTable) Type() ref.Type { return types.MapType }
func (v celTable) Value() any     { return v.t }

// Contains implements traits.Container: c in tables.x.
func (v celTable) Contains(key ref.Val) ref.Val {
	_, found := v.Find(key)
	return types.Bool(found)
}

// Get implements traits.Indexer: tables.x[c], an error for a code the
// table lacks (as for any CEL map; lookup and `in` are the safe forms).
func (v celTable) Get(key ref.Val) ref.Val {
	row, found := v.Find(key)
	if !found {
		if types.IsError(row) {
			return row
		}
		return types.NewErr("no such key: %v", key.Value())
	}
	return row
}

// Find implements traits.Mapper.
func (v celTable) Find(key ref.Val) (ref.Val, bool) {
	s, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	en := v.t.entry(string(s))
	if en == nil {
		return nil, false
	}
	return celEntry{en}, true
}

// Size implements traits.Sizer.
func (v celTable) Size() ref.Val { return types.Int(v.t.Len()) }

// Iterator implements traits.Iterable: local codes in file order.
func (v celTable) Iterator() traits.Iterator {
	return &celTableIter{t: v.t}
}

type celTableIter struct {
	t *Table
	i int
}

func (it *celTableIter) ConvertToNative(t reflect.Type) (any, error) {
	return nil, errors.New("iterator cannot be converted")
}
func (it *celTableIter) ConvertToType(t ref.Type) ref.Val {
	return types.NewErr("iterator cannot be converted")
}
func (it *celTableIter) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(it)) }
func (it *celTableIter) Type() ref.Type          { return types.IteratorType }
func (it *celTableIter) Value() any              { return nil }
func (it *celTableIter) HasNext() ref.Val        { return types.Bool(it.i < len(it.t.entries)) }
func (it *celTableIter) Next() ref.Val {
	if it.i >= len(it.t.entries) {
		return nil
	}
	k := it.t.entries[it.i].local
	it.i++
	return types.String(k)
}

// celEntry is the CEL value of one row: a map with keys code, system
// and display.
type celEntry struct{ e *Entry }

var celEntryKeys = []string{"code", "system", "display"}

func (v celEntry) field(k string) (string, bool) {
	switch k {
	case "code":
		return v.e.Code, true
	case "system":
		return v.e.System, true
	case "display":
		return v.e.Display, true
	}
	return "", false
}

func (v celEntry) ConvertToNative(t reflect.Type) (any, error) {
	if t == reflect.TypeOf(Entry{}) {
		return *v.e, nil
	}
	if t == reflect.TypeOf(map[string]string{}) {
		return map[string]string{"code": v.e.Code, "system": v.e.System, "display": v.e.Display}, nil
	}
	return nil, fmt.Errorf("table row cannot be converted to %v", t)
}
func (v celEntry) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return v
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("table row cannot be converted to %s", t.TypeName())
}
func (v celEntry) Equal(o ref.Val) ref.Val {
	m, ok := o.(traits.Mapper)
	if !ok {
		return types.False
	}
	if w, ok := o.(celEntry); ok {
		return types.Bool(*w.e == *v.e)
	}
	if sz, ok := m.Size().(types.Int); !ok || sz != 3 {
		return types.False
	}
	for _, k := range celEntryKeys {
		s, _ := v.field(k)
		ov, found := m.Find(types.String(k))
		if !found || ov.Equal(types.String(s)) != types.True {
			return types.False
		}
	}
	return types.True
}
func (v celEntry) Type() ref.Type { return types.MapType }
func (v celEntry) Value() any     { return *v.e }

// Contains implements traits.Container.
func (v celEntry) Contains(key ref.Val) ref.Val {
	_, found := v.Find(key)
	return types.Bool(found)
}

// Get implements traits.Indexer.
func (v celEntry) Get(key ref.Val) ref.Val {
	val, found := v.Find(key)
	if !found {
		if types.IsError(val) {
			return val
		}
		return types.NewErr("no such key: %v", key.Value())
	}
	return val
}

// Find implements traits.Mapper.
func (v celEntry) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	s, ok := v.field(string(k))
	if !ok {
		return nil, false
	}
	return types.String(s), true
}

// Size implements traits.Sizer.
func (v celEntry) Size() ref.Val { return types.Int(3) }

// Iterator implements traits.Iterable.
func (v celEntry) Iterator() traits.Iterator {
	return types.NewStringList(types.DefaultTypeAdapter, celEntryKeys).Iterator()
}

// celPath is a path a CEL function reads: an hl7v2.Path, plus whether
// its segment occurrence or field repetition is the wildcard [*].
type celPath struct {
	p              hl7v2.Path
	anyOcc, anyRep bool
}

// celWildcard stands in for [*] while hl7v2.ParsePath checks the rest of
// a path: the largest index ParsePath accepts, which no real message
// reaches. NOTE: libs/hl7v2 is gaining [*] in parallel; once ParsePath
// takes it, parseCELPath should use it and drop this substitution.
const celWildcard = "[1048576]"

func parseCELPath(s string) (*celPath, error) {
	const big = 1 << 20
	if strings.Contains(s, celWildcard) {
		return nil, fmt.Errorf("%w %q: index out of range", hl7v2.ErrPath, s)
	}
	p, err := hl7v2.ParsePath(strings.ReplaceAll(s, "[*]", celWildcard))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %s", hl7v2.ErrPath, s, celPathWhy(err))
	}
	cp := &celPath{p: p}
	if p.Occurrence == big {
		cp.anyOcc, cp.p.Occurrence = true, 0
	}
	if p.Repetition == big {
		cp.anyRep, cp.p.Repetition = true, 0
	}
	return cp, nil
}

// celPathWhy returns the reason of a hl7v2.ParsePath error without its
// `hl7v2: invalid path "..."` prefix, which quotes only the part of the
// path left when parsing failed (and the stand-in for [*]).
func celPathWhy(err error) string {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, hl7v2.ErrPath.Error()+" ")
	if !ok {
		return msg
	}
	q, qerr := strconv.QuotedPrefix(rest)
	if qerr != nil {
		return msg
	}
	return strings.TrimPrefix(rest[len(q):], ": ")
}

// each calls fn with every value p addresses in m, in message order,
// until fn returns false; a path without a wildcard addresses one value
// (absent when the message does not reach it).
func (p *celPath) each(m *hl7v2.Message, fn func(hl7v2.Value) bool) {
	if m == nil || m.Len() == 0 {
		return
	}
	if !p.anyOcc && !p.anyRep {
		fn(m.Value(p.p))
		return
	}
	segs := m.Segments()
	occ := 0
	want := max(p.p.Occurrence, 1)
	for i := range segs {
		if !segs[i].Is(p.p.Segment) {
			continue
		}
		occ++
		if !p.anyOcc && occ != want {
			continue
		}
		f := segs[i].Field(p.p.Field)
		if p.anyRep {
			for r, n := 1, f.NumReps(); r <= n; r++ {
				if !fn(p.below(f.Rep(r))) {
					return
				}
			}
		} else if !fn(p.below(f.Rep(max(p.p.Repetition, 1)))) {
			return
		}
		if !p.anyOcc {
			return
		}
	}
}

// below descends from a repetition to the path's component and
// subcomponent.
func (p *celPath) below(v hl7v2.Value) hl7v2.Value {
	if p.p.Component > 0 {
		v = v.Comp(p.p.Component)
		if p.p.Subcomponent > 0 {
			v = v.Sub(p.p.Subcomponent)
		}
	}
	return v
}
