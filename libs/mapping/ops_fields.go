package mapping

import (
	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Field operations: set, copy, move and clear. A wildcard path applies to
// every match (hl7v2.Message.Expand); copy and move align the target's
// wildcards with the source's match by match, so OBX[*]-3 to OBX[*]-4
// copies each OBX's field 3 to its own field 4.

// setOp stores a literal or a computed value at every match of path.
type setOp struct {
	path  hl7v2.Path
	value string
	// std is value escaped for the standard delimiters |^~\& when it is
	// ASCII and holds one of them, so a message in them gets it without
	// escaping it again (a plain value needs no escaping at all); nil
	// otherwise.
	std  []byte
	expr *Program // nil: value
}

func (c *compiler) compileSet(key string, s *SetOp) op {
	p, _ := c.writable(key+".path", s.Path)
	o := &setOp{path: p}
	switch {
	case s.Value != nil && s.Expr != "":
		c.errorf(key, "value and expr are exclusive; give one")
	case s.Value == nil && s.Expr == "":
		c.errorf(key, "one of value and expr is required")
	case s.Value != nil:
		o.value = *s.Value
		if esc := hl7v2.Escape([]byte(o.value), hl7v2.DefaultDelimiters); isASCII(o.value) && string(esc) != o.value {
			o.std = esc
		}
	default:
		o.expr = c.cel(key+".expr", s.Expr, false)
	}
	return o
}

func (o *setOp) apply(r *run, m *hl7v2.Message) error {
	val := o.value
	if o.expr != nil {
		v, err := o.expr.EvalString(r.vars)
		if err != nil {
			return r.fail("expr: %v", err)
		}
		val = v
	}
	std := o.std != nil && o.expr == nil && m.Delimiters() == hl7v2.DefaultDelimiters
	for _, p := range r.expand(m, o.path) {
		var err error
		if std {
			err = m.SetRawValue(p, o.std)
		} else {
			err = m.SetValue(p, val)
		}
		if err != nil {
			return r.fail("%s: %v", p, err)
		}
	}
	return nil
}

// isASCII reports whether s is 7-bit, which every character set a message
// can declare writes as it is.
func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// copyOp copies the wire value at each match of from to the aligned
// position of to (escapes and structure kept: both are in the message's
// own encoding); as move it then clears from. An absent source leaves the
// target as it is; a present empty one empties it.
type copyOp struct {
	from, to hl7v2.Path
	move     bool
}

func (c *compiler) compileCopy(key string, s *CopyOp, move bool) op {
	from, ok1 := c.path(key+".from", s.From)
	if move && ok1 {
		// A move clears its source, so the source must be writable too.
		from, ok1 = c.writable(key+".from", s.From)
	}
	to, ok2 := c.writable(key+".to", s.To)
	if ok1 && ok2 {
		c.sameWildcards(key+".to", to, "from", from)
	}
	return &copyOp{from: from, to: to, move: move}
}

// sameWildcards requires p to have the wildcards of ref in the same
// places, which is how a match of ref names its position in p.
func (c *compiler) sameWildcards(key string, p hl7v2.Path, refName string, ref hl7v2.Path) {
	if p.WildcardOccurrence != ref.WildcardOccurrence || p.WildcardRepetition != ref.WildcardRepetition {
		c.errorf(key, "%s must have the wildcards of %s (%s) in the same places", p, refName, ref)
	}
}

// align puts the concrete indices of match m into the wildcards of p.
func align(p, m hl7v2.Path) hl7v2.Path {
	if p.WildcardOccurrence {
		p.WildcardOccurrence, p.Occurrence = false, m.Occurrence
	}
	if p.WildcardRepetition {
		p.WildcardRepetition, p.Repetition = false, m.Repetition
	}
	return p
}

func (o *copyOp) apply(r *run, m *hl7v2.Message) error {
	for _, p := range r.expand(m, o.from) {
		v := m.Value(p)
		if !v.Present() {
			continue
		}
		to := align(o.to, p)
		if err := m.SetRawValue(to, v.Raw()); err != nil {
			return r.fail("%s: %v", to, err)
		}
		if o.move && to != p {
			if err := m.ClearValue(p); err != nil {
				return r.fail("%s: %v", p, err)
			}
		}
	}
	return nil
}

// clearOp empties every match of path that the message has; an absent one
// is left absent (clearing does not create segments or fields). The
// delimiters a clear leaves trailing go (hl7v2.Message.ClearValue):
// clearing PID-13[2] of "+15550100~+15550199" leaves "+15550100".
type clearOp struct {
	path hl7v2.Path
}

func (c *compiler) compileClear(key string, s *PathOp) op {
	p, _ := c.writable(key+".path", s.Path)
	return &clearOp{path: p}
}

func (o *clearOp) apply(r *run, m *hl7v2.Message) error {
	for _, p := range r.expand(m, o.path) {
		if err := m.ClearValue(p); err != nil {
			return r.fail("%s: %v", p, err)
		}
	}
	return nil
}
