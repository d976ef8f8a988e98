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
