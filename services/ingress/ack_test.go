package ingress

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
)

// TestAckCode is the ACK policy as a table of its inputs: what examine
// decided, whether the record was stored, and MSH-15/16.
func TestAckCode(t *testing.T) {
	original := hl7v2.AckPlan{}
	mode := func(accept, application string) hl7v2.AckPlan {
		return hl7v2.AckPlan{Enhanced: true, Accept: accept, Application: application}
	}
	tests := []struct {
		name   string
		answer answer
		stored bool
		plan   hl7v2.AckPlan
		want   string
	}{
		// Accepted.
		{"accepted, stored, original", answerAccept, true, original, "AA"},
		{"accepted, not stored, original", answerAccept, false, original, "AE"},
		{"accepted, stored, AL", answerAccept, true, mode("AL", "NE"), "CA"},
		{"accepted, stored, SU", answerAccept, true, mode("SU", "AL"), "CA"},
		{"accepted, stored, ER", answerAccept, true, mode("ER", "AL"), ""},
		{"accepted, stored, NE", answerAccept, true, mode("NE", "AL"), ""},
		{"accepted, stored, MSH-15 empty reads AL", answerAccept, true, mode("", "AL"), "CA"},
		{"accepted, not stored, AL", answerAccept, false, mode("AL", "AL"), "CE"},
		{"accepted, not stored, ER", answerAccept, false, mode("ER", "AL"), "CE"},
		{"accepted, not stored, SU", answerAccept, false, mode("SU", "AL"), ""},
		{"accepted, not stored, NE", answerAccept, false, mode("NE", "AL"), ""},
		// Refused: always answered, whether stored or not, whatever MSH-15.
		{"refused, stored, original", answerReject, true, original, "AR"},
		{"refused, not stored, original", answerReject, false, original, "AR"},
		{"refused, stored, AL", answerReject, true, mode("AL", "NE"), "CR"},
		{"refused, stored, NE", answerReject, true, mode("NE", "NE"), "CR"},
		{"refused, not stored, ER", answerReject, false, mode("ER", "AL"), "CR"},
		// Failing the profile (ack.on_profile_error: error).
		{"profile error, original", answerProfileError, true, original, "AE"},
		{"profile error, MSH-16 AL", answerProfileError, true, mode("AL", "AL"), "AE"},
		{"profile error, MSH-16 ER", answerProfileError, true, mode("NE", "ER"), "AE"},
		{"profile error, MSH-16 SU, MSH-15 AL", answerProfileError, true, mode("AL", "SU"), "CA"},
		{"profile error, MSH-16 NE, MSH-15 AL", answerProfileError, true, mode("AL", "NE"), "CA"},
		{"profile error, MSH-16 NE, MSH-15 NE", answerProfileError, true, mode("NE", "NE"), ""},
		{"profile error, not stored, original", answerProfileError, false, original, "AE"},
		{"profile error, not stored, AL", answerProfileError, false, mode("AL", "ER"), "CE"},
		// An acknowledgement: never answered.
		{"acknowledgement, original", answerNone, true, original, ""},
		{"acknowledgement, not stored, AL", answerNone, false, mode("AL", "AL"), ""},
	}
	for _, tt := range tests {
		if got := ackCode(tt.answer, tt.stored, tt.plan); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestOnProfileError: only ack.on_profile_error: error makes a message
// that fails its interface's profile an AE; with accept (the default) it
// is accepted and parse records the report.
func TestOnProfileError(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(profile, []byte("name: strict\nrequired: [PV1-3]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Interfaces: []Interface{
		{Name: "error", Profile: profile, Ack: AckPolicy{OnProfileError: OnProfileErrorError}},
		{Name: "accept", Profile: profile, Ack: AckPolicy{OnProfileError: OnProfileErrorAccept}},
		{Name: "default", Profile: profile},
	}}, kafka.Config{}, nil, slog.New(slog.DiscardHandler))
	if err := s.loadValidators(); err != nil {
		t.Fatal(err)
	}
	fails, conforms := msg("P1", ""), strings.Replace(msg("P2", ""), "PV1|1|I", "PV1|1|I|W1", 1)
	tests := []struct {
		iface, frame string
		answer       answer
		verdict      string
	}{
		{"error", fails, answerProfileError, canonical.RejectProfileError},
		{"error", conforms, answerAccept, ""},
		{"accept", fails, answerAccept, ""},
		{"default", fails, answerAccept, ""},
	}
	for _, tt := range tests {
		ex := s.examine(Interface{Name: tt.iface}, []byte(tt.frame))
		verdict := ""
		if ex.rejection != nil {
			verdict = ex.rejection.Code
		}
		if ex.answer != tt.answer || verdict != tt.verdict {
			t.Errorf("%s, %.30q: answer %d verdict %q, want %d %q", tt.iface, tt.frame, ex.answer, verdict, tt.answer, tt.verdict)
		}
		if tt.answer == answerProfileError && (len(ex.issues) == 0 || ex.issues[0].Code != hl7v2.CodeRequiredFieldMissing) {
			t.Errorf("%s: issues %+v, want the profile's required-field error for the ERR", tt.iface, ex.issues)
		}
	}
}

// TestReplyWithoutMSH: the one builder for a frame without a usable MSH
// (refusals, oversize frames, panics) answers in the default delimiters
// and v2.5, MSH-9 ACK alone, with the MSA-2 it is given.
func TestReplyWithoutMSH(t *testing.T) {
	for _, tt := range []struct{ code, msa2 string }{{"AR", ""}, {"AR", "BATCH7"}, {"AE", "C^1"}} {
		reply := replyWithoutMSH(hl7v2.AckSpec{Code: tt.code, ControlID: "01HACK", Text: "why",
			Issues: []hl7v2.Issue{{Severity: hl7v2.SeverityError, Code: hl7v2.CodeInternalError, Text: "why"}}}, tt.msa2)
		a, err := hl7v2.ParseACK(reply)
		if err != nil {
			t.Fatalf("%q: %v", reply, err)
		}
		if a.Code != tt.code || a.ControlID != tt.msa2 || len(a.Errors) != 1 || a.Errors[0] != 207 {
			t.Errorf("%s %q: MSA %s %q, ERR %v", tt.code, tt.msa2, a.Code, a.ControlID, a.Errors)
		}
		if !strings.HasPrefix(string(reply), "MSH|^~\\&|||||") || a.Message.Header(9) != "ACK" || a.Message.Version() != "2.5" ||
			a.Message.ControlID() != "01HACK" {
			t.Errorf("reply %q", reply)
		}
	}
}

// TestPanicReply: what a sender gets for a frame accept panicked on: AE
// (CE in enhanced mode) naming its MSH-10 with an ERR 207, nothing for an
// acknowledgement or a sender that wants no accept acknowledgement on
// error, and an AE from the stub without a usable MSH.
func TestPanicReply(t *testing.T) {
	s := New(Config{}, kafka.Config{}, nil, slog.New(slog.DiscardHandler))
	reply := s.panicReply(Interface{Name: "in"})
	tests := []struct {
		name, frame, code, msa2 string
	}{
		{"original mode", msg("C1", ""), "AE", "C1"},
		{"enhanced AL", msg("C2", "AL|NE"), "CE", "C2"},
		{"enhanced SU: no accept ACK on error", msg("C3", "SU|AL"), "", ""},
		{"an acknowledgement", "MSH|^~\\&|A|B|C|D|1||ACK^A01|A1|P|2.5\rMSA|AA|C1\r", "", ""},
		{"MSH-2 broken: MSH-10 peeked", "MSH|^~\\&ZZ|HIS|GENHOSP|||20261201||ADT^A01|P10|P|2.5\r", "AE", "P10"},
		{"no MSH", "hello", "AE", ""},
	}
	for _, tt := range tests {
		got := reply([]byte(tt.frame))
		if tt.code == "" {
			if got != nil {
				t.Errorf("%s: %q, want no reply", tt.name, got)
			}
			continue
		}
		a, err := hl7v2.ParseACK(got)
		if err != nil {
			t.Errorf("%s: %q: %v", tt.name, got, err)
			continue
		}
		if a.Code != tt.code || a.ControlID != tt.msa2 || len(a.Errors) == 0 || a.Errors[0] != hl7v2.CodeInternalError {
			t.Errorf("%s: MSA %s %q ERR %v, want %s %q 207", tt.name, a.Code, a.ControlID, a.Errors, tt.code, tt.msa2)
		}
		if strings.Contains(string(got), "ZZTESTNAME") {
			t.Errorf("%s: the reply quotes the message: %q", tt.name, got)
		}
	}
}
