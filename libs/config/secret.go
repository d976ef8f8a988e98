// Package config holds configuration primitives shared by every section:
// today, Secret.
package config

import "encoding/json"

// Secret is a configuration value that must never be printed: passwords,
// tokens, keys. Every printed form (fmt, YAML, JSON, slog) is ********;
// Value returns the real value for the one place that needs it.
type Secret string

const redacted = "********"

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalYAML implements yaml.Marshaler (hl7bus config print).
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText implements encoding.TextMarshaler, which slog uses.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
