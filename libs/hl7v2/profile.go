package hl7v2

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// severityIgnore switches a rule off in a profile.
const severityIgnore Severity = "ignore"

// Profile is a per-interface conformance profile: what this interface's
// messages must hold beyond the standard, and how strict each rule is.
// See docs/analyst-guide.md for the file format; a minimal example:
//
//	name: natlab-results
//	message_types: ["ORU^R01"]
//	versions: ["2.5.1"]
//	required: ["PID-3", "PID-8", "OBX-3.1"]
//	values:
//	  PID-8: [F, M, O, U]
//	forbidden_segments: [NK1]
//	severity:
//	  length: error
//	  structure.unexpected-segment: ignore
type Profile struct {
	Name string `yaml:"name"`
	// MessageTypes lists accepted types as CODE^EVENT, or CODE for any
	// event of that code. Empty accepts every type.
	MessageTypes []string `yaml:"message_types"`
	// Versions lists accepted MSH-12 values. Empty accepts 2.1-2.8.x.
	Versions []string `yaml:"versions"`
	// Required lists paths that must be valued in every occurrence of their
	// segment (or in the occurrence the path names).
	Required []string `yaml:"required"`
	// Values maps a path to the values it may hold when valued.
	Values map[string][]string `yaml:"values"`
	// ForbiddenSegments lists segment IDs the interface must not send.
	ForbiddenSegments []string `yaml:"forbidden_segments"`
	// Severity overrides the severity of a rule: error, warning, info or
	// ignore.
	Severity map[string]Severity `yaml:"severity"`

	required []Path
	values   []valueRule
}

type valueRule struct {
	path    Path
	allowed map[string]bool
}

// LoadProfile reads and validates a profile file.
func LoadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, nil
}

// ParseProfile parses and validates a profile. Unknown keys are errors, so
// a misspelt rule cannot silently do nothing; every error names its key.
func ParseProfile(data []byte) (*Profile, error) {
	p := &Profile{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("parsing profile: %w", err)
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Profile) compile() error {
	var errs []error
	for i, mt := range p.MessageTypes {
		code, ev, _ := strings.Cut(mt, "^")
		if len(code) != 3 || (ev != "" && len(ev) != 3) {
			errs = append(errs, fmt.Errorf("message_types[%d]: %q is not CODE or CODE^EVENT", i, mt))
		}
	}
	for i, s := range p.Required {
		path, err := ParsePath(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("required[%d]: %w", i, err))
			continue
		}
		p.required = append(p.required, path)
	}
	keys := make([]string, 0, len(p.Values))
	for k := range p.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path, err := ParsePath(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("values.%s: %w", k, err))
			continue
		}
		if len(p.Values[k]) == 0 {
			errs = append(errs, fmt.Errorf("values.%s: list at least one allowed value", k))
			continue
		}
		r := valueRule{path: path, allowed: map[string]bool{}}
		for _, v := range p.Values[k] {
			r.allowed[v] = true
		}
		p.values = append(p.values, r)
	}
	for i, s := range p.ForbiddenSegments {
		if !validSegmentName([]byte(s)) {
			errs = append(errs, fmt.Errorf("forbidden_segments[%d]: %q is not a segment ID", i, s))
		}
	}
	for rule, sev := range p.Severity {
		if _, ok := defaultSeverity[rule]; !ok {
			errs = append(errs, fmt.Errorf("severity.%s: unknown rule", rule))
		}
		switch sev {
		case "error":
			p.Severity[rule] = SeverityError
		case "warning":
			p.Severity[rule] = SeverityWarning
		case "info":
			p.Severity[rule] = SeverityInfo
		case "ignore":
			p.Severity[rule] = severityIgnore
		default:
			errs = append(errs, fmt.Errorf("severity.%s: %q is not error, warning, info or ignore", rule, sev))
		}
	}
	return errors.Join(errs...)
}

func (c *check) profile(code, event string) {
	p := c.p
	msh := Location{Segment: "MSH", Occurrence: 1}
	if len(p.MessageTypes) > 0 {
		ok := false
		for _, mt := range p.MessageTypes {
			if mt == code || mt == code+"^"+event {
				ok = true
				break
			}
		}
		if !ok {
			c.add(RuleProfileMessageType, CodeUnsupportedMessageType, withField(msh, 9), "profile %s does not accept this message type", p.Name)
		}
	}
	if len(p.Versions) > 0 {
		ok := false
		for _, v := range p.Versions {
			if v == c.m.Version() {
				ok = true
			}
		}
		if !ok {
			c.add(RuleProfileVersion, CodeUnsupportedVersion, withField(msh, 12), "profile %s does not accept this version", p.Name)
		}
	}
	for _, seg := range p.ForbiddenSegments {
		for i := range c.m.segs {
			if c.m.segs[i].Is(seg) {
				c.add(RuleProfileForbidden, CodeSegmentSequence, Location{Segment: seg, Occurrence: c.occurrence(i)}, "profile %s forbids this segment", p.Name)
			}
		}
	}
	for _, path := range p.required {
		c.eachOccurrence(path, func(v Value, loc Location) {
			if v.IsEmpty() {
				c.add(RuleProfileRequired, CodeRequiredFieldMissing, loc, "%s is required by profile %s", loc, p.Name)
			}
		})
	}
	for _, r := range p.values {
		c.eachOccurrence(r.path, func(v Value, loc Location) {
			if !v.IsEmpty() && !v.IsNull() && !r.allowed[v.String()] {
				c.add(RuleProfileValues, CodeTableValue, loc, "%s holds a value profile %s does not allow", loc, p.Name)
			}
		})
	}
}

// eachOccurrence calls f with the value path addresses in every occurrence
// of its segment, or in the one occurrence it names (also when absent).
func (c *check) eachOccurrence(path Path, f func(Value, Location)) {
	loc := func(occ int) Location {
		return Location{Segment: path.Segment, Occurrence: occ, Field: path.Field, Repetition: path.Repetition,
			Component: path.Component, Subcomponent: path.Subcomponent}
	}
	if path.Occurrence > 0 {
		f(c.m.Value(path), loc(path.Occurrence))
		return
	}
	n := c.m.Count(path.Segment)
	for occ := 1; occ <= n; occ++ {
		p := path
		p.Occurrence = occ
		f(c.m.Value(p), loc(occ))
	}
}
