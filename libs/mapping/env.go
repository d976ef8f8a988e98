package mapping

// The CEL environment: the variables an analyst's expression sees (msg.*,
// interface, destination, receipt.*, tables.<name>), the functions we add
// (msg.field, msg.fields, msg.has, lookup), compile-time checks of path
// constants, and cost-limited evaluation over Vars.

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/decls"
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
//
// A Vars belongs to one goroutine (one Vars per record): an evaluation
// memoizes in it what it read from Msg (the msg.* variables, the results
// of msg.field, msg.fields and msg.has over constant paths), so a route
// table of 50 predicates reads each header field and path once per
// message. The memo follows Msg: a different message, or the same one
// changed in place (a segment replaced, added or removed, as every
// hl7v2 writer does), is read afresh. A copy of a Vars starts its own
// memo, so copying a Vars per record from a template is safe.
type Vars struct {
	Msg       *hl7v2.Message
	Interface string
	Receipt   Receipt
	// Destination is the destination whose copy a destination rule works
	// on ("" elsewhere); CEL sees it as destination.
	Destination string

	memo *celMemo
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
	paths sync.Map // string -> *celPath
	// npaths numbers the cached paths: a Vars memoizes msg.field and
	// the like by that number.
	npaths    atomic.Int32
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
	// cel-go guards a binding with a check of its arguments' runtime
	// types, which for a map type visits every entry: lookup over a
	// 100,000-row table would walk it per call. The bindings check
	// their arguments themselves.
	noGuards := decls.DisableTypeGuards(true)
	opts := []cel.EnvOption{
		ext.Strings(),
		cel.Variable("msg", celMsgType),
		cel.Variable("receipt.received_at", cel.TimestampType),
		cel.Function("field", cel.MemberOverload(celOvField,
			[]*cel.Type{celMsgType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(e.msgField)), noGuards),
		cel.Function("fields", cel.MemberOverload(celOvFields,
			[]*cel.Type{celMsgType, cel.StringType}, cel.ListType(cel.StringType),
			cel.BinaryBinding(e.msgFields)), noGuards),
		cel.Function("has", cel.MemberOverload(celOvHas,
			[]*cel.Type{celMsgType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(e.msgHas)), noGuards),
		cel.Function("lookup", cel.Overload(celOvLookup,
			[]*cel.Type{celTableType, cel.StringType}, cel.StringType,
			cel.BinaryBinding(celLookup)), noGuards),
		cel.Function(celFnExistsIn,
			cel.Overload("hl7bus_exists_in_table", []*cel.Type{cel.ListType(cel.StringType), celTableType}, cel.BoolType),
			cel.Overload("hl7bus_exists_in_list", []*cel.Type{cel.ListType(cel.StringType), cel.ListType(cel.StringType)}, cel.BoolType),
			cel.SingletonBinaryBinding(celExistsIn), noGuards),
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

// Program is one compiled, type-checked CEL expression. A Program is
// safe for concurrent use; each evaluation brings its own Vars.
type Program struct {
	env *Env
	prg cel.Program
	// ast is the checked expression, kept to name the function and the
	// column of a runtime error (see EvalError).
	ast *ast.AST
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
		return nil, celIssuesError(key, e.explainIssues(expr, iss.Errors()))
	}
	if got := checked.OutputType(); !got.IsExactType(want) {
		return nil, fmt.Errorf("%s: must be a %s expression, this one is %s", key, want, got)
	}
	if errs := e.checkPaths(checked.NativeRep()); len(errs) > 0 {
		return nil, celIssuesError(key, errs)
	}
	tracked := celNeedsCostLimit(checked.NativeRep())
	if opt, err := cel.NewStaticOptimizer(celExistsInRewrite{}); err == nil {
		if o, iss := opt.Optimize(e.cel, checked); iss == nil || iss.Err() == nil {
			checked = o
		}
		// A rewrite the checker refuses leaves the expression as written.
	}
	popts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if tracked {
		popts = append(popts, cel.CostLimit(e.costLimit), cel.CostTracking(celCosts{}))
	} else {
		// The cost tracker keeps its own stack of every node's
		// arguments, which a replaced call would not feed: only
		// untracked programs get the direct msg calls.
		popts = append(popts, cel.CustomDecoratorV2(e.decorateMsgCalls))
	}
	prg, err := e.cel.Program(checked, popts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &Program{env: e, prg: prg, ast: checked.NativeRep(), tracked: tracked}, nil
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

// explainIssues rewrites the checker's messages about a misspelt
// variable of ours ("type 'hl7bus.Message' does not support field
// selection", "undeclared reference to 'receipt'") into one that names
// the field and lists what exists, which is what an analyst needs to fix
// it; the location stays. Other issues pass as they are.
func (e *Env) explainIssues(expr string, issues []*cel.Error) []*cel.Error {
	parsed, piss := e.cel.Parse(expr)
	if piss != nil && piss.Err() != nil {
		return issues
	}
	// The checker reports against the parsed expression's IDs: the
	// select on msg for a missing msg field, the receipt or tables
	// identifier under its select otherwise.
	selects := map[int64]ast.Expr{}   // select ID -> the select
	operandOf := map[int64]ast.Expr{} // operand ID -> its select
	ast.PostOrderVisit(parsed.NativeRep().Expr(), ast.NewExprVisitor(func(x ast.Expr) {
		if x.Kind() == ast.SelectKind {
			selects[x.ID()] = x
			operandOf[x.AsSelect().Operand().ID()] = x
		}
	}))
	out := make([]*cel.Error, len(issues))
	for i, is := range issues {
		out[i] = is
		var msg string
		switch {
		case strings.HasPrefix(is.Message, "type '"+celMsgType.TypeName()+"' does not support field selection"):
			if sel, ok := selects[is.ExprID]; ok {
				msg = fmt.Sprintf("msg has no field %q; %s", sel.AsSelect().FieldName(), celMsgHas())
			}
		case strings.HasPrefix(is.Message, "undeclared reference to 'receipt'"):
			if sel, ok := operandOf[is.ExprID]; ok {
				msg = fmt.Sprintf("receipt has no field %q; %s", sel.AsSelect().FieldName(), celReceiptHas())
			} else {
				msg = "receipt is not a value by itself; " + celReceiptHas()
			}
		case strings.HasPrefix(is.Message, "undeclared reference to 'tables'"):
			if sel, ok := operandOf[is.ExprID]; ok {
				msg = fmt.Sprintf("tables has no table %q; %s", sel.AsSelect().FieldName(), e.celTablesHas())
			}
		}
		if msg != "" {
			out[i] = &cel.Error{Location: is.Location, Message: msg, ExprID: is.ExprID}
		}
	}
	return out
}

// celMsgHas lists msg's fields and member functions, for explainIssues.
func celMsgHas() string {
	var fields []string
	for _, v := range celStringVars {
		if f, ok := strings.CutPrefix(v, "msg."); ok {
			fields = append(fields, f)
		}
	}
	return "msg has " + strings.Join(fields, ", ") + ", and field(path), fields(path), has(path)"
}

// celReceiptHas lists receipt's fields, for explainIssues.
func celReceiptHas() string {
	var fields []string
	for _, v := range celStringVars {
		if f, ok := strings.CutPrefix(v, "receipt."); ok {
			fields = append(fields, f)
		}
	}
	fields = append(fields, "received_at")
	return "receipt has " + strings.Join(fields, ", ")
}

// celTablesHas lists the loaded tables, for explainIssues.
func (e *Env) celTablesHas() string {
	if len(e.tables) == 0 {
		return "no code table is configured (root key tables)"
	}
	names := make([]string, 0, len(e.tables))
	for n := range e.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return "tables has " + strings.Join(names, ", ")
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
		p.id = int(e.npaths.Add(1)) - 1
		got, _ := e.paths.LoadOrStore(s, p)
		p = got.(*celPath)
	}
	return p, nil
}

// EvalBool evaluates a bool program over v, within the cost limit. The
// error, when not nil, is an *EvalError: its text never holds a value
// of the message or of a table.
func (p *Program) EvalBool(v *Vars) (bool, error) {
	out, err := p.eval(v)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, &EvalError{Reason: "expression returned " + out.Type().TypeName() + ", not bool"}
	}
	return bool(b), nil
}

// EvalString evaluates a string program over v, within the cost limit;
// the error is an *EvalError as for EvalBool.
func (p *Program) EvalString(v *Vars) (string, error) {
	out, err := p.eval(v)
	if err != nil {
		return "", err
	}
	s, ok := out.(types.String)
	if !ok {
		return "", &EvalError{Reason: "expression returned " + out.Type().TypeName() + ", not string"}
	}
	return string(s), nil
}

func (p *Program) eval(v *Vars) (ref.Val, error) {
	if v == nil {
		v = &Vars{}
	}
	act := v.memoFor(p.env).begin(v)
	out, _, err := p.prg.Eval(act)
	if err != nil {
		return nil, p.evalError(err)
	}
	return out, nil
}

// EvalError is a runtime failure of an expression. cel-go's own error
// texts quote the values involved (no such key: <the key>, a timestamp
// that does not parse, the path computed from a field); those become
// dead-letter reasons and log lines, so EvalError keeps only a reason
// from a fixed vocabulary, the function or operator of the expression
// that failed and its column: never a value of the message or a table.
type EvalError struct {
	// Reason is one of: no such key in a map or table, no matching
	// overload, division by zero, modulus by zero, index out of range,
	// integer overflow, unsigned integer overflow, duration overflow,
	// timestamp overflow, NaN values cannot be ordered, type conversion
	// failed, invalid regular expression, regular expression too large,
	// no such field, no such variable, invalid path computed at run time,
	// cost limit exceeded, evaluation cancelled, evaluation failed (any
	// other), or expression returned T, not bool|string.
	Reason string
	// Function is the function or operator (as written: int, [], +,
	// matches) of the failing call, "" when unknown.
	Function string
	// Column is the 1-based column of the failing call in its expression
	// (0: unknown); Line is its line when the expression has several.
	Line, Column int
	// sentinel is what errors.Is finds (ErrCostLimit), nil for none.
	sentinel error
}

func (e *EvalError) Error() string {
	var b strings.Builder
	b.WriteString("evaluation: ")
	switch {
	case e.Line > 1:
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	case e.Column > 0:
		fmt.Fprintf(&b, "column %d: ", e.Column)
	}
	b.WriteString(e.Reason)
	if e.Function != "" {
		if e.Reason == celReasonOverload {
			b.WriteString(" for '" + e.Function + "'")
		} else {
			b.WriteString(" in '" + e.Function + "'")
		}
	}
	return b.String()
}

// Unwrap returns ErrCostLimit for an evaluation the cost limit stopped.
func (e *EvalError) Unwrap() error { return e.sentinel }

const celReasonOverload = "no matching overload"

// celErrorKinds map the start of a cel-go runtime error text to our
// reason. Only the start is read and nothing of the text is kept, so a
// value quoted after it cannot leak; an unknown text is "evaluation
// failed".
var celErrorKinds = []struct{ prefix, reason string }{
	{"no such key", "no such key in a map or table"},
	{"no such overload", celReasonOverload},
	{"found no matching overload", celReasonOverload},
	{"division by zero", "division by zero"},
	{"modulus by zero", "modulus by zero"},
	{"index out of", "index out of range"},
	{"unsupported index", "index out of range"},
	{"integer overflow", "integer overflow"},
	{"unsigned integer overflow", "unsigned integer overflow"},
	{"duration overflow", "duration overflow"},
	{"timestamp overflow", "timestamp overflow"},
	{"NaN values cannot be ordered", "NaN values cannot be ordered"},
	{"type conversion error", "type conversion failed"},
	{"unsupported type conversion", "type conversion failed"},
	{"invalid RFC 3339 timestamp", "type conversion failed"},
	{"error parsing regexp", "invalid regular expression"},
	{"regex program size", "regular expression too large"},
	{"no such field", "no such field"},
	{"no such attribute", "no such variable"},
}

// evalError turns an error of cel-go's Eval into an *EvalError.
func (p *Program) evalError(err error) *EvalError {
	e := &EvalError{Reason: "evaluation failed"}
	var cancel interpreter.EvalCancelledError
	switch {
	case errors.As(err, &cancel):
		e.Reason = "evaluation cancelled"
		if cancel.Cause == interpreter.CostLimitExceeded {
			e.Reason, e.sentinel = "cost limit exceeded", ErrCostLimit
		}
		return e
	case errors.Is(err, hl7v2.ErrPath):
		e.Reason = "invalid path computed at run time"
	default:
		msg := err.Error()
		for _, k := range celErrorKinds {
			if strings.HasPrefix(msg, k.prefix) {
				e.Reason = k.reason
				break
			}
		}
	}
	var cerr *types.Err
	if errors.As(err, &cerr) && cerr.NodeID() > 0 {
		p.locate(e, cerr.NodeID())
	}
	return e
}

// locate fills e's function and position from the expression node id:
// both come from the expression as configured, not from the data.
func (p *Program) locate(e *EvalError, id int64) {
	if loc := p.ast.SourceInfo().GetStartLocation(id); loc != nil && loc.Line() >= 1 {
		e.Line, e.Column = loc.Line(), loc.Column()+1
	}
	ast.PostOrderVisit(p.ast.Expr(), ast.NewExprVisitor(func(x ast.Expr) {
		if x.ID() == id && x.Kind() == ast.CallKind {
			e.Function = celDisplayName(x.AsCall().FunctionName())
		}
	}))
}

// celDisplayName is a function or operator as an analyst writes it:
// _[_] is [], _+_ is +, @in is in, !_ is !.
func celDisplayName(fn string) string {
	switch fn {
	case "_[_]", "_[?_]":
		return "[]"
	case "_?_:_":
		return "?:"
	case "@in":
		return "in"
	case "!_":
		return "!"
	case "-_":
		return "-"
	}
	if len(fn) > 2 && fn[0] == '_' && fn[len(fn)-1] == '_' {
		return fn[1 : len(fn)-1]
	}
	return fn
}

// Header variables: the index of each msg.* variable in celMemo.header.
const (
	celHType = iota
	celHTrigger
	celHStructure
	celHVersion
	celHControlID
	celHProcessingID
	celHSendingApp
	celHSendingFac
	celHReceivingApp
	celHReceivingFac
	celNumHeaders
)

// celHeaderIndex returns the index of msg.<name>, -1 for none.
func celHeaderIndex(name string) int {
	switch name {
	case "type":
		return celHType
	case "trigger":
		return celHTrigger
	case "structure":
		return celHStructure
	case "version":
		return celHVersion
	case "control_id":
		return celHControlID
	case "processing_id":
		return celHProcessingID
	case "sending_application":
		return celHSendingApp
	case "sending_facility":
		return celHSendingFac
	case "receiving_application":
		return celHReceivingApp
	case "receiving_facility":
		return celHReceivingFac
	}
	return -1
}

// celHeader reads header variable i from h, the message's MSH.
func celHeader(h hl7v2.Segment, i int) string {
	switch i {
	case celHType:
		return h.Field(9).Comp(1).String()
	case celHTrigger:
		return h.Field(9).Comp(2).String()
	case celHStructure:
		return h.Field(9).Comp(3).String()
	case celHVersion:
		return h.Field(12).Comp(1).String()
	case celHControlID:
		return h.Field(10).String()
	case celHProcessingID:
		return h.Field(11).Comp(1).String()
	case celHSendingApp:
		return h.Field(3).Comp(1).String()
	case celHSendingFac:
		return h.Field(4).Comp(1).String()
	case celHReceivingApp:
		return h.Field(5).Comp(1).String()
	case celHReceivingFac:
		return h.Field(6).Comp(1).String()
	}
	return ""
}

// What a memo slot of a path holds: msg.field, msg.fields or msg.has.
const (
	celKindField = iota
	celKindFields
	celKindHas
	celNumKinds
)

// celMemo is what the evaluations over one Vars remember of its message,
// and the activation they reuse (see Vars).
type celMemo struct {
	owner *Vars
	env   *Env
	act   celActivation

	// msg and segs identify the message the memo holds values of: its
	// pointer and, per segment, where its bytes start and how many
	// there are. hl7v2 never writes a segment's bytes in place (every
	// writer builds a new segment), so a message changed in place
	// changes segs; and the memo keeps the old bytes reachable, so no
	// new segment can reuse their address.
	msg  *hl7v2.Message
	segs []celSegID
	// synced: msg and segs were checked in this evaluation.
	synced bool
	msgVal ref.Val // celMsg{msg, memo}

	header [celNumHeaders]ref.Val
	// slots hold the results over constant paths, at
	// path id*celNumKinds+kind, valid when their gen is the memo's.
	slots []celSlot
	gen   uint32

	// The last value of each Vars string and of received_at, boxed
	// once: a CEL value of a Go string costs an allocation.
	strs       [4]celStr
	receivedAt time.Time
	receivedV  ref.Val
}

type celSegID struct {
	p *byte
	n int
}

type celSlot struct {
	gen uint32
	v   ref.Val
}

type celStr struct {
	s string
	v ref.Val
}

// val returns s as a CEL value, boxed again only when it changed.
func (c *celStr) val(s string) ref.Val {
	if c.v == nil || c.s != s {
		c.s, c.v = s, types.String(s)
	}
	return c.v
}

// memoFor returns v's memo for evaluations in env, made when v has none
// or holds a copy's.
func (v *Vars) memoFor(env *Env) *celMemo {
	c := v.memo
	if c == nil || c.owner != v {
		c = &celMemo{owner: v, gen: 1}
		c.act.memo = c
		v.memo = c
	}
	if c.env != env {
		// Path ids are per environment (a reload brings a new one).
		c.env = env
		c.act.env = env
		c.invalidate()
	}
	return c
}

// begin starts an evaluation over v: the message is checked again when
// the expression first reads it.
func (c *celMemo) begin(v *Vars) *celActivation {
	c.act.v = v
	c.synced = false
	return &c.act
}

// sync makes the memo hold values of the Vars' current message.
func (c *celMemo) sync() {
	if c.synced {
		return
	}
	c.synced = true
	m := c.act.v.Msg
	if m == c.msg && c.msgVal != nil && c.sameSegments(m) {
		return
	}
	c.msg = m
	c.msgVal = celMsg{m: m, memo: c}
	c.segs = c.segs[:0]
	if m != nil {
		for _, s := range m.Segments() {
			c.segs = append(c.segs, celSegmentID(s))
		}
	}
	c.invalidate()
}

func celSegmentID(s hl7v2.Segment) celSegID {
	raw := s.Raw()
	if len(raw) == 0 {
		return celSegID{}
	}
	return celSegID{p: &raw[0], n: len(raw)}
}

func (c *celMemo) sameSegments(m *hl7v2.Message) bool {
	if m == nil {
		return len(c.segs) == 0
	}
	segs := m.Segments()
	if len(segs) != len(c.segs) {
		return false
	}
	ids := c.segs[:len(segs)]
	for i := range segs {
		raw := segs[i].Raw()
		if len(raw) != ids[i].n || len(raw) > 0 && &raw[0] != ids[i].p {
			return false
		}
	}
	return true
}

// invalidate forgets every value read from the message.
func (c *celMemo) invalidate() {
	c.header = [celNumHeaders]ref.Val{}
	c.gen++
	if c.gen == 0 {
		// Wrapped: a slot of 2^32 messages ago would look valid.
		clear(c.slots)
		c.gen = 1
	}
}

// headerVal returns msg.<header i>.
func (c *celMemo) headerVal(i int) ref.Val {
	c.sync()
	if v := c.header[i]; v != nil {
		return v
	}
	s := ""
	if m := c.msg; m != nil && m.Len() > 0 {
		s = celHeader(m.MSH(), i)
	}
	v := types.String(s)
	c.header[i] = v
	return v
}

// lookup returns the memoized result of kind over path id, nil for none.
func (c *celMemo) lookup(id, kind int) ref.Val {
	if i := id*celNumKinds + kind; i < len(c.slots) && c.slots[i].gen == c.gen {
		return c.slots[i].v
	}
	return nil
}

func (c *celMemo) store(id, kind int, v ref.Val) {
	i := id*celNumKinds + kind
	if i >= len(c.slots) {
		n := max(int(c.env.npaths.Load())*celNumKinds, i+1)
		c.slots = append(c.slots, make([]celSlot, n-len(c.slots))...)
	}
	c.slots[i] = celSlot{gen: c.gen, v: v}
}

// celActivation resolves the variables of one evaluation from Vars; the
// header variables are read from the message when first asked for, and
// remembered in the memo.
type celActivation struct {
	v    *Vars
	env  *Env
	memo *celMemo
}

// ResolveName implements interpreter.Activation.
func (a *celActivation) ResolveName(name string) (any, bool) {
	c := a.memo
	switch name {
	case "msg":
		c.sync()
		return c.msgVal, true
	case "interface":
		return c.strs[0].val(a.v.Interface), true
	case "destination":
		return c.strs[1].val(a.v.Destination), true
	case "receipt.message_id":
		return c.strs[2].val(a.v.Receipt.MessageID), true
	case "receipt.parent_message_id":
		return c.strs[3].val(a.v.Receipt.ParentMessageID), true
	case "receipt.received_at":
		t := a.v.Receipt.ReceivedAt
		if c.receivedV == nil || c.receivedAt != t {
			c.receivedAt, c.receivedV = t, types.Timestamp{Time: t}
		}
		return c.receivedV, true
	}
	if h, ok := strings.CutPrefix(name, "msg."); ok {
		if i := celHeaderIndex(h); i >= 0 {
			return c.headerVal(i), true
		}
		return nil, false
	}
	t, ok := a.env.tableVals[name]
	return t, ok
}

// Parent implements interpreter.Activation.
func (a *celActivation) Parent() interpreter.Activation { return nil }

// msgField is msg.field(path) as a function binding (a path computed at
// run time, or a program under the cost limit).
func (e *Env) msgField(lhs, rhs ref.Val) ref.Val { return e.msgCall(lhs, rhs, celKindField) }

// msgFields is msg.fields(path) as a function binding.
func (e *Env) msgFields(lhs, rhs ref.Val) ref.Val { return e.msgCall(lhs, rhs, celKindFields) }

// msgHas is msg.has(path) as a function binding.
func (e *Env) msgHas(lhs, rhs ref.Val) ref.Val { return e.msgCall(lhs, rhs, celKindHas) }

func (e *Env) msgCall(lhs, rhs ref.Val, kind int) ref.Val {
	m, ok := lhs.(celMsg)
	if !ok {
		return types.MaybeNoSuchOverloadErr(lhs)
	}
	s, ok := rhs.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(rhs)
	}
	p, err := e.path(string(s), false)
	if err != nil {
		return types.WrapErr(err)
	}
	return m.read(p, kind)
}

// read returns msg.field, msg.fields or msg.has over p, from the memo
// when p is a constant already read for this message.
func (v celMsg) read(p *celPath, kind int) ref.Val {
	if v.memo == nil || p.id < 0 {
		return celRead(v.m, p.p, kind)
	}
	if out := v.memo.lookup(p.id, kind); out != nil {
		return out
	}
	out := celRead(v.m, p.p, kind)
	v.memo.store(p.id, kind, out)
	return out
}

// celRead computes msg.field (the first present value, "" when none),
// msg.fields (every present value, in message order) or msg.has (some
// value present and not empty) over p.
func celRead(m *hl7v2.Message, p hl7v2.Path, kind int) ref.Val {
	empty := m == nil || m.Len() == 0
	switch kind {
	case celKindField:
		if empty {
			return types.String("")
		}
		return types.String(m.Value(p).String())
	case celKindFields:
		var out []ref.Val
		if !empty {
			vals := m.Values(p)
			out = make([]ref.Val, len(vals))
			for i, v := range vals {
				out[i] = types.String(v.String())
			}
		}
		return types.NewRefValList(types.DefaultTypeAdapter, out)
	default:
		if empty {
			return types.False
		}
		if !p.IsWildcard() {
			return types.Bool(!m.Value(p).IsEmpty())
		}
		for _, v := range m.Values(p) {
			if !v.IsEmpty() {
				return types.True
			}
		}
		return types.False
	}
}

// decorateMsgCalls replaces msg.field, msg.fields and msg.has over a
// constant path with a call that holds the parsed path: no path lookup
// per call, and the result comes from the Vars' memo.
func (e *Env) decorateMsgCalls(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok {
		return i, nil
	}
	kind := -1
	switch call.OverloadID() {
	case celOvField:
		kind = celKindField
	case celOvFields:
		kind = celKindFields
	case celOvHas:
		kind = celKindHas
	}
	args := call.Args()
	if kind < 0 || len(args) != 2 {
		return i, nil
	}
	c, ok := args[1].(interpreter.InterpretableConst)
	if !ok {
		return i, nil
	}
	s, ok := c.Value().(types.String)
	if !ok {
		return i, nil
	}
	p, err := e.path(string(s), true)
	if err != nil {
		// checkPaths refused it at compile already; keep the binding.
		return i, nil
	}
	return &celMsgCall{InterpretableCall: call, recv: args[0], path: p, kind: kind}, nil
}

// celMsgCall is msg.field, msg.fields or msg.has over a constant path.
// It stays an InterpretableCall (function, overload, arguments) for
// whatever inspects the plan.
type celMsgCall struct {
	interpreter.InterpretableCall
	recv interpreter.InterpretableV2
	path *celPath
	kind int
}

// Exec implements interpreter.InterpretableV2.
func (c *celMsgCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	lhs := c.recv.Exec(f)
	m, ok := lhs.(celMsg)
	if !ok {
		return types.LabelErrNode(c.ID(), types.MaybeNoSuchOverloadErr(lhs))
	}
	return m.read(c.path, c.kind)
}

// Eval implements interpreter.Interpretable.
func (c *celMsgCall) Eval(a interpreter.Activation) ref.Val {
	f, err := interpreter.NewExecutionFrame(a)
	if err != nil {
		return types.WrapErr(err)
	}
	defer f.Close()
	return c.Exec(f)
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

// celMsg is the CEL value of msg: the message and the memo of the Vars
// it was resolved from (nil outside an evaluation).
type celMsg struct {
	m    *hl7v2.Message
	memo *celMemo
}

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

// celPath is a path a CEL function reads, wildcards ([*]) included.
type celPath struct {
	p hl7v2.Path
	// id numbers a path constant of a compiled expression (its memo
	// slots in a Vars); -1 for a path computed at run time.
	id int
}

func parseCELPath(s string) (*celPath, error) {
	p, err := hl7v2.ParsePath(s)
	if err != nil {
		return nil, err
	}
	return &celPath{p: p, id: -1}, nil
}

// celFnExistsIn is the function celExistsInRewrite writes for
// list.exists(x, x in set); its name cannot be written in an expression.
const celFnExistsIn = "@hl7bus_exists_in"

// celExistsInRewrite rewrites list.exists(x, x in set), where set is a
// table (tables.x) or a list literal and list a list(string), into
// @hl7bus_exists_in(list, set): the commonest content route ("a
// notifiable code among the results"), evaluated natively instead of
// through a comprehension, which costs a frame per element.
type celExistsInRewrite struct{}

// Optimize implements cel.ASTOptimizer.
func (celExistsInRewrite) Optimize(ctx *cel.OptimizerContext, a *ast.AST) *ast.AST {
	matches := ast.MatchDescendants(ast.NavigateAST(a), func(e ast.NavigableExpr) bool {
		_, _, ok := celExistsInParts(a, e)
		return ok
	})
	for _, m := range matches {
		rng, set, ok := celExistsInParts(a, m)
		if !ok {
			continue
		}
		ctx.UpdateExpr(m, ctx.NewCall(celFnExistsIn, rng, set))
	}
	return ctx.NewAST(a.Expr())
}

// celExistsInParts returns the list and the set of e when e is
// list.exists(x, x in set) in the shape celExistsInRewrite takes.
func celExistsInParts(a *ast.AST, e ast.Expr) (rng, set ast.Expr, ok bool) {
	if e.Kind() != ast.ComprehensionKind {
		return nil, nil, false
	}
	c := e.AsComprehension()
	if c.HasIterVar2() || c.AccuInit().Kind() != ast.LiteralKind || c.AccuInit().AsLiteral() != types.False {
		return nil, nil, false
	}
	if r := c.Result(); r.Kind() != ast.IdentKind || r.AsIdent() != c.AccuVar() {
		return nil, nil, false
	}
	step := c.LoopStep()
	if step.Kind() != ast.CallKind || step.AsCall().FunctionName() != "_||_" || len(step.AsCall().Args()) != 2 {
		return nil, nil, false
	}
	acc, pred := step.AsCall().Args()[0], step.AsCall().Args()[1]
	if acc.Kind() != ast.IdentKind || acc.AsIdent() != c.AccuVar() ||
		pred.Kind() != ast.CallKind || pred.AsCall().FunctionName() != "@in" || len(pred.AsCall().Args()) != 2 {
		return nil, nil, false
	}
	x, set := pred.AsCall().Args()[0], pred.AsCall().Args()[1]
	if x.Kind() != ast.IdentKind || x.AsIdent() != c.IterVar() {
		return nil, nil, false
	}
	rng = c.IterRange()
	if !a.GetType(rng.ID()).IsExactType(cel.ListType(cel.StringType)) {
		return nil, nil, false
	}
	switch set.Kind() {
	case ast.IdentKind:
		if !strings.HasPrefix(set.AsIdent(), "tables.") {
			return nil, nil, false
		}
	case ast.ListKind:
		if !a.GetType(set.ID()).IsExactType(cel.ListType(cel.StringType)) {
			return nil, nil, false
		}
		for _, el := range set.AsList().Elements() {
			if el.Kind() != ast.LiteralKind {
				return nil, nil, false
			}
		}
	default:
		return nil, nil, false
	}
	return rng, set, true
}

// celExistsIn is @hl7bus_exists_in(list, set): whether some element of
// list is in set, with exists' semantics (true wins over an error).
func celExistsIn(lhs, rhs ref.Val) ref.Val {
	l, ok := lhs.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(lhs)
	}
	set, ok := rhs.(traits.Container)
	if !ok {
		return types.MaybeNoSuchOverloadErr(rhs)
	}
	n, ok := l.Size().(types.Int)
	if !ok {
		return types.MaybeNoSuchOverloadErr(lhs)
	}
	var errv ref.Val
	for i := types.Int(0); i < n; i++ {
		switch r := set.Contains(l.Get(i)); {
		case r == types.True:
			return types.True
		case errv == nil && types.IsUnknownOrError(r):
			errv = r
		}
	}
	if errv != nil {
		return errv
	}
	return types.False
}
