package route

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/mapping"
)

// Rule sends the messages it matches to its destinations. Empty match lists
// match everything.
type Rule struct {
	Name string `yaml:"name"`
	// MessageTypes lists CODE or CODE^EVENT (ADT, ORU^R01).
	MessageTypes []string `yaml:"message_types"`
	// SendingFacilities lists MSH-4.1 values.
	SendingFacilities []string `yaml:"sending_facilities"`
	Destinations      []string `yaml:"destinations"`
	// When is a CEL bool predicate over the transformed message (see
	// libs/mapping Vars); empty matches everything the lists above let
	// through.
	When string `yaml:"when"`
	// Default makes this the catch-all: it matches only a message no
	// other route matched. Without one, routes are default-deny. A default
	// route takes no conditions (lists, when): it is what is left.
	Default bool `yaml:"default"`
}

// Rules are the compiled routes and destination rules, swapped whole on
// reload (Service.SetRules). Build them with Compile; a Rules is never
// changed after, so records in flight can keep using an old one.
type Rules struct {
	// Version is the configuration version written as config_version
	// (set by the caller after Compile).
	Version string
	// Destinations holds each destination's outbound rule set (its
	// destinations[].rules), by destination name.
	Destinations map[string]*mapping.RuleSet
	routes       []compiledRoute
	// def is the index of the default route in routes, -1 without one.
	def int
	// parse says whether Handle needs the message parsed: a route has a
	// when or a routed destination has rules. Plain type and facility
	// routes read only the record's header.
	parse bool
}

// compiledRoute is a Rule with its when compiled and its reasons for not
// matching precomputed (they are the same for every message but the
// value tested).
type compiledRoute struct {
	Rule
	when *mapping.Program
	// typesList and facilitiesList are the lists as a reason quotes them.
	typesList, facilitiesList string
}

// Compile compiles routes (at key "routes") against env, with the
// destinations' rule sets; known lists the configured destinations.
// Every problem at once, each naming its key (routes[2].when: column 7: ...).
// A nil env is an environment without code tables, made only when a route
// has a when. The caller sets Version.
func Compile(routes []Rule, env *mapping.Env, dests map[string]*mapping.RuleSet, known map[string]bool) (*Rules, error) {
	errs := check(routes, known)
	rs := &Rules{Destinations: dests, def: -1}
	for i, r := range routes {
		cr := compiledRoute{Rule: r, typesList: "[" + strings.Join(r.MessageTypes, ", ") + "]",
			facilitiesList: "[" + strings.Join(r.SendingFacilities, ", ") + "]"}
		if r.Default && rs.def < 0 {
			rs.def = i
		}
		if r.When != "" {
			if env == nil {
				var err error
				if env, err = mapping.NewEnv(nil); err != nil {
					return nil, fmt.Errorf("routes: CEL environment: %w", err)
				}
			}
			p, err := env.CompileBool(fmt.Sprintf("routes[%d].when", i), r.When)
			if err != nil {
				errs = append(errs, err)
			}
			cr.when = p
			rs.parse = true
		}
		rs.routes = append(rs.routes, cr)
	}
	for _, d := range rs.Routed() {
		if dests[d].Len() > 0 {
			rs.parse = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// Validate checks routes as Compile does but for their when expressions
// (which need the configuration's CEL environment): names, destinations
// (known lists the configured ones), message types, at most one default.
// For a caller that cannot build the environment (a table that does not
// load) and still reports the routes' own problems.
func Validate(routes []Rule, known map[string]bool) error {
	return errors.Join(check(routes, known)...)
}

// check returns every problem with routes but their when, each naming its
// key.
func check(routes []Rule, known map[string]bool) []error {
	var errs []error
	names := map[string]bool{}
	def := -1
	for i, r := range routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", key, r.Name))
		}
		names[r.Name] = true
		if len(r.Destinations) == 0 {
			errs = append(errs, fmt.Errorf("%s.destinations: at least one is required", key))
		}
		seen := map[string]bool{}
		for j, d := range r.Destinations {
			switch {
			case !known[d]:
				errs = append(errs, fmt.Errorf("%s.destinations[%d]: %q is not a configured destination", key, j, d))
			case seen[d]:
				errs = append(errs, fmt.Errorf("%s.destinations[%d]: %q is listed twice", key, j, d))
			}
			seen[d] = true
		}
		for j, mt := range r.MessageTypes {
			code, ev, _ := strings.Cut(mt, "^")
			if len(code) != 3 || (ev != "" && len(ev) != 3) {
				errs = append(errs, fmt.Errorf("%s.message_types[%d]: %q is not CODE or CODE^EVENT", key, j, mt))
			}
		}
		if r.Default {
			if def >= 0 {
				errs = append(errs, fmt.Errorf("%s.default: routes[%d] is the default already; at most one route is", key, def))
			} else {
				def = i
			}
			if len(r.MessageTypes) > 0 || len(r.SendingFacilities) > 0 || r.When != "" {
				errs = append(errs, fmt.Errorf("%s.default: the default route takes no message_types, sending_facilities or when: it matches what no other route matched", key))
			}
		}
	}
	return errs
}

// Routed returns every destination a route names, sorted: the out topics
// these rules may write.
func (r *Rules) Routed() []string {
	if r == nil {
		return nil
	}
	set := map[string]bool{}
	for _, rt := range r.routes {
		for _, d := range rt.Destinations {
			set[d] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Len returns the number of routes.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.routes)
}

// mismatch says why the route's lists do not let h through, "" when they
// do. The reasons quote the message type and facility code (routing
// metadata, not PHI).
func (r *compiledRoute) mismatch(h *canonical.Header) string {
	if len(r.MessageTypes) > 0 {
		ok := false
		for _, mt := range r.MessageTypes {
			if code, ev, has := strings.Cut(mt, "^"); code == h.MessageCode && (!has || ev == h.TriggerEvent) {
				ok = true
				break
			}
		}
		if !ok {
			return "message type " + canonical.MessageTypeOf(*h) + " is not in " + r.typesList
		}
	}
	if len(r.SendingFacilities) > 0 {
		fac, _, _ := strings.Cut(h.SendingFacility, "^")
		for _, f := range r.SendingFacilities {
			if f == fac {
				return ""
			}
		}
		return "sending facility " + fac + " is not in " + r.facilitiesList
	}
	return ""
}
