package egress

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/mllp"
)

func TestJudge(t *testing.T) {
	sent := sentHeader{controlID: "MSG1", version: "2.5"}
	ack := func(typ, version, code, msa2 string) []byte {
		return fmt.Appendf(nil, "MSH|^~\\&|LIS|LAB|HIS|HOSP|20261201101500||%s|A1|P|%s\rMSA|%s|%s\r", typ, version, code, msa2)
	}
	for _, tc := range []struct {
		name     string
		reply    []byte
		err      error
		check    AckCheck
		want     Verdict
		class    string
		answered bool
		reason   string // substring
	}{
		{"AA", ack("ACK^A01^ACK", "2.5", "AA", "MSG1"), nil, AckCheck{}, Delivered, "", true, ""},
		{"CA", ack("ACK", "2.5", "CA", "MSG1"), nil, AckCheck{}, Delivered, "", true, ""},
		{"AE", ack("ACK", "2.5", "AE", "MSG1"), nil, AckCheck{}, Failed, failAckError, true, "receiver answered AE"},
		{"CE", ack("ACK", "2.5", "CE", "MSG1"), nil, AckCheck{}, Failed, failAckError, true, "receiver answered CE"},
		{"AR", ack("ACK", "2.5", "AR", "MSG1"), nil, AckCheck{}, Rejected, failRejected, true, "receiver answered AR"},
		{"CR", ack("ACK", "2.5", "CR", "MSG1"), nil, AckCheck{}, Rejected, failRejected, true, "receiver answered CR"},
		{"AA naming another message", ack("ACK", "2.5", "AA", "SOMEOTHERMSG"), nil, AckCheck{}, Failed, failAckMismatch, true, "MSA-2"},
		{"AR naming another message is not ours either", ack("ACK", "2.5", "AR", "SOMEOTHERMSG"), nil, AckCheck{}, Failed, failAckMismatch, true, "MSA-2"},
		{"empty MSA-2", ack("ACK", "2.5", "AA", ""), nil, AckCheck{}, Failed, failAckMismatch, true, "MSA-2"},
		{"leniency never covers a wrong control ID", ack("ACK", "2.5", "AA", "SOMEOTHERMSG"), nil, AckCheck{LenientVersion: true, LenientType: true}, Failed, failAckMismatch, true, "MSA-2"},
		{"wrong version", ack("ACK", "2.3", "AA", "MSG1"), nil, AckCheck{}, Failed, failAckHeader, true, `"2.3" differs from the message's "2.5"`},
		{"wrong version, lenient", ack("ACK", "2.3", "AA", "MSG1"), nil, AckCheck{LenientVersion: true}, Delivered, "", true, ""},
		{"MSH-9 not ACK", ack("ADT^A01", "2.5", "AA", "MSG1"), nil, AckCheck{}, Failed, failAckHeader, true, "MSH-9"},
		{"MSH-9 not ACK, lenient", ack("ADT^A01", "2.5", "AA", "MSG1"), nil, AckCheck{LenientType: true}, Delivered, "", true, ""},
		{"unknown code", ack("ACK", "2.5", "XX", "MSG1"), nil, AckCheck{}, Failed, failBadAck, true, "table 0008"},
		{"garbage", []byte("NOT HL7"), nil, AckCheck{}, Failed, failBadAck, true, "not an HL7 acknowledgement"},
		{"no MSA", []byte("MSH|^~\\&|A|B|C|D|20261201||ACK|1|P|2.5\r"), nil, AckCheck{}, Failed, failBadAck, true, "not an HL7 acknowledgement"},
		{"ack timeout", nil, mllp.ErrAckTimeout, AckCheck{}, Failed, failNoAnswer, false, "timed out"},
		{"connection lost", nil, errors.New("mllp: reading reply from x: EOF"), AckCheck{}, Failed, failConnectionLost, false, "EOF"},
		{"not sent", nil, fmt.Errorf("%w: connecting to x: refused", mllp.ErrNotSent), AckCheck{}, NotSent, "", false, "not sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := judge(tc.reply, tc.err, sent, tc.check)
			if j.verdict != tc.want || j.class != tc.class || j.answered != tc.answered || !strings.Contains(j.reason, tc.reason) {
				t.Errorf("judge = %+v, want verdict %v class %q answered %v reason containing %q", j, tc.want, tc.class, tc.answered, tc.reason)
			}
		})
	}
}

// A reply that quotes the message back must not put its content in the
// reason (it goes to delivery records and dead letters).
func TestJudgeReasonCarriesNoContent(t *testing.T) {
	reply := []byte("MSH|^~\\&ZZTESTNAME99887766|broken")
	j := judge(reply, nil, sentHeader{controlID: "MSG1", version: "2.5"}, AckCheck{})
	if strings.Contains(j.reason, "ZZTESTNAME") || strings.Contains(j.reason, "99887766") {
		t.Errorf("reason %q quotes the reply", j.reason)
	}
	long := []byte("MSH|^~\\&|A|B|C|D|20261201||ACK|1|P|ZZTESTNAME99887766-2.5\rMSA|AA|MSG1\r")
	if j := judge(long, nil, sentHeader{controlID: "MSG1", version: "2.5"}, AckCheck{}); strings.Contains(j.reason, "99887766") {
		t.Errorf("reason %q quotes a long MSH-12 whole", j.reason)
	}
}

func TestHeaderOf(t *testing.T) {
	for _, tc := range []struct {
		payload, fallback string
		want              sentHeader
	}{
		{"MSH|^~\\&|HIS|H|LIS|L|20261201||ADT^A01|CTL9|P|2.5.1\rPID|1||X\r", "OUT", sentHeader{"CTL9", "2.5.1"}},
		{"MSH|^~\\&|HIS|H|LIS|L|20261201||ADT^A01|CTL9|P|2.4\nPID|1\n", "OUT", sentHeader{"CTL9", "2.4"}},
		{"not HL7", "OUT", sentHeader{controlID: "OUT"}},
	} {
		if got := headerOf([]byte(tc.payload), tc.fallback); got != tc.want {
			t.Errorf("headerOf(%q) = %+v, want %+v", tc.payload, got, tc.want)
		}
	}
}
