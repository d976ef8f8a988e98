package hl7v2

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

// Sentinels stand for a patient's name and medical record number. Every
// input below puts them where a parse failure or a validation rule looks,
// and nothing the package says about the input may repeat them: errors and
// Issue texts reach logs, dead-letter reasons, span status and ACKs.
const (
	sentinelName = "ZZTESTNAME"
	sentinelID   = "99887766"
)

func assertNoSentinel(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{sentinelName, sentinelID, "ZZTEST", "998877"} {
		if strings.Contains(text, s) {
			t.Errorf("%s quotes message content (%s): %q", where, s, text)
		}
	}
}

const (
	phiMSH = `MSH|^~\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||ADT^A01^ADT_A01|C1|P|2.5`
	phiPID = `PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN||19800101|M`
)

func TestParseFailuresQuoteNoContent(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		batch bool
		want  error
	}{
		{"no MSH", "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN\r", false, ErrNoMSH},
		{"wrong field separator swallows the message", "MSH#~\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|PHI4|P|2.5\nPID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN\nPV1|1|I\r", false, ErrDelimiters},
		{"content glued to MSH-2", "MSH|^~\\&ZZTESTNAME99887766|HIS|GENHOSP|||20261201||ADT^A01|P10|P|2.5\r", false, ErrDelimiters},
		{"MSH-2 too short", "MSH|^|ZZTESTNAME|99887766\r", false, ErrDelimiters},
		{"MSH-2 too long", "MSH|^~\\&#!|ZZTESTNAME|99887766\r", false, ErrDelimiters},
		{"duplicate delimiter", "MSH|^^\\&|ZZTESTNAME|99887766\r", false, ErrDelimiters},
		{"alphanumeric delimiter", "MSH|^~\\Z|ZZTESTNAME|99887766\r", false, ErrDelimiters},
		{"alphanumeric field separator", "MSHZ^~\\&ZZTESTNAMEZ99887766\r", false, ErrDelimiters},
		{"bad segment name", phiMSH + "\rpid|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN\r", false, ErrSegmentName},
		{"second MSH", phiMSH + "\r" + phiPID + "\r" + phiMSH + "\r" + phiPID + "\r", false, ErrBatch},
		{"batch: bad FHS delimiters", "FHS#~\\&|ZZTESTNAME|99887766\r" + phiMSH + "\r", true, ErrDelimiters},
		{"batch: bad BHS delimiters", "BHS|^^\\&|ZZTESTNAME|99887766\r" + phiMSH + "\r", true, ErrDelimiters},
		{"batch: count not a number", "BHS|^~\\&\r" + phiMSH + "\r" + phiPID + "\rBTS|ZZTESTNAME99887766\r", true, ErrBatch},
		{"batch: wrong count", "BHS|^~\\&\r" + phiMSH + "\r" + phiPID + "\rBTS|99887766\r", true, ErrBatch},
		{"batch: segment outside a message", "BHS|^~\\&\rPID|1||99887766||ZZTESTNAME\r", true, ErrBatch},
		{"batch: bad segment name", "BHS|^~\\&\r" + phiMSH + "\rpid|1||99887766||ZZTESTNAME\r", true, ErrSegmentName},
		{"batch: bad message delimiters", "BHS|^~\\&\rMSH|^~\\&ZZTESTNAME99887766|A\r", true, ErrDelimiters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.batch {
				_, err = ParseBatch([]byte(tt.in))
			} else {
				_, err = Parse([]byte(tt.in))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			assertNoSentinel(t, "error", err.Error())
			is := ParseIssue(err)
			assertNoSentinel(t, "ParseIssue text", is.Text)
			assertNoSentinel(t, "ParseIssue location", is.Location.String())
		})
	}
}

func TestValidationQuotesNoContent(t *testing.T) {
	p, err := ParseProfile([]byte(`
name: phi
message_types: ["ORU^R01"]
versions: ["2.4"]
required: ["PID-19"]
values:
  PID-8: [F]
forbidden_segments: [ZPI]
severity:
  table.user-defined: warning
`))
	if err != nil {
		t.Fatal(err)
	}
	v27 := strings.Replace(phiMSH, "|2.5", "|2.7", 1)
	inputs := [][]string{
		{strings.Replace(phiMSH, "|2.5", "|ZZTESTNAME99887766", 1), phiPID},
		{strings.Replace(phiMSH, "|2.5", "|", 1), phiPID},
		{phiMSH + "|||||US|ZZTESTNAME99887766", "EVN|A01|20261201", phiPID, "PV1|1|I"},
		{phiMSH + "|||||US|UNICODE UTF-8", "EVN|A01|20261201", phiPID + "\xff\xfe", "PV1|1|I"},
		{strings.Replace(phiMSH, "ADT^A01^ADT_A01", "ZZT^A01", 1), phiPID},
		{strings.Replace(phiMSH, "ADT^A01^ADT_A01", "ADT^Z98", 1), phiPID},
		{strings.Replace(phiMSH, "ADT^A01^ADT_A01", "ORU^R01", 1), "ZZ1|ZZTESTNAME|99887766", phiPID},
		{strings.Replace(phiMSH, "ADT^A01^ADT_A01", "ZZZ^Z99", 1), phiPID},
		{strings.Replace(phiMSH, "ADT^A01^ADT_A01", "", 1), phiPID},
		{strings.Replace(phiMSH, "|C1|", "||", 1), phiPID},
		{strings.Replace(strings.Replace(phiMSH, "|2.5", "|2.6", 1), "ADT^A01^ADT_A01", "ADT", 1), phiPID},
		{strings.Replace(phiMSH, "|P|", "|ZZTESTNAME99887766|", 1), "EVN|A01|20261201", phiPID, "PV1|1|I"},
		{phiMSH, "PV1|1|I", "EVN|A01|ZZTESTNAME99887766", phiPID, "QAK|ZZTESTNAME|99887766", "ZPI|ZZTESTNAME"},
		{phiMSH, "EVN|A01|20261201", `PID|ZZTESTNAME||99887766^^^GENHOSP^MR||ZZTESTNAME\Q\99887766||ZZTESTNAME99887766|ZZTESTNAME99887766~99887766|||||||||||99887766ZZTESTNAME|||||||||||||||||`, "PV1|1|I"},
		{phiMSH, "EVN|A01|20261201", "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME\x00^JOHN\t99887766||19800101|M", "PV1|1|I"},
		{v27, "EVN|A01|20261201", "PID|1||^^^GENHOSP^MR~99887766^^^GENHOSP||ZZTESTNAME^JOHN||19800101|M", "PV1|1|I"},
		{v27, "EVN|A01|20261201", "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN||19800101|ZZTESTNAME^Name^HL70001", "PV1|1|I"},
		{v27, "EVN|A01|20261201", "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN||19800101|ZZTESTNAME99887766", "PV1|1|I"},
		{strings.Replace(phiMSH, "|2.5", "|2.3", 1), "EVN|A01|ZZTESTNAME99887766", phiPID, "PV1|1|I"},
		{phiMSH, "EVN|A01|20261201", "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN||19800101|ZZTESTNAME99887766", "PV1|1|I", "OBX|99887766|NM|ZZTESTNAME||ZZTESTNAME99887766"},
	}
	raised := map[string]bool{}
	for _, segs := range inputs {
		data := msg(segs...)
		m, err := Parse(data)
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		for _, r := range []*Report{Validate(m), NewValidator(p).Validate(m)} {
			for _, is := range r.Issues {
				raised[is.Rule] = true
				assertNoSentinel(t, "issue "+is.Rule, is.String())
			}
		}
		for _, is := range RequiredHeaderIssues(m) {
			assertNoSentinel(t, "header issue", is.String())
		}
		if ack, err := BuildACK(m, AckSpec{Code: AckError, ControlID: "A1", Issues: Validate(m).Issues}); err == nil {
			// The ACK echoes the sender's own header fields, so only the
			// part we wrote is checked: MSA-3 and ERR.
			for _, seg := range ack.Segments()[1:] {
				assertNoSentinel(t, "ACK "+seg.Name(), string(seg.Raw()))
			}
		}
	}
	var missing []string
	for rule := range defaultSeverity {
		if !raised[rule] {
			missing = append(missing, rule)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("rules never raised by the sentinel inputs (add an input for each): %v", missing)
	}
}
