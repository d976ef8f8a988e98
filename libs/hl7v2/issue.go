package hl7v2

import (
	"fmt"
	"strings"
)

// Severity of an Issue, as HL7 table 0516 spells it in ERR-4.
type Severity string

// Severities.
const (
	SeverityError   Severity = "E"
	SeverityWarning Severity = "W"
	SeverityInfo    Severity = "I"
)

// ErrorCode is an HL7 table 0357 message error condition code.
type ErrorCode int

// Table 0357 codes.
const (
	CodeAccepted                ErrorCode = 0
	CodeSegmentSequence         ErrorCode = 100
	CodeRequiredFieldMissing    ErrorCode = 101
	CodeDataType                ErrorCode = 102
	CodeTableValue              ErrorCode = 103
	CodeValueTooLong            ErrorCode = 104
	CodeUnsupportedMessageType  ErrorCode = 200
	CodeUnsupportedEvent        ErrorCode = 201
	CodeUnsupportedProcessingID ErrorCode = 202
	CodeUnsupportedVersion      ErrorCode = 203
	CodeUnknownKey              ErrorCode = 204
	CodeDuplicateKey            ErrorCode = 205
	CodeRecordLocked            ErrorCode = 206
	CodeInternalError           ErrorCode = 207
)

var codeText = map[ErrorCode]string{
	CodeAccepted:                "Message accepted",
	CodeSegmentSequence:         "Segment sequence error",
	CodeRequiredFieldMissing:    "Required field missing",
	CodeDataType:                "Data type error",
	CodeTableValue:              "Table value not found",
	CodeValueTooLong:            "Value too long",
	CodeUnsupportedMessageType:  "Unsupported message type",
	CodeUnsupportedEvent:        "Unsupported event code",
	CodeUnsupportedProcessingID: "Unsupported processing id",
	CodeUnsupportedVersion:      "Unsupported version id",
	CodeUnknownKey:              "Unknown key identifier",
	CodeDuplicateKey:            "Duplicate key identifier",
	CodeRecordLocked:            "Application record locked",
	CodeInternalError:           "Application internal error",
}

// Text returns the table 0357 description of the code.
func (c ErrorCode) Text() string {
	if t, ok := codeText[c]; ok {
		return t
	}
	return "Unknown error"
}

// Location points at the part of a message an Issue is about. Zero fields
// mean "not that deep" (a segment-level issue has no Field).
type Location struct {
	Segment      string `json:"segment,omitempty"`
	Occurrence   int    `json:"occurrence,omitempty"`
	Field        int    `json:"field,omitempty"`
	Repetition   int    `json:"repetition,omitempty"`
	Component    int    `json:"component,omitempty"`
	Subcomponent int    `json:"subcomponent,omitempty"`
}

// String formats the location in path grammar, e.g. PID[1]-3[2].1.
func (l Location) String() string {
	if l.Segment == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.Occurrence > 0 {
		fmt.Fprintf(&b, "[%d]", l.Occurrence)
	}
	if l.Field > 0 {
		fmt.Fprintf(&b, "-%d", l.Field)
		if l.Repetition > 0 {
			fmt.Fprintf(&b, "[%d]", l.Repetition)
		}
		if l.Component > 0 {
			fmt.Fprintf(&b, ".%d", l.Component)
			if l.Subcomponent > 0 {
				fmt.Fprintf(&b, ".%d", l.Subcomponent)
			}
		}
	}
	return b.String()
}

// Issue is one finding about a message: from validation, or put into an
// ACK's ERR segments. Text never quotes field content, so an Issue may be
// logged and dead-lettered without carrying PHI.
type Issue struct {
	Severity Severity  `json:"severity"`
	Code     ErrorCode `json:"code"`
	Location Location  `json:"location"`
	// Rule names the check that raised the issue (e.g. "required",
	// "table", "profile.forbidden-segment"), for filtering and statistics.
	Rule string `json:"rule"`
	Text string `json:"text"`
}

func (i Issue) String() string {
	loc := i.Location.String()
	if loc != "" {
		loc += ": "
	}
	return fmt.Sprintf("%s %d %s%s", i.Severity, i.Code, loc, i.Text)
}
