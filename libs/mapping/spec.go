package mapping

// Rule is one rule as the configuration writes it: a name, an optional
// condition and exactly one operation.
type Rule struct {
	// Name identifies the rule in dead letters, decisions and metrics;
	// required, unique within its rule set.
	Name string `yaml:"name"`
	// When is a CEL bool expression; the operation runs only when it is
	// true. Empty: always.
	When string `yaml:"when"`

	Set           *SetOp        `yaml:"set"`
	Copy          *CopyOp       `yaml:"copy"`
	Move          *CopyOp       `yaml:"move"`
	Clear         *PathOp       `yaml:"clear"`
	DeleteSegment *SegmentOp    `yaml:"delete_segment"`
	AddSegment    *AddSegmentOp `yaml:"add_segment"`
	Map           *MapOp        `yaml:"map"`
	Normalize     *NormalizeOp  `yaml:"normalize"`
	Version       *VersionOp    `yaml:"version"`
	Split         *SplitOp      `yaml:"split"`
	Filter        *FilterOp     `yaml:"filter"`
}

// SetOp stores a value at a path: the literal Value, or the string the
// CEL expression Expr computes (exactly one of them).
type SetOp struct {
	Path  string  `yaml:"path"`
	Value *string `yaml:"value"`
	Expr  string  `yaml:"expr"`
}

// CopyOp copies (or, as move, copies then clears) the value at From to
// To. With a wildcard in From, To must have one in the same place.
type CopyOp struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// PathOp addresses the value an operation works on (clear).
type PathOp struct {
	Path string `yaml:"path"`
}

// SegmentOp names segments to delete: NTE (every NTE), NTE[2] (the
// second), ZPI[*].
type SegmentOp struct {
	Segment string `yaml:"segment"`
}

// AddSegmentOp adds a segment written in ER7 with the standard
// delimiters (ZHB|1|NATIONAL^LAB), re-encoded in the message's own.
type AddSegmentOp struct {
	Segment string `yaml:"segment"`
	// After names the segment (NAME or NAME[n]; the last occurrence when
	// no index) the new one follows; empty: at the end of the message.
	After string `yaml:"after"`
}

// MapOp maps the value at Path through a code table, writing the
// standard code there (and, when set, the table's system and display at
// SystemPath and DisplayPath, aligned with Path's wildcard).
type MapOp struct {
	Path        string `yaml:"path"`
	Table       string `yaml:"table"`
	SystemPath  string `yaml:"system_path"`
	DisplayPath string `yaml:"display_path"`
	// Unmapped is what a value the table lacks does: pass (left as it
	// is, the default), flag (left, with a validation issue on the
	// record, the code in its text) or reject (the message is
	// dead-lettered; the code is in the dead-letter record's reason only,
	// never in logs, spans or decisions: see RuleError.Detail).
	Unmapped string `yaml:"unmapped"`
}

// Unmapped policies of a MapOp.
const (
	UnmappedPass   = "pass"
	UnmappedFlag   = "flag"
	UnmappedReject = "reject"
)

// NormalizeOp rewrites the date/times at Path: To "utc" converts each
// to UTC with an explicit +0000 (a value without an offset is left as it
// is and flagged); Precision (year, month, day, hour, minute, second)
// truncates to that precision. At least one of them.
type NormalizeOp struct {
	Path      string `yaml:"path"`
	To        string `yaml:"to"`
	Precision string `yaml:"precision"`
}

// VersionOp changes the message's HL7 version (MSH-12) to To where the
// standard allows it (see version.go).
type VersionOp struct {
	To string `yaml:"to"`
}

// SplitOp splits a message into one message per occurrence of the group
// that Segment starts (OBR: one ORU^R01 per order, the ORC before each
// OBR included); the segments before the first group are copied into
// every child. Each child gets MSH-10 <control ID>-<n> and, in the
// pipeline, the message ID <message ID>-<n>. Only in interfaces[].rules.
type SplitOp struct {
	Segment string `yaml:"segment"`
}

// FilterOp drops the message (for a destination's rules: that
// destination's copy) with Reason, when the rule's When holds.
type FilterOp struct {
	Reason string `yaml:"reason"`
}

// TableSpec declares a code table in the configuration's tables section.
type TableSpec struct {
	// Name is how rules and CEL refer to it (tables.<name>); [a-z0-9_]+.
	Name string `yaml:"name"`
	// File is a .csv or .yaml file, relative to the configuration file.
	File string `yaml:"file"`
	// Version is the table's version (optional). A map rule over the
	// table names it in the text of its flags (the transformed record's
	// issues: `code "XYZ" is not in table lab_codes (version 2026-12)`)
	// and of its unmapped: reject failures (the dead letter's reason and
	// the route decision's); a code it mapped is not stamped.
	Version string `yaml:"version"`
}
