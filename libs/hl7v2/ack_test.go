package hl7v2

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var ackTime = time.Date(2024, 3, 1, 10, 15, 0, 0, time.FixedZone("WAT", 3600))

func TestBuildACK(t *testing.T) {
	issue := Issue{Severity: SeverityError, Code: CodeRequiredFieldMissing, Location: Location{Segment: "PID", Occurrence: 1, Field: 3}, Text: "PID-3 is required"}
	tests := []struct {
		name string
		in   string
		spec AckSpec
		want []string
	}{
		{
			name: "v2.5 AA",
			in:   "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ADT^A01^ADT_A01|MSG1|P|2.5\rPID|1",
			spec: AckSpec{Code: AckAccept, ControlID: "ACK1", Time: ackTime},
			want: []string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01^ACK|ACK1|P|2.5", "MSA|AA|MSG1"},
		},
		{
			name: "v2.3 AE with MSA-3 and ERR-1",
			in:   "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ADT^A04|MSG2|T|2.3\rPID|1",
			spec: AckSpec{Code: AckError, ControlID: "ACK2", Time: ackTime, Text: "validation failed", Issues: []Issue{issue}},
			want: []string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A04|ACK2|T|2.3",
				"MSA|AE|MSG2|validation failed", "ERR|PID^1^3^101&Required field missing&HL70357"},
		},
		{
			name: "v2.5.1 AE with ERR-2/3/4",
			in:   "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ORU^R01^ORU_R01|MSG3|P|2.5.1\rPID|1",
			spec: AckSpec{Code: AckError, ControlID: "ACK3", Time: ackTime, Issues: []Issue{issue,
				{Severity: SeverityWarning, Code: CodeTableValue, Location: Location{Segment: "PID", Occurrence: 1, Field: 8}, Text: "not in table 0001"}}},
			want: []string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^R01^ACK|ACK3|P|2.5.1",
				"MSA|AE|MSG3",
				"ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 is required",
				"ERR||PID^1^8|103^Table value not found^HL70357|W||||not in table 0001"},
		},
		{
			name: "v2.6 AR with text only",
			in:   "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ADT^A01|MSG4|P|2.6",
			spec: AckSpec{Code: AckReject, ControlID: "ACK4", Time: ackTime, Text: "unsupported"},
			want: []string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01^ACK|ACK4|P|2.6", "MSA|AR|MSG4",
				"ERR|||207^Application internal error^HL70357|E||||unsupported"},
		},
		{
			name: "enhanced CA keeps charset and delimiters",
			in:   "MSH!@#$%!HIS!GENHOSP!LIS!NATLAB!20240301!!ADT@A01!MSG5!P!2.5!!!AL!NE!!8859/1",
			spec: AckSpec{Code: AckCommitAccept, ControlID: "ACK5", Time: ackTime},
			want: []string{"MSH!@#$%!LIS!NATLAB!HIS!GENHOSP!20240301101500.000+0100!!ACK@A01@ACK!ACK5!P!2.5!!!!!!8859/1", "MSA!CA!MSG5"},
		},
		{
			name: "escapes text",
			in:   "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ADT^A01|MSG6|P|2.4",
			spec: AckSpec{Code: AckError, ControlID: "A|6", Time: ackTime, Text: "bad ^ value"},
			want: []string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01|A\\F\\6|P|2.4", "MSA|AE|MSG6|bad \\S\\ value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ack, err := BuildACK(mustParse(t, []byte(tt.in)), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(ack.Bytes()), strings.Join(tt.want, "\r")+"\r"; got != want {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
			parsed, err := ParseACK(ack.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Code != tt.spec.Code || !parsed.Matches(mustParse(t, []byte(tt.in)).ControlID()) {
				t.Errorf("ParseACK: %+v", parsed)
			}
			if len(parsed.Errors) != len(tt.spec.Issues) && !(len(tt.spec.Issues) == 0 && tt.spec.Text != "") {
				t.Errorf("ParseACK errors = %v", parsed.Errors)
			}
		})
	}
}

func TestNeverAckAnAck(t *testing.T) {
	for _, in := range []string{
		"MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5\rMSA|AA|X",
		"MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.3\rMSA|AA|X",
		"MSH|^~\\&|A|B|C|D|20240101||MCF|1|P|2.1\rMSA|AA|X",
	} {
		if _, err := BuildACK(mustParse(t, []byte(in)), AckSpec{Code: AckAccept}); !errors.Is(err, ErrAckForAck) {
			t.Errorf("%q: err = %v", in, err)
		}
	}
}

func TestBuildACKRejectsUnknownCode(t *testing.T) {
	if _, err := BuildACK(mustParse(t, msg(mshLine)), AckSpec{Code: "OK"}); err == nil {
		t.Fatal("want error")
	}
}

func TestAckPlan(t *testing.T) {
	tests := []struct {
		msh15, msh16                       string
		enhanced                           bool
		acceptOK, acceptBad, appOK, appBad bool
	}{
		{"", "", false, false, false, true, true},
		{"AL", "NE", true, true, true, false, false},
		{"NE", "AL", true, false, false, true, true},
		{"ER", "SU", true, false, true, true, false},
		{"SU", "ER", true, true, false, false, true},
		{"AL", "", true, true, true, true, true},
		{"al", "ne", true, true, true, false, false},
	}
	for _, tt := range tests {
		m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5|||"+tt.msh15+"|"+tt.msh16))
		p := PlanAck(m)
		got := []bool{p.Enhanced, p.WantAccept(true), p.WantAccept(false), p.WantApplication(true), p.WantApplication(false)}
		want := []bool{tt.enhanced, tt.acceptOK, tt.acceptBad, tt.appOK, tt.appBad}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("MSH-15=%q MSH-16=%q: got %v want %v", tt.msh15, tt.msh16, got, want)
				break
			}
		}
	}
}

func TestParseACKTolerance(t *testing.T) {
	tests := []struct {
		name, in, code, ctl string
		errs                []ErrorCode
	}{
		{"wrong version, reused control id", "MSH|^~\\&|B|B|A|A|20240101||ACK|SAME|P|9.9\rMSA|aa| MSG1 ", "AA", "MSG1", nil},
		{"old ERR-1", "MSH|^~\\&|B|B|A|A|20240101||ACK^A01|1|P|2.3\rMSA|AE|MSG1|bad\rERR|PID^1^3^101&x&HL70357~PID^1^5^102", "AE", "MSG1", []ErrorCode{101, 102}},
		{"new ERR-3", "MSH|^~\\&|B|B|A|A|20240101||ACK^A01^ACK|1|P|2.5\rMSA|AR|MSG1\rERR||PID^1^3|101^Required^HL70357|E||||missing", "AR", "MSG1", []ErrorCode{101}},
		{"LF terminated", "MSH|^~\\&|B|B|A|A|20240101||ACK|1|P|2.5\nMSA|CA|MSG1\n", "CA", "MSG1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseACK([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if a.Code != tt.code || !a.Matches(tt.ctl) || len(a.Errors) != len(tt.errs) {
				t.Fatalf("got %+v", a)
			}
			for i := range tt.errs {
				if a.Errors[i] != tt.errs[i] {
					t.Errorf("errors = %v", a.Errors)
				}
			}
		})
	}
	if _, err := ParseACK(msg(mshLine, "PID|1")); !errors.Is(err, ErrNotAck) {
		t.Errorf("no MSA: %v", err)
	}
	if _, err := ParseACK([]byte("garbage")); !errors.Is(err, ErrNoMSH) {
		t.Errorf("garbage: %v", err)
	}
}

func TestIsAckOnlyByMessageType(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|1|P|2.5\rMSA|AA|X", true},
		{"MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.3\rMSA|AA|X", true},
		{"MSH|^~\\&|A|B|C|D|20240101||ack|1|P|2.3\rMSA|AA|X", false},
		// MCF is v2.1's delayed acknowledgement: an acknowledgement by type.
		{"MSH|^~\\&|A|B|C|D|20240101||MCF|1|P|2.1\rMSA|AA|X", true},
		// Probe 1.17b: an ADT^A01 with a stray MSA is a message to answer
		// (with AR), not an acknowledgement to swallow.
		{"MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||ADT^A01^ADT_A01|MSA1|P|2.5\rEVN|A01|20261201\rMSA|AA|X\rPID|1||55555^^^GENHOSP^MR||DOE^JANE", false},
		{"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1", false},
		{"MSH|^~\\&|A|B|C|D|20240101||^A01|1|P|2.5\rMSA|AA|X", false},
	}
	for _, tt := range tests {
		m := mustParse(t, []byte(tt.in))
		if got := IsAck(m); got != tt.want {
			t.Errorf("IsAck(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if !tt.want {
			if _, err := BuildACK(m, AckSpec{Code: AckReject, ControlID: "A1"}); err != nil {
				t.Errorf("BuildACK(%q): %v", tt.in, err)
			}
		}
	}
}

// Before v2.5 ERR has no text field, so an AR or AE built from issues alone
// carries its explanation in MSA-3 (probe 1.22); from v2.5 on ERR-8 does.
func TestPre25RejectExplainsItself(t *testing.T) {
	data := []byte("MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20240301||ADT^A01|MSG7|P|2.3\rEVN|A01|20240301\rpid|1||99887766\r")
	_, perr := Parse(data)
	if perr == nil {
		t.Fatal("want a parse error")
	}
	msh := mustParse(t, data[:strings.IndexByte(string(data), '\r')])
	header := Issue{Severity: SeverityError, Code: CodeRequiredFieldMissing, Location: Location{Segment: "MSH", Occurrence: 1, Field: 10}, Rule: RuleRequired, Text: "MSH-10 message control ID is required"}
	tests := []struct {
		name    string
		version string
		spec    AckSpec
		want    []string
	}{
		{"2.3 parse error", "2.3", AckSpec{Code: AckReject, ControlID: "ACK7", Time: ackTime, Issues: []Issue{ParseIssue(perr)}},
			[]string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01|ACK7|P|2.3",
				"MSA|AR|MSG7|hl7v2: invalid segment name (segment 3, byte 78): a segment must start with a...",
				"ERR|^^^100&Segment sequence error&HL70357"}},
		{"2.3 two issues with locations", "2.3", AckSpec{Code: AckReject, ControlID: "ACK8", Time: ackTime, Issues: []Issue{header,
			{Severity: SeverityError, Code: CodeDataType, Location: Location{Segment: "PID", Occurrence: 1, Field: 5, Repetition: 1, Component: 1}, Rule: RuleControlCharacter, Text: "PID[1]-5[1].1 holds a control character"}}},
			[]string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01|ACK8|P|2.3",
				"MSA|AR|MSG7|MSH-10 message control ID is required (1 more in ERR)",
				"ERR|MSH^1^10^101&Required field missing&HL70357~PID^1^5^102&Data type error&HL70357"}},
		{"2.4 text given wins", "2.4", AckSpec{Code: AckError, ControlID: "ACK9", Time: ackTime, Text: "see ERR", Issues: []Issue{header}},
			[]string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01|ACK9|P|2.4",
				"MSA|AE|MSG7|see ERR", "ERR|MSH^1^10^101&Required field missing&HL70357"}},
		{"2.5 keeps ERR-2/3/4/8 and no MSA-3", "2.5", AckSpec{Code: AckReject, ControlID: "ACK10", Time: ackTime, Issues: []Issue{ParseIssue(perr), header}},
			[]string{"MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301101500.000+0100||ACK^A01^ACK|ACK10|P|2.5",
				"MSA|AR|MSG7",
				"ERR|||100^Segment sequence error^HL70357|E||||hl7v2: invalid segment name (segment 3, byte 78): a segment must start with a 3-character ID of upper-case letters and digits",
				"ERR||MSH^1^10|101^Required field missing^HL70357|E||||MSH-10 message control ID is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustParse(t, []byte(strings.Replace(string(msh.Bytes()), "|2.3", "|"+tt.version, 1)))
			ack, err := BuildACK(in, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(ack.Bytes()), strings.Join(tt.want, "\r")+"\r"; got != want {
				t.Errorf("got\n%q\nwant\n%q", got, want)
			}
			parsed, err := ParseACK(ack.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Text == "" || len(parsed.Errors) != len(tt.spec.Issues) {
				t.Errorf("ParseACK: text %q errors %v", parsed.Text, parsed.Errors)
			}
		})
	}
}
