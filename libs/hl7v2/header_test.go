package hl7v2

import (
	"errors"
	"strings"
	"testing"
)

func TestDelimiterErrorsNamePositions(t *testing.T) {
	tests := []struct {
		name, in, want string
		loc            string
	}{
		{"too short", "MSH|^|A|B\r", "MSH-2 must be 4 or 5 characters (found 1 before the next field separator)", "MSH[1]-2"},
		{"too long", "MSH|^~\\&#!|A|B\r", "MSH-2 must be 4 or 5 characters (found 6 before the next field separator)", "MSH[1]-2"},
		{"duplicate", "MSH|^^\\&|A|B\r", "MSH-2 character 2 repeats character 1: one character cannot stand for two delimiters", "MSH[1]-2"},
		{"field separator reused", "MSH|^~\\||A|B\r", "MSH-2 must be 4 or 5 characters (found 3 before the next field separator)", "MSH[1]-2"},
		{"alphanumeric", "MSH|^~\\A|A|B\r", "MSH-2 character 4 cannot be a delimiter (a letter, digit, space or line break)", "MSH[1]-2"},
		{"field separator", "MSH ^~\\& A\r", "MSH-1 field separator cannot be a delimiter (a letter, digit, space or line break)", "MSH[1]-1"},
		{"segment too short", "MSH", "MSH has no field separator", "MSH[1]-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, ErrDelimiters) {
				t.Fatalf("err = %v", err)
			}
			if got := strings.Count(err.Error(), "invalid delimiters"); got != 1 {
				t.Errorf("%q names the sentinel %d times, want once", err, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %q does not say %q", err, tt.want)
			}
			is := ParseIssue(err)
			if is.Code != CodeDataType || is.Severity != SeverityError || is.Location.String() != tt.loc || is.Text != err.Error() {
				t.Errorf("ParseIssue = %+v, want code 102 at %s", is, tt.loc)
			}
		})
	}
}

func TestParseIssue(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code ErrorCode
		loc  string
	}{
		{"no MSH", "PID|1\r", CodeSegmentSequence, ""},
		{"bad segment name", mshLine + "\rPID|1\rpid|1\r", CodeSegmentSequence, ""},
		{"second MSH", mshLine + "\rPID|1\r" + mshLine + "\r", CodeSegmentSequence, "MSH[2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			is := ParseIssue(err)
			if is.Code != tt.code || is.Location.String() != tt.loc || is.Text != err.Error() || is.Rule != RuleParse {
				t.Errorf("ParseIssue(%v) = %+v", err, is)
			}
		})
	}
	if is := ParseIssue(errors.New("something else")); is.Code != CodeInternalError {
		t.Errorf("other error: %+v", is)
	}
	// The location comes before the detail, so a text cut to MSA-3's 80
	// characters still says where the problem is.
	_, err := Parse([]byte(mshLine + "\rPID|1\rpid|1\r"))
	if !strings.HasPrefix(err.Error(), "hl7v2: invalid segment name (segment 3, byte ") {
		t.Errorf("err = %q", err)
	}
}

func TestPeekHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		want HeaderPeek
	}{
		{"sound", "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01^ADT_A01|CTL1|P|2.5|||AL|NE\rPID|1\r",
			true, HeaderPeek{FieldSeparator: '|', MessageType: "ADT^A01^ADT_A01", ControlID: "CTL1", ProcessingID: "P", Version: "2.5", AcceptAck: "AL", ApplicationAck: "NE"}},
		{"duplicate delimiters", "MSH|^^\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|CTL2|P|2.5\rPID|1\r",
			true, HeaderPeek{FieldSeparator: '|', MessageType: "ADT^A01", ControlID: "CTL2", ProcessingID: "P", Version: "2.5"}},
		{"MSH-2 of one character", "MSH|^|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|CTL3|P|2.3\r",
			true, HeaderPeek{FieldSeparator: '|', MessageType: "ADT^A01", ControlID: "CTL3", ProcessingID: "P", Version: "2.3"}},
		{"LF terminated, BOM", "\uFEFFMSH|^~\\&#!|A|B|C|D|1||ORU^R01|CTL4|T|2.7\nPID|1\n",
			true, HeaderPeek{FieldSeparator: '|', MessageType: "ORU^R01", ControlID: "CTL4", ProcessingID: "T", Version: "2.7"}},
		{"truncated header", "MSH|^~\\&|A\r", true, HeaderPeek{FieldSeparator: '|'}},
		{"blank lines first", "\r\n\rMSH|^~|A|B|C|D|1||ADT^A01|CTL5|P|2.5\r", true, HeaderPeek{FieldSeparator: '|', MessageType: "ADT^A01", ControlID: "CTL5", ProcessingID: "P", Version: "2.5"}},
		{"field separator unusable", "MSHA^~\\&AHISAGENHOSP\r", false, HeaderPeek{}},
		{"field separator is a space", "MSH ^~\\& A B\r", false, HeaderPeek{}},
		{"no field separator", "MSH\r", false, HeaderPeek{}},
		{"not MSH", "PID|1||X\r", false, HeaderPeek{}},
		{"empty", "", false, HeaderPeek{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := PeekHeader([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("PeekHeader = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRequiredHeaderIssues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"complete", mshLine, nil},
		{"probe 1.2: MSH|^~\\&|A", `MSH|^~\&|A`, []string{"E required MSH[1]-9 101", "E required MSH[1]-10 101", "E required MSH[1]-12 101"}},
		{"probe 1.19: empty MSH-10", strings.Replace(mshLine, "|X1|", "||", 1), []string{"E required MSH[1]-10 101"}},
		{"code missing, event present", strings.Replace(mshLine, "ADT^A01", "^A01", 1), []string{"E required MSH[1]-9.1 101"}},
		{"2.5 does not require the event", strings.Replace(mshLine, "ADT^A01", "ADT", 1), nil},
		{"2.6 requires the event", strings.Replace(strings.Replace(mshLine, "ADT^A01", "ADT", 1), "|2.5", "|2.6", 1), []string{"E required MSH[1]-9.2 101"}},
		{"unknown version: event not checked", strings.Replace(strings.Replace(mshLine, "ADT^A01", "ADT", 1), "|2.5", "|9.9", 1), nil},
		{"explicit null is not a value", strings.Replace(mshLine, "|X1|", `|""|`, 1), []string{"E required MSH[1]-10 101"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.in))
			var got []string
			for _, is := range RequiredHeaderIssues(m) {
				got = append(got, string(is.Severity)+" "+is.Rule+" "+is.Location.String()+" "+itoa0(int(is.Code)))
				if is.Text == "" {
					t.Errorf("issue without text: %+v", is)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("issues:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// Validate reports the same findings, each once.
			r := Validate(m)
			for _, w := range tt.want {
				n := 0
				for _, k := range issueKeys(r) {
					if k == w {
						n++
					}
				}
				if n != 1 {
					t.Errorf("Validate reports %q %d times, want once: %v", w, n, issueKeys(r))
				}
			}
		})
	}
}

func TestStrayMSA(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // location, "" for none
	}{
		{"probe 1.17b: ADT^A01 with an MSA", "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||ADT^A01^ADT_A01|MSA1|P|2.5\rEVN|A01|20261201\rMSA|AA|X\rPID|1||55555^^^GENHOSP^MR||DOE^JANE", "MSA[1]"},
		{"an ACK has its MSA", "MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5\rMSA|AA|X", ""},
		{"no MSA", mshLine + "\rPID|1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is, ok := StrayMSA(mustParse(t, []byte(tt.in)))
			if ok != (tt.want != "") || ok && (is.Location.String() != tt.want || is.Code != CodeSegmentSequence || is.Severity != SeverityError || is.Text == "") {
				t.Errorf("StrayMSA = %+v, %v; want location %q", is, ok, tt.want)
			}
		})
	}
}
