package mapping

import (
	"fmt"
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// mapOp maps the value at each match of path through a code table,
// writing the standard code there and, where the rule names them, the
// table's system and display at the aligned positions.
type mapOp struct {
	path, system, display hl7v2.Path
	hasSystem, hasDisplay bool
	table                 *Table
	// tableRef names the table in reasons: "table <name>" and, when the
	// configuration gives one, " (version <version>)", so a flag or a
	// dead letter says which edition of the table it was checked against.
	tableRef string
	unmapped string
}

func (c *compiler) compileMap(key string, s *MapOp) op {
	o := &mapOp{unmapped: s.Unmapped, tableRef: "table " + s.Table}
	p, ok := c.writable(key+".path", s.Path)
	o.path = p
	if s.SystemPath != "" {
		o.system, o.hasSystem = c.aligned(key+".system_path", s.SystemPath, p, ok)
	}
	if s.DisplayPath != "" {
		o.display, o.hasDisplay = c.aligned(key+".display_path", s.DisplayPath, p, ok)
	}
	switch {
	case s.Table == "":
		c.errorf(key+".table", "required")
	case c.env == nil || c.env.Tables()[s.Table] == nil:
		c.errorf(key+".table", "%q is not a configured table", s.Table)
	default:
		o.table = c.env.Tables()[s.Table]
		if v := o.table.Version; v != "" {
			o.tableRef += " (version " + v + ")"
		}
	}
	switch s.Unmapped {
	case "":
		o.unmapped = UnmappedPass
	case UnmappedPass, UnmappedFlag, UnmappedReject:
	default:
		c.errorf(key+".unmapped", "%q is not one of %s, %s, %s", s.Unmapped, UnmappedPass, UnmappedFlag, UnmappedReject)
	}
	return o
}

// aligned parses a path that follows the wildcards of ref (checked only
// when ref parsed).
func (c *compiler) aligned(key, s string, ref hl7v2.Path, refOK bool) (hl7v2.Path, bool) {
	p, ok := c.writable(key, s)
	if ok && refOK {
		c.sameWildcards(key, p, "path", ref)
	}
	return p, ok
}

// maxQuotedCode bounds a code quoted in an issue or a dead letter's detail:
// a code is short, and a long value at a mis-configured path is content
// the reason must not carry.
const maxQuotedCode = 40

// quoteCode quotes a table code for a reason, cut to maxQuotedCode bytes.
func quoteCode(s string) string {
	if len(s) > maxQuotedCode {
		return fmt.Sprintf("%q...", strings.ToValidUTF8(s[:maxQuotedCode], ""))
	}
	return fmt.Sprintf("%q", s)
}

// plainASCII reports whether raw reads as itself: 7-bit, no escape
// character and no delimiter below a field that would give it structure.
func plainASCII(raw []byte, d hl7v2.Delimiters) bool {
	for _, ch := range raw {
		if ch >= 0x80 || ch == d.Escape || ch == d.Component || ch == d.Subcomponent || ch == d.Repetition {
			return false
		}
	}
	return true
}

func (o *mapOp) apply(r *run, m *hl7v2.Message) error {
	for _, p := range r.expand(m, o.path) {
		v := m.Value(p)
		if v.IsEmpty() {
			continue // nothing to map
		}
		// A plain ASCII leaf (the usual code) is its own text: look it
		// up by its wire bytes instead of decoding a string of it.
		raw := v.Raw()
		var (
			e    Entry
			ok   bool
			code string
		)
		plain := plainASCII(raw, m.Delimiters())
		if plain {
			e, ok = o.table.lookupBytes(raw)
		} else {
			code = v.String()
			e, ok = o.table.Lookup(code)
		}
		if !ok {
			if plain {
				code = string(raw)
			}
			switch o.unmapped {
			case UnmappedFlag:
				// An issue is stored with the message: it may quote the code.
				r.flag(p.String(), hl7v2.CodeTableValue, fmt.Sprintf("code %s is not in %s", quoteCode(code), o.tableRef))
			case UnmappedReject:
				// The code is the message's: only the dead-letter record's
				// reason quotes it (Detail), not the error's text.
				return r.failDetail(quoteCode(code), "the code at %s is not in %s", p, o.tableRef)
			}
			continue
		}
		if same := (plain && e.Code == string(raw)) || (!plain && e.Code == code); e.Code != "" && !same {
			if err := m.SetValue(p, e.Code); err != nil {
				return r.fail("%s: %v", p, err)
			}
		}
		if o.hasSystem && e.System != "" {
			q := align(o.system, p)
			if err := m.SetValue(q, e.System); err != nil {
				return r.fail("%s: %v", q, err)
			}
		}
		if o.hasDisplay && e.Display != "" {
			q := align(o.display, p)
			if err := m.SetValue(q, e.Display); err != nil {
				return r.fail("%s: %v", q, err)
			}
		}
	}
	return nil
}
