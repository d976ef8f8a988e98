// Package schemas embeds the Avro schemas that are the contract between the
// stages: one .avsc per record kind, registered under <topic>-value.
package schemas

import "embed"

//go:embed *.avsc
var files embed.FS

// Names of the schema files, without the .avsc suffix.
const (
	Raw         = "raw"
	Parsed      = "parsed"
	Transformed = "transformed"
	Out         = "out"
	DeadLetter  = "dlq"
	Delivery    = "delivery"
	Decisions   = "decisions"
	Audit       = "audit"
	Control     = "control"
	Replay      = "replay"
)

// All lists every schema name.
var All = []string{Raw, Parsed, Transformed, Out, DeadLetter, Delivery, Decisions, Audit, Control, Replay}

// Get returns the text of schema name (e.g. Raw).
func Get(name string) (string, error) {
	b, err := files.ReadFile(name + ".avsc")
	return string(b), err
}
