package hl7v2

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hl7bus/hl7bus/libs/hl7v2/defs"
)

// Rule names, used in Issue.Rule and as keys of Profile.Severity. Each has
// a default severity (see defaultSeverity).
const (
	RuleVersion            = "version"                      // MSH-12 not 2.1-2.8.x
	RuleMessageType        = "message-type"                 // MSH-9.1 not in table 0076
	RuleEvent              = "event"                        // MSH-9.2 not in table 0003
	RuleStructureUnknown   = "structure.unknown"            // no definition for the message's structure
	RuleStructureRequired  = "structure.required"           // required segment or group missing
	RuleStructureSequence  = "structure.sequence"           // known segment in a place the structure does not allow
	RuleUnexpectedSegment  = "structure.unexpected-segment" // non-Z segment the structure does not mention
	RuleRequired           = "required"                     // required field empty
	RuleRequiredComponent  = "required-component"           // required component of a valued field empty
	RuleRepetition         = "repetition"                   // non-repeating field repeats
	RuleDataType           = "datatype"                     // value not in its data type's format
	RuleTable              = "table"                        // ID value (or coded value naming the table) not in its HL7 table
	RuleTableCoded         = "table.coded"                  // CE/CWE/CNE value without coding system, not in the field's HL7 table
	RuleTableUserDefined   = "table.user-defined"           // IS value not among HL7's suggested values (off unless a profile asks)
	RuleLength             = "length"                       // value longer than the version allows
	RuleEscape             = "escape"                       // malformed escape sequence
	RuleCharset            = "charset"                      // MSH-18 unknown, or bytes invalid for it
	RuleControlCharacter   = "control-character"            // C0 control character (NUL, ESC, ...) inside a value
	RuleControlLayout      = "control-character.layout"     // TAB or LF in a value whose type is not TX or FT
	RuleProfileRequired    = "profile.required"             // profile: required path empty
	RuleProfileValues      = "profile.values"               // profile: value not allowed
	RuleProfileForbidden   = "profile.forbidden-segment"    // profile: segment not allowed
	RuleProfileMessageType = "profile.message-type"         // profile: message type not accepted
	RuleProfileVersion     = "profile.version"              // profile: version not accepted
)

// defaultSeverity is how serious each rule is without a profile. Errors are
// what makes a message unusable or clearly wrong for its receiver; warnings
// are what real senders commonly do and receivers cope with.
var defaultSeverity = map[string]Severity{
	RuleVersion:           SeverityError,
	RuleMessageType:       SeverityError,
	RuleEvent:             SeverityError,
	RuleStructureUnknown:  SeverityWarning,
	RuleStructureRequired: SeverityError,
	RuleStructureSequence: SeverityError,
	RuleUnexpectedSegment: SeverityWarning,
	RuleRequired:          SeverityError,
	RuleRequiredComponent: SeverityWarning,
	RuleRepetition:        SeverityWarning,
	RuleDataType:          SeverityError,
	RuleTable:             SeverityError,
	RuleTableCoded:        SeverityWarning,
	RuleTableUserDefined:  severityIgnore,
	RuleLength:            SeverityWarning,
	RuleEscape:            SeverityWarning,
	RuleCharset:           SeverityWarning,
	// No HL7 data type admits C0 control characters (ST, TX and FT are
	// printable characters), and they are not harmless in transit: XML 1.0
	// cannot carry them at all (v2.xml, FHIR XML), NUL ends a C string and
	// PostgreSQL refuses it in text. Hence an error, so a profile-checking
	// interface can refuse the message before a destination chokes on it.
	RuleControlCharacter: SeverityError,
	// TAB and LF are text in TX and FT and survive XML and JSON; elsewhere
	// they are layout leaking into a coded or short field, which receivers
	// cope with.
	RuleControlLayout:      SeverityWarning,
	RuleProfileRequired:    SeverityError,
	RuleProfileValues:      SeverityError,
	RuleProfileForbidden:   SeverityError,
	RuleProfileMessageType: SeverityError,
	RuleProfileVersion:     SeverityError,
}

// Report is the outcome of validating one message.
type Report struct {
	// Version is the definitions version used ("" when MSH-12 named none we
	// have).
	Version string `json:"version"`
	// Structure is the message structure checked against ("" if unknown).
	Structure string  `json:"structure"`
	Issues    []Issue `json:"issues"`
}

// Valid reports whether no issue has error severity.
func (r *Report) Valid() bool {
	for _, i := range r.Issues {
		if i.Severity == SeverityError {
			return false
		}
	}
	return true
}

// Errors returns the issues of error severity.
func (r *Report) Errors() []Issue {
	var out []Issue
	for _, i := range r.Issues {
		if i.Severity == SeverityError {
			out = append(out, i)
		}
	}
	return out
}

// Validator checks messages against the HL7 definitions of their version and
// an optional conformance profile. It is safe for concurrent use.
type Validator struct {
	profile *Profile
}

// NewValidator returns a validator applying profile (nil for none).
func NewValidator(profile *Profile) *Validator { return &Validator{profile: profile} }

// Validate checks m against its version's definitions only.
func Validate(m *Message) *Report { return (&Validator{}).Validate(m) }

// Validate checks m and returns every issue found.
func (v *Validator) Validate(m *Message) *Report {
	c := check{m: m, p: v.profile, r: &Report{}}
	c.run()
	return c.r
}

type check struct {
	m   *Message
	p   *Profile
	r   *Report
	ver *defs.Version
}

func (c *check) add(rule string, code ErrorCode, loc Location, format string, args ...any) {
	sev := defaultSeverity[rule]
	if c.p != nil {
		if s, ok := c.p.Severity[rule]; ok {
			sev = s
		}
	}
	if sev == severityIgnore {
		return
	}
	c.r.Issues = append(c.r.Issues, Issue{Severity: sev, Code: code, Location: loc, Rule: rule, Text: fmt.Sprintf(format, args...)})
}

// occurrence returns the 1-based occurrence of segment i among those with
// its name; computed only when an issue needs it.
func (c *check) occurrence(i int) int {
	n := 0
	name := c.m.segs[i].nameBytes()
	for j := 0; j <= i; j++ {
		if bytes.Equal(c.m.segs[j].nameBytes(), name) {
			n++
		}
	}
	return n
}

func (c *check) run() {
	m := c.m
	msh := Location{Segment: "MSH", Occurrence: 1}
	ver := m.Version()
	// Missing MSH-9/MSH-10/MSH-12 are reported whatever else is known: a
	// message without them cannot be acknowledged or interpreted.
	headerRequired(m, func(loc Location, text string) { c.add(RuleRequired, CodeRequiredFieldMissing, loc, "%s", text) })
	switch vd, ok := defs.Lookup(ver); {
	case missing(m.MSH().Field(12)):
		// Reported by headerRequired.
	case ok && versionAtLeast(ver, 2, 1) && !versionAtLeast(ver, 2, 9):
		c.ver = vd
		c.r.Version = vd.ID
	default:
		// The value is not quoted: whatever a sender put there is content.
		c.add(RuleVersion, CodeUnsupportedVersion, withField(msh, 12), "MSH-12 version is not one of 2.1 to 2.8.x")
	}
	c.charset()
	code, event, structure := m.Type()
	if c.ver != nil {
		c.structure(code, event, structure)
		c.fields()
	}
	c.escapes()
	c.controls()
	if c.p != nil {
		c.profile(code, event)
	}
}

func withField(l Location, f int) Location { l.Field = f; return l }

func (c *check) charset() {
	cs := c.m.c.charset
	loc := Location{Segment: "MSH", Occurrence: 1, Field: 18}
	if cs.Declared != "" {
		if _, err := LookupCharset(cs.Declared); err != nil {
			c.add(RuleCharset, CodeDataType, loc, "MSH-18 character set is not supported; decoded as %s", cs.Used)
			return
		}
	}
	if cs.enc == nil {
		for i, s := range c.m.segs {
			if !utf8.Valid(s.raw) {
				l := loc
				if cs.Declared == "" {
					l = Location{Segment: s.Name(), Occurrence: c.occurrence(i)}
				}
				// Declared is one of the charsets table names here (an
				// unknown one returned above), so naming it quotes nothing.
				c.add(RuleCharset, CodeDataType, l, "bytes are not valid %s; decoded as %s",
					orDefault(strings.ToUpper(strings.TrimSpace(cs.Declared)), "UTF-8/ASCII"), orDefault(cs.fbName, "U+FFFD"))
				return
			}
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// structure resolves the message's structure and matches the segments
// against it.
func (c *check) structure(code, event, structID string) {
	loc := Location{Segment: "MSH", Occurrence: 1, Field: 9}
	if code == "" {
		// Reported by headerRequired.
		return
	}
	var st *defs.Structure
	var ok bool
	if structID != "" {
		st, ok = c.ver.Structure(structID)
	}
	if !ok && code == "ACK" {
		st, ok = c.ver.Structure("ACK")
	}
	if !ok && event != "" {
		st, ok = c.ver.StructureFor(code, event)
	}
	if !ok {
		if t, found := defs.LookupTable(76); found && !t.Has(code) {
			l := loc
			l.Component = 1
			c.add(RuleMessageType, CodeUnsupportedMessageType, l, "message type is not in HL7 table 0076")
			return
		}
		if t, found := defs.LookupTable(3); found && event != "" && !t.Has(event) {
			l := loc
			l.Component = 2
			c.add(RuleEvent, CodeUnsupportedEvent, l, "trigger event is not in HL7 table 0003")
			return
		}
		c.add(RuleStructureUnknown, CodeUnsupportedEvent, loc, "no message structure is defined for this type and event in version %s; segment order not checked", c.ver.ID)
		return
	}
	c.r.Structure = st.ID
	mt := matcher{c: c, st: st}
	mt.group(st.Nodes, false, true)
	// A segment out of order stops the walk. Report it, then match the rest
	// against the whole structure again (without re-reporting what is
	// missing), so one misplaced segment does not flag everything after it.
	mt.quiet = true
	for mt.skip(); mt.pos < len(c.m.segs); mt.skip() {
		c.add(RuleStructureSequence, CodeSegmentSequence, Location{Segment: c.m.segs[mt.pos].Name(), Occurrence: c.occurrence(mt.pos)},
			"segment is not allowed at this position by structure %s", st.ID)
		mt.pos++
		mt.group(st.Nodes, false, false)
	}
}

// matcher walks the segments against a structure greedily, the way HL7
// structures are designed to be read: each group starts with a segment that
// identifies it, so no backtracking is needed.
type matcher struct {
	c     *check
	st    *defs.Structure
	pos   int
	quiet bool // do not report missing segments (re-matching after an error)
}

// skip steps over Z-segments (allowed anywhere) and segments the structure
// does not mention at all (kept, reported as warnings).
func (mt *matcher) skip() {
	for mt.pos < len(mt.c.m.segs) {
		s := mt.c.m.segs[mt.pos]
		name := s.nameBytes()
		if mt.c.ver.Mentions(mt.st, string(name)) {
			return
		}
		if name[0] != 'Z' {
			mt.c.add(RuleUnexpectedSegment, CodeSegmentSequence, Location{Segment: s.Name(), Occurrence: mt.c.occurrence(mt.pos)},
				"segment is not part of structure %s; kept", mt.st.ID)
		}
		mt.pos++
	}
}

// group matches one occurrence of a sequence (or choice) of nodes and
// reports whether it consumed any segment. Missing required children are
// reported only when the group is present or required (report).
func (mt *matcher) group(nodes []defs.Node, choice, report bool) bool {
	if choice {
		for _, n := range nodes {
			if mt.one(n) {
				return true
			}
		}
		return false
	}
	start := mt.pos
	mark := len(mt.c.r.Issues)
	var missing []defs.Node
	for _, n := range nodes {
		count := 0
		for n.Max == defs.Unbounded || count < n.Max {
			mt.skip()
			if !mt.one(n) {
				break
			}
			count++
		}
		if count < n.Min {
			missing = append(missing, n)
		}
	}
	consumed := mt.pos > start
	if !consumed && !report {
		// An absent optional group: whatever its children reported (only
		// unexpected segments can be) stays, but nothing is missing.
		mt.c.r.Issues = mt.c.r.Issues[:mark:mark]
		return false
	}
	for _, n := range missing {
		if mt.quiet {
			break
		}
		kind := "segment"
		if n.Group {
			kind = "group " + n.Name + " (starting with " + firstSegment(n) + ")"
		}
		mt.c.add(RuleStructureRequired, CodeSegmentSequence, Location{Segment: firstSegment(n)},
			"required %s is missing (structure %s)", kind, mt.st.ID)
	}
	return consumed
}

func (mt *matcher) one(n defs.Node) bool {
	if mt.pos >= len(mt.c.m.segs) {
		return false
	}
	if n.Group {
		return mt.group(n.Children, n.Choice, false)
	}
	if n.Name == defs.AnySegment || mt.c.m.segs[mt.pos].Is(n.Name) {
		mt.pos++
		return true
	}
	return false
}

func firstSegment(n defs.Node) string {
	for n.Group && len(n.Children) > 0 {
		n = n.Children[0]
	}
	return n.Name
}

// fields checks every segment that has a definition in the version.
func (c *check) fields() {
	for i, s := range c.m.segs {
		def, ok := c.ver.Segment(string(s.nameBytes()))
		if !ok {
			continue
		}
		occ := 0 // computed on the first issue only
		loc := func() Location {
			if occ == 0 {
				occ = c.occurrence(i)
			}
			return Location{Segment: def.ID, Occurrence: occ}
		}
		// Field n is element n of the split segment, or n-1 in MSH/FHS/BHS
		// where the field separator itself is field 1.
		shift := 0
		if s.isHeader() {
			shift = 1
		}
		for fi := range def.Fields {
			fd := &def.Fields[fi]
			n := fi + 1
			if shift == 1 && n <= 2 || fd.Max == 0 {
				// Max 0 marks a withdrawn field: senders still fill the
				// position, and nothing about it can be checked.
				continue
			}
			if i == 0 && (n == 9 || n == 12 || n == 18) {
				// Message type, version and character set have rules of
				// their own (with better codes); do not report them twice.
				continue
			}
			var raw []byte
			if e := n - shift; e < len(s.b)-1 {
				raw = s.raw[s.b[e] : s.b[e+1]-1]
			}
			if len(raw) == 0 {
				// An empty MSH-10 is reported by headerRequired.
				if fd.Min > 0 && !(i == 0 && n == 10) {
					c.add(RuleRequired, CodeRequiredFieldMissing, withField(loc(), n), "%s-%d (%s) is required", def.ID, n, fd.Name)
				}
				continue
			}
			if len(raw) == 2 && raw[0] == '"' && raw[1] == '"' {
				continue
			}
			if fd.Max == 1 && bytes.IndexByte(raw, s.c.d.Repetition) >= 0 {
				reps := bytes.Count(raw, []byte{s.c.d.Repetition}) + 1
				c.add(RuleRepetition, CodeDataType, withField(loc(), n), "%s-%d (%s) does not repeat but has %d repetitions", def.ID, n, fd.Name, reps)
			}
			f := Value{raw: raw, c: s.c, present: true}
			// Repetitions are walked in one pass (no closure: this loop runs
			// for every field of every message).
			rest := f.raw
			for r := 1; ; r++ {
				part := rest
				j := bytes.IndexByte(rest, s.c.d.Repetition)
				if j >= 0 {
					part, rest = rest[:j], rest[j+1:]
				}
				if len(part) > 0 && !(len(part) == 2 && part[0] == '"' && part[1] == '"') {
					l := loc()
					l.Field, l.Repetition = n, r
					c.value(Value{raw: part, c: s.c, present: true, depth: depthRep}, fd, l, 0)
				}
				if j < 0 {
					break
				}
			}
		}
	}
}

// value checks a repetition (level 0), component (1) or subcomponent (2)
// against its definition.
func (c *check) value(v Value, fd *defs.Field, loc Location, level int) {
	if fd.Len > 0 && len(v.raw) > fd.Len && level == 0 {
		c.add(RuleLength, CodeValueTooLong, loc, "%s is %d characters long; version %s allows %d", loc, len(v.raw), c.ver.ID, fd.Len)
	}
	dt, ok := c.ver.DataType(fd.Type)
	if fd.Type == "TS" {
		// TS is a composite from 2.3 on, but only its first component
		// carries the time, and 2.3-2.4 define that component as ST.
		c.primitive(firstPart(v), "DTM", 0, loc)
		return
	}
	if !ok || dt.Primitive() || level == 2 {
		c.primitive(firstPart(v), fd.Type, fd.Table, loc)
		return
	}
	if fd.Table > 0 && (fd.Type == "CE" || fd.Type == "CWE" || fd.Type == "CNE") {
		c.coded(v, fd, loc, level)
	}
	sep, depth := v.c.d.Component, depthComp
	if level > 0 {
		sep, depth = v.c.d.Subcomponent, depthSub
	}
	ci := 0
	for rest := v.raw; ; ci++ {
		raw := rest
		j := bytes.IndexByte(rest, sep)
		if j >= 0 {
			raw, rest = rest[:j], rest[j+1:]
		}
		if ci < len(dt.Components) {
			c.component(Value{raw: raw, c: v.c, present: true, depth: depth}, &dt.Components[ci], loc, ci+1, level)
		}
		if j < 0 {
			ci++
			break
		}
	}
	for ; ci < len(dt.Components); ci++ {
		if cd := &dt.Components[ci]; cd.Min > 0 && cd.Max != 0 {
			l := loc
			if level == 0 {
				l.Component = ci + 1
			} else {
				l.Subcomponent = ci + 1
			}
			c.add(RuleRequiredComponent, CodeRequiredFieldMissing, l, "%s (%s) is required when %s is valued", l, cd.Name, loc)
		}
	}
}

// coded checks a CE/CWE/CNE value against the field's HL7 table: as an
// error when its coding system (component 3) names that table, as a
// warning when it names none; codes of other coding systems (LOINC, SNOMED,
// local) are not the table's business.
func (c *check) coded(v Value, fd *defs.Field, loc Location, level int) {
	t, found := defs.LookupTable(fd.Table)
	if !found || len(t.Codes) == 0 {
		return
	}
	sep := v.c.d.Component
	if level > 0 {
		sep = v.c.d.Subcomponent
	}
	code, rest, _ := bytes.Cut(v.raw, []byte{sep})
	_, rest, _ = bytes.Cut(rest, []byte{sep})
	system, _, _ := bytes.Cut(rest, []byte{sep})
	if len(code) == 0 || t.HasBytes(code) {
		return
	}
	l := loc
	if level == 0 {
		l.Component = 1
	} else {
		l.Subcomponent = 1
	}
	switch {
	case len(system) == 0:
		c.add(RuleTableCoded, CodeTableValue, l, "%s has no coding system and is not a code of HL7 table %04d (%s)", l, fd.Table, t.Name)
	case len(system) == 7 && bytes.HasPrefix(system, []byte("HL7")) && isDigits(system[3:]) && num(system[3:]) == fd.Table:
		c.add(RuleTable, CodeTableValue, l, "%s is not a code of HL7 table %04d (%s)", l, fd.Table, t.Name)
	}
}

// enabled reports whether a rule would report anything, so costly checks of
// rules that are off by default can be skipped.
func (c *check) enabled(rule string) bool {
	sev := defaultSeverity[rule]
	if c.p != nil {
		if s, ok := c.p.Severity[rule]; ok {
			sev = s
		}
	}
	return sev != severityIgnore
}

// component checks component (level 0) or subcomponent (level 1) number i
// of the value at loc.
func (c *check) component(cv Value, cd *defs.Field, loc Location, i, level int) {
	l := loc
	if level == 0 {
		l.Component = i
	} else {
		l.Subcomponent = i
	}
	switch {
	case cd.Max == 0 || cv.IsNull():
	case cv.IsEmpty():
		if cd.Min > 0 {
			c.add(RuleRequiredComponent, CodeRequiredFieldMissing, l, "%s (%s) is required when %s is valued", l, cd.Name, loc)
		}
	default:
		c.value(cv, cd, l, level+1)
	}
}

// firstPart returns the value up to its first component or subcomponent
// separator: a primitive with extra components is read by its first one, as
// receivers do.
func firstPart(v Value) []byte {
	raw := v.raw
	if v.c == nil {
		return raw
	}
	for i, ch := range raw {
		if ch == v.c.d.Component || ch == v.c.d.Subcomponent || ch == v.c.d.Repetition {
			return raw[:i]
		}
	}
	return raw
}

func (c *check) primitive(raw []byte, typ string, table int, loc Location) {
	if len(raw) == 0 || (len(raw) == 2 && raw[0] == '"' && raw[1] == '"') {
		return
	}
	var ok bool
	var what string
	switch typ {
	case "NM":
		ok, what = isNumeric(raw), "a number"
	case "SI":
		ok, what = isDigits(raw), "a sequence ID (digits)"
	case "DT":
		ok, what = isDate(raw), "a date (YYYY[MM[DD]])"
	case "TM":
		ok, what = isTime(raw), "a time (HH[MM[SS[.S...]]][+/-ZZZZ])"
	case "DTM", "TS":
		ok, what = isDateTime(raw), "a date/time (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ])"
	case "IS":
		if t, found := defs.LookupTable(table); found && len(t.Codes) > 0 && !t.HasBytes(raw) && c.enabled(RuleTableUserDefined) {
			c.add(RuleTableUserDefined, CodeTableValue, loc, "%s is not one of the values HL7 suggests for user-defined table %04d (%s)", loc, table, t.Name)
		}
		return
	case "ID":
		if table == 396 && codingSystemPattern(raw) {
			return
		}
		if t, found := defs.LookupTable(table); found && len(t.Codes) > 0 && !t.HasBytes(raw) {
			c.add(RuleTable, CodeTableValue, loc, "%s is not a code of HL7 table %04d (%s)", loc, table, t.Name)
		}
		return
	default:
		return
	}
	if !ok {
		c.add(RuleDataType, CodeDataType, loc, "%s is not %s", loc, what)
	}
}

func (c *check) escapes() {
	d := c.m.c.d
	for i, s := range c.m.segs {
		if bytes.IndexByte(s.raw, d.Escape) < 0 {
			continue
		}
		for n := 1; n <= s.NumFields(); n++ {
			f := s.Field(n)
			if f.depth == depthLiteral || bytes.IndexByte(f.raw, d.Escape) < 0 {
				continue
			}
			if bad := MalformedEscape(f.raw, d); bad != "" {
				c.add(RuleEscape, CodeDataType, Location{Segment: s.Name(), Occurrence: c.occurrence(i), Field: n},
					"malformed escape sequence kept as text")
			}
		}
	}
}

// codingSystemPattern accepts the coding system names table 0396 defines
// by pattern rather than by listing them: HL7nnnn for HL7 tables, 99zzz for
// local ones, L for local.
func codingSystemPattern(b []byte) bool {
	switch {
	case len(b) == 7 && bytes.HasPrefix(b, []byte("HL7")) && isDigits(b[3:]):
		return true
	case len(b) > 2 && b[0] == '9' && b[1] == '9':
		return true
	case len(b) == 1 && b[0] == 'L':
		return true
	}
	return false
}

func isDigits(b []byte) bool {
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isNumeric(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	digits, dot := 0, false
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			digits++
		case ch == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

func num(b []byte) int {
	n := 0
	for _, ch := range b {
		n = n*10 + int(ch-'0')
	}
	return n
}
