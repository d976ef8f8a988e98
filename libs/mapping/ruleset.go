package mapping

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Scope says where a rule set applies, which decides what it may do.
type Scope int

const (
	// Inbound rules (interfaces[].rules) run in transform; they may split.
	Inbound Scope = iota
	// Outbound rules (destinations[].rules) run in route on one
	// destination's copy; split is refused there (a destination's copies
	// keep the exchange's message IDs).
	Outbound
)

// RuleSet is a compiled rule set, safe for concurrent use: compiling does
// every check and parse once, and Apply only reads it.
type RuleSet struct {
	rules []compiled
}

// compiled is one rule ready to run.
type compiled struct {
	name string
	when *Program // nil: always
	op   op
}

// op is one compiled operation. apply changes m in place; the operations
// that change the number of messages (filter, split) are handled by Apply
// itself.
type op interface {
	apply(r *run, m *hl7v2.Message) error
}

// run is the state of one Apply: the rule being applied, the variables for
// CEL, the issues raised so far and a path buffer reused by every
// operation so expanding a wildcard does not allocate per rule.
type run struct {
	rule string
	// child is the child number of the message being worked on (0 before
	// a split), recorded on the issues it raises.
	child  int
	vars   *Vars
	issues []Issue
	paths  []hl7v2.Path
	// pathBuf backs paths: enough for a wildcard over a usual message's
	// OBX segments without growing, in the run's one allocation.
	pathBuf [16]hl7v2.Path
}

// fail returns the RuleError of the rule being applied; the reason must
// not quote the message (see failDetail).
func (r *run) fail(format string, args ...any) error {
	return &RuleError{Rule: r.rule, Reason: fmt.Sprintf(format, args...)}
}

// failDetail is fail with detail, a value of the message the dead-letter
// record's reason alone may quote (see RuleError.Detail).
func (r *run) failDetail(detail, format string, args ...any) error {
	return &RuleError{Rule: r.rule, Reason: fmt.Sprintf(format, args...), Detail: detail}
}

// flag records an issue, of HL7 error code code, for the rule being
// applied on the message being worked on.
func (r *run) flag(path string, code hl7v2.ErrorCode, reason string) {
	r.issues = append(r.issues, Issue{Rule: r.rule, Path: path, Reason: reason, Code: code, Child: r.child})
}

// expand returns the concrete paths of p in r's reusable buffer; the
// result is valid until the next expand.
func (r *run) expand(m *hl7v2.Message, p hl7v2.Path) []hl7v2.Path {
	r.paths = m.AppendExpand(r.paths[:0], p)
	return r.paths
}

// compiler collects every problem of a rule set, each naming its key.
type compiler struct {
	env   *Env
	scope Scope
	errs  []error
}

func (c *compiler) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// path parses a path at key, recording the error; ok is false on error.
func (c *compiler) path(key, s string) (hl7v2.Path, bool) {
	if s == "" {
		c.errorf(key, "required")
		return hl7v2.Path{}, false
	}
	p, err := hl7v2.ParsePath(s)
	if err != nil {
		c.errorf(key, "%v", err)
		return hl7v2.Path{}, false
	}
	if max(p.Occurrence, p.Field, p.Repetition, p.Component, p.Subcomponent) > maxRuleIndex {
		c.errorf(key, "%s: an index above %d is not a position a message has", p, maxRuleIndex)
		return hl7v2.Path{}, false
	}
	return p, true
}

// maxRuleIndex bounds each index of a rule's path. The path grammar goes
// to 2^20, but a rule writing PID-1000000 would build a megabyte of empty
// fields into every message it touches; no segment definition has more
// than a few hundred fields, components or repetitions.
const maxRuleIndex = 1000

// writable is path for a value an operation writes: MSH-1 and MSH-2 (and
// FHS/BHS) define the delimiters and cannot be written value by value.
func (c *compiler) writable(key, s string) (hl7v2.Path, bool) {
	p, ok := c.path(key, s)
	if !ok {
		return p, false
	}
	switch p.Segment {
	case "MSH", "FHS", "BHS":
		if p.Field <= 2 {
			c.errorf(key, "%s-%d defines the delimiters and cannot be written", p.Segment, p.Field)
			return p, false
		}
	}
	return p, true
}

// opNames lists the operation keys, in the order spec.go declares them.
var opNames = []string{"set", "copy", "move", "clear", "delete_segment", "add_segment", "map", "normalize", "version", "split", "filter"}

func (r *Rule) ops() []string {
	present := []bool{r.Set != nil, r.Copy != nil, r.Move != nil, r.Clear != nil, r.DeleteSegment != nil,
		r.AddSegment != nil, r.Map != nil, r.Normalize != nil, r.Version != nil, r.Split != nil, r.Filter != nil}
	var out []string
	for i, ok := range present {
		if ok {
			out = append(out, opNames[i])
		}
	}
	return out
}

// Compile checks and compiles rules (at key, e.g. interfaces[0].rules)
// against env: every path parses, every table exists, every CEL
// expression type-checks, exactly one operation per rule, unique names.
// All problems at once, each naming its key. A nil env is an environment
// without tables in which no CEL expression compiles.
func Compile(key string, rules []Rule, env *Env, scope Scope) (*RuleSet, error) {
	c := &compiler{env: env, scope: scope}
	rs := &RuleSet{rules: make([]compiled, 0, len(rules))}
	seen := make(map[string]string, len(rules))
	for i := range rules {
		r := &rules[i]
		rk := fmt.Sprintf("%s[%d]", key, i)
		cr := compiled{name: r.Name}
		switch {
		case r.Name == "":
			c.errorf(rk+".name", "required")
		case seen[r.Name] != "":
			c.errorf(rk+".name", "%q is already the name of %s", r.Name, seen[r.Name])
		default:
			seen[r.Name] = rk
		}
		if r.When != "" {
			cr.when = c.cel(rk+".when", r.When, true)
		}
		ops := r.ops()
		if len(ops) != 1 {
			got := "none"
			if len(ops) > 0 {
				got = strings.Join(ops, ", ")
			}
			c.errorf(rk, "exactly one operation (%s) expected, got %s", strings.Join(opNames, ", "), got)
			continue
		}
		before := len(c.errs)
		var o op
		switch {
		case r.Set != nil:
			o = c.compileSet(rk+".set", r.Set)
		case r.Copy != nil:
			o = c.compileCopy(rk+".copy", r.Copy, false)
		case r.Move != nil:
			o = c.compileCopy(rk+".move", r.Move, true)
		case r.Clear != nil:
			o = c.compileClear(rk+".clear", r.Clear)
		case r.DeleteSegment != nil:
			o = c.compileDeleteSegment(rk+".delete_segment", r.DeleteSegment)
		case r.AddSegment != nil:
			o = c.compileAddSegment(rk+".add_segment", r.AddSegment)
		case r.Map != nil:
			o = c.compileMap(rk+".map", r.Map)
		case r.Normalize != nil:
			o = c.compileNormalize(rk+".normalize", r.Normalize)
		case r.Version != nil:
			o = c.compileVersion(rk+".version", r.Version)
		case r.Split != nil:
			o = c.compileSplit(rk+".split", r.Split)
		case r.Filter != nil:
			o = compileFilter(r.Filter)
		}
		if len(c.errs) > before {
			continue
		}
		cr.op = o
		rs.rules = append(rs.rules, cr)
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return rs, nil
}

// cel compiles a CEL expression at key, bool or string, recording the
// error.
func (c *compiler) cel(key, expr string, isBool bool) *Program {
	if c.env == nil {
		c.errorf(key, "no CEL environment to compile the expression in")
		return nil
	}
	var (
		p   *Program
		err error
	)
	if isBool {
		p, err = c.env.CompileBool(key, expr)
	} else {
		p, err = c.env.CompileString(key, expr)
	}
	if err != nil {
		// The environment names key and column itself.
		c.errs = append(c.errs, err)
		return nil
	}
	return p
}

// Len returns the number of rules.
func (rs *RuleSet) Len() int {
	if rs == nil {
		return 0
	}
	return len(rs.rules)
}

// Result is what applying a rule set did.
type Result struct {
	// Messages are the messages after the rules: one, several after a
	// split (children in order), none when filtered.
	Messages []*hl7v2.Message
	// Indexes, after a split, is the child number of each of Messages
	// (1-based: MSH-10 "<control ID>-<n>", message ID "<id>-<n>"); nil
	// when no split happened. Numbers are not reassigned when a filter
	// drops a sibling, so a child keeps its ID whatever the rules after
	// the split do and a gap says a child was dropped (see Dropped).
	Indexes []int
	// Filtered is the filter that dropped the message, nil otherwise.
	// After a split it is set only when no child is left (the filter that
	// dropped the last one); Dropped then lists every child.
	Filtered *Filtered
	// Dropped lists, after a split, each child a filter dropped, in
	// child order, whether siblings go on or not; empty for a message
	// that was not split (Filtered says whether it was dropped).
	Dropped []Dropped
	// Issues are the flags raised (unmapped codes under policy flag,
	// times without an offset), in order.
	Issues []Issue
}

// Dropped is a split child a filter dropped: its child number, the
// filter, and the child as it was when dropped (for its header: its own
// MSH-10).
type Dropped struct {
	// Index is the child number, 1-based, as in Result.Indexes.
	Index int
	Filtered
	// Message is the child when the filter dropped it.
	Message *hl7v2.Message
}

// Filtered names the filter rule that dropped a message and its reason.
type Filtered struct {
	Rule   string
	Reason string
}

// Issue is one flag a rule raised on a message. Its reason may quote a
// table code (an unmapped code under unmapped: flag, cut to 40 bytes):
// issues are stored with the message (the transformed record's issues),
// never logged nor used as a metric label.
type Issue struct {
	Rule   string
	Path   string
	Reason string
	// Code is the HL7 error code (ERR-3) of what the rule found:
	// hl7v2.CodeTableValue (103) for a code its table lacks,
	// hl7v2.CodeDataType (102) for a time without a UTC offset.
	Code hl7v2.ErrorCode
	// Child is the split child the issue was raised on (its number as in
	// Result.Indexes, message ID <id>-<n>), or 0 when it was raised
	// before any split and so applies to every child (to the message
	// itself when there was no split; Path is then the parent's).
	Child int
}

// RuleError is a rule that failed on one message (a path the message
// cannot take, a type error, a table miss under policy reject, the cost
// limit). Its Error() ("rule <name>: <reason>") carries no message
// content: it is what logs, span status, decisions and error texts show.
// The dead-letter record's reason alone adds Detail (see
// DeadLetterDetail): that record holds the whole message anyway.
type RuleError struct {
	Rule   string
	Reason string
	// Detail is the value of the message the failure is about, quoted
	// (the unmapped code of a map under unmapped: reject, cut to 40
	// bytes), or "". It is never part of Error().
	Detail string
}

func (e *RuleError) Error() string { return "rule " + e.Rule + ": " + e.Reason }

// DeadLetterDetail returns Detail. libs/pipeline finds it through any
// wrapping (pipeline.Permanent, fmt.Errorf %w) and appends it to the
// dead-letter record's reason only ("<Error()>: <Detail>"), never to a
// log line, span status or decision.
func (e *RuleError) DeadLetterDetail() string { return e.Detail }

// Apply applies the rules in order to m (which it may change; clone it
// first to keep the original) with vars for the CEL expressions
// (vars.Msg is set to the message being worked on). A nil RuleSet
// returns m unchanged. After a split the rules that follow apply to each
// child in turn; a split child is not split again (a RuleError: its
// children would need numbers of their own beside their siblings'). The
// error, when not nil, is a *RuleError.
func (rs *RuleSet) Apply(m *hl7v2.Message, vars Vars) (Result, error) {
	if rs == nil {
		return Result{Messages: []*hl7v2.Message{m}}, nil
	}
	r := &run{vars: &vars}
	r.paths = r.pathBuf[:0]
	msgs := []*hl7v2.Message{m}
	// nums[i] is msgs[i]'s child number; nil until a split made children.
	var (
		nums     []int
		filtered *Filtered
		dropped  []Dropped
	)
	for i := range rs.rules {
		c := &rs.rules[i]
		r.rule, r.child = c.name, 0
		// Without a split every message maps to at most one, so the
		// survivors are collected in place.
		out, outNums := msgs[:0], nums[:0]
		if _, ok := c.op.(*splitOp); ok {
			out = make([]*hl7v2.Message, 0, len(msgs)*2)
			outNums = nil
		}
		for j, cur := range msgs {
			keep := cur // the message this rule leaves in cur's place; nil: none
			if nums != nil {
				r.child = nums[j]
			}
			if c.when != nil {
				vars.Msg = cur
				ok, err := c.when.EvalBool(&vars)
				if err != nil {
					return Result{}, r.fail("when: %v", err)
				}
				if !ok {
					out, outNums = appendKept(out, outNums, nums, j, cur)
					continue
				}
			}
			switch o := c.op.(type) {
			case *filterOp:
				filtered, keep = &Filtered{Rule: c.name, Reason: o.reason}, nil
				if nums != nil {
					dropped = append(dropped, Dropped{Index: nums[j], Filtered: *filtered, Message: cur})
				}
			case *splitOp:
				kids, err := o.split(r, cur)
				if err != nil {
					return Result{}, err
				}
				switch {
				case len(kids) == 1:
					keep = kids[0]
				case nums != nil:
					return Result{}, r.fail("split: the message is a split child already; a rule set splits a message once")
				default:
					keep = nil
					out = append(out, kids...)
					for k := range kids {
						outNums = append(outNums, k+1)
					}
				}
			default:
				vars.Msg = cur
				if err := o.apply(r, cur); err != nil {
					return Result{}, err
				}
			}
			if keep != nil {
				out, outNums = appendKept(out, outNums, nums, j, keep)
			}
		}
		msgs, nums = out, outNums
		if len(msgs) == 0 {
			return Result{Filtered: filtered, Dropped: sortDropped(dropped), Issues: r.issues}, nil
		}
	}
	return Result{Messages: msgs, Indexes: nums, Dropped: sortDropped(dropped), Issues: r.issues}, nil
}

// appendKept appends m, which takes the place of the j-th message, to
// out, and its child number nums[j] to outNums when there are numbers.
func appendKept(out []*hl7v2.Message, outNums, nums []int, j int, m *hl7v2.Message) ([]*hl7v2.Message, []int) {
	out = append(out, m)
	if nums != nil {
		outNums = append(outNums, nums[j])
	}
	return out, outNums
}

// sortDropped puts d in child order: filters drop children rule by rule,
// so a later filter can drop an earlier child.
func sortDropped(d []Dropped) []Dropped {
	slices.SortStableFunc(d, func(a, b Dropped) int { return a.Index - b.Index })
	return d
}
