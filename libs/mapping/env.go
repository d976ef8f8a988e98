package mapping

// SKELETON: the contract; the CEL helper implements it.

import (
	"errors"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

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
}

// NewEnv returns the environment over tables.
func NewEnv(tables Tables) (*Env, error) {
	return nil, errors.New("mapping: NewEnv not implemented yet")
}

// Tables returns the environment's code tables.
func (e *Env) Tables() Tables { return e.tables }

// Program is one compiled, type-checked CEL expression.
type Program struct{}

// CompileBool compiles a bool expression; the error names key and the
// column (key: column N: ...).
func (e *Env) CompileBool(key, expr string) (*Program, error) {
	return nil, errors.New("mapping: CompileBool not implemented yet")
}

// CompileString compiles a string expression (for set.expr).
func (e *Env) CompileString(key, expr string) (*Program, error) {
	return nil, errors.New("mapping: CompileString not implemented yet")
}

// EvalBool evaluates a bool program over v, within the cost limit.
func (p *Program) EvalBool(v *Vars) (bool, error) {
	return false, errors.New("mapping: EvalBool not implemented yet")
}

// EvalString evaluates a string program over v, within the cost limit.
func (p *Program) EvalString(v *Vars) (string, error) {
	return "", errors.New("mapping: EvalString not implemented yet")
}
