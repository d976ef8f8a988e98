// Package mapping is the exchange's rule language: declarative rule sets
// an interface analyst writes in the configuration (interfaces[].rules,
// destinations[].rules) and applies to a parsed HL7 v2 message, addressed
// with the path grammar of libs/hl7v2 (PID-3[1].1, OBX[*]-5).
//
// A rule has a name, an optional CEL condition (when) and exactly one
// operation: set, copy, move, clear, delete_segment, add_segment, map
// (through a code table), normalize (dates and times), version, split or
// filter. Conditions and computed values are CEL expressions
// (github.com/google/cel-go) over the message, the interface, the
// receipt and the code tables; they are compiled and type-checked when the
// configuration loads (Compile), and a bad one is an error naming the key
// and the column. Evaluation is cost-limited, so no rule can loop or
// allocate without bound.
//
// Code tables (tables.go) are versioned CSV or YAML files shipped with the
// configuration: local code to standard code, system and display, loaded
// once into a hash map.
//
// Files: spec.go (the YAML model), ruleset.go (Compile, Apply, Result,
// RuleError), env.go (the CEL environment: variables, functions, path
// checks, cost limits), tables.go (code tables), ops_fields.go (set,
// copy, move, clear), ops_segments.go (delete_segment, add_segment),
// ops_map.go (map), normalize.go, version.go, split.go and filter.go.
// DESIGN.md says how rules compile, what an evaluation holds, and why
// some programs skip cel-go's cost tracking.
package mapping
