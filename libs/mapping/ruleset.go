package mapping

// SKELETON: the contract; the operations helper implements it.

import (
	"errors"

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

// RuleSet is a compiled rule set, safe for concurrent use.
type RuleSet struct {
	rules []compiled
}

type compiled struct{ name string }

// Compile checks and compiles rules (at key, e.g. interfaces[0].rules)
// against env: every path parses, every table exists, every CEL
// expression type-checks, exactly one operation per rule, unique names.
// All problems at once, each naming its key.
func Compile(key string, rules []Rule, env *Env, scope Scope) (*RuleSet, error) {
	return nil, errors.New("mapping: Compile not implemented yet")
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
	// Filtered is the filter that dropped the message, nil otherwise.
	Filtered *Filtered
	// Issues are the flags raised (unmapped codes under policy flag,
	// times without an offset), in order.
	Issues []Issue
}

// Filtered names the filter rule that dropped a message and its reason.
type Filtered struct {
	Rule   string
	Reason string
}

// Issue is one flag a rule raised on a message; it carries codes and
// paths, never other message content.
type Issue struct {
	Rule   string
	Path   string
	Reason string
}

// RuleError is a rule that failed on one message (a path the message
// cannot take, a type error, a table miss under policy reject, the cost
// limit): the message is dead-lettered with Error() as the reason.
type RuleError struct {
	Rule   string
	Reason string
}

func (e *RuleError) Error() string { return "rule " + e.Rule + ": " + e.Reason }

// Apply applies the rules in order to m (which it may change; clone it
// first to keep the original) with vars for the CEL expressions
// (vars.Msg is set to the message being worked on). A nil RuleSet
// returns m unchanged.
func (rs *RuleSet) Apply(m *hl7v2.Message, vars Vars) (Result, error) {
	if rs == nil {
		return Result{Messages: []*hl7v2.Message{m}}, nil
	}
	return Result{}, errors.New("mapping: Apply not implemented yet")
}
