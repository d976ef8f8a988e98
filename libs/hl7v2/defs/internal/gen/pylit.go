package main

import (
	"fmt"
	"strconv"
	"strings"
)

// The hl7apy definition modules are Python source made of top-level
// assignments of literal dicts, tuples and lists, with references such as
// SEGMENTS['MSH'] between them. This is a reader for exactly that subset, so
// generating needs the wheel file but not a Python interpreter.

// pyRef is a reference like FIELDS['PID_3'].
type pyRef struct{ Table, Key string }

// pyNone is Python's None.
type pyNone struct{}

// parseModule returns the top-level assignments NAME = literal of src.
// Lines that are not such assignments (imports, loops over the tables) are
// skipped, as are the statements nested under them.
func parseModule(src string) (map[string]any, error) {
	out := map[string]any{}
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue
		}
		eq := strings.Index(line, " = ")
		if eq < 0 || strings.ContainsAny(line[:eq], " ()[]") {
			continue
		}
		name := line[:eq]
		rest := strings.Join(lines[i:], "\n")
		p := &pyParser{s: rest, pos: eq + 3}
		v, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v
		i += strings.Count(rest[:p.pos], "\n")
	}
	return out, nil
}

type pyParser struct {
	s   string
	pos int
}

func (p *pyParser) errf(format string, args ...any) error {
	start := max(p.pos-40, 0)
	end := min(p.pos+40, len(p.s))
	return fmt.Errorf("offset %d near %q: %s", p.pos, p.s[start:end], fmt.Sprintf(format, args...))
}

func (p *pyParser) skip() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\\':
			p.pos++
		case c == '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func (p *pyParser) value() (any, error) {
	p.skip()
	if p.pos >= len(p.s) {
		return nil, p.errf("unexpected end")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		return p.dict()
	case c == '(' || c == '[':
		return p.seq()
	case c == '\'' || c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.num()
	case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		return p.ident()
	default:
		return nil, p.errf("unexpected %q", c)
	}
}

func (p *pyParser) expect(c byte) error {
	p.skip()
	if p.pos >= len(p.s) || p.s[p.pos] != c {
		return p.errf("expected %q", c)
	}
	p.pos++
	return nil
}

func (p *pyParser) dict() (map[string]any, error) {
	p.pos++
	out := map[string]any{}
	for {
		p.skip()
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return out, nil
		}
		k, err := p.value()
		if err != nil {
			return nil, err
		}
		ks, ok := k.(string)
		if !ok {
			return nil, p.errf("dict key %v is not a string", k)
		}
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out[ks] = v
		p.skip()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
		}
	}
}

func (p *pyParser) seq() ([]any, error) {
	closer := byte(')')
	if p.s[p.pos] == '[' {
		closer = ']'
	}
	p.pos++
	out := []any{}
	for {
		p.skip()
		if p.pos < len(p.s) && p.s[p.pos] == closer {
			p.pos++
			return out, nil
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.skip()
		if p.pos < len(p.s) && p.s[p.pos] == ',' {
			p.pos++
		}
	}
}

func (p *pyParser) str() (string, error) {
	q := p.s[p.pos]
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == q:
			p.pos++
			// Adjacent literals concatenate, as in Python.
			save := p.pos
			p.skip()
			if p.pos < len(p.s) && (p.s[p.pos] == '\'' || p.s[p.pos] == '"') {
				more, err := p.str()
				return b.String() + more, err
			}
			p.pos = save
			return b.String(), nil
		case c == '\\' && p.pos+1 < len(p.s):
			b.WriteByte(p.s[p.pos+1])
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", p.errf("unterminated string")
}

func (p *pyParser) num() (int, error) {
	start := p.pos
	if p.s[p.pos] == '-' {
		p.pos++
	}
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.Atoi(p.s[start:p.pos])
	if err != nil {
		return 0, p.errf("bad number")
	}
	return n, nil
}

func (p *pyParser) ident() (any, error) {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			break
		}
		p.pos++
	}
	name := p.s[start:p.pos]
	switch name {
	case "None":
		return pyNone{}, nil
	case "True":
		return true, nil
	case "False":
		return false, nil
	}
	if err := p.expect('['); err != nil {
		return nil, err
	}
	k, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.expect(']'); err != nil {
		return nil, err
	}
	ks, _ := k.(string)
	return pyRef{Table: name, Key: ks}, nil
}
