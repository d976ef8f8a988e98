package index

import (
	"regexp"
	"strings"
	"testing"
)

func TestPatientKey(t *testing.T) {
	secret := []byte("index-secret-one")
	k := PatientKey(secret, "hosp", "MRN12345")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(k) {
		t.Fatalf("key %q: want 64 lower-case hex digits", k)
	}
	if strings.Contains(strings.ToLower(k), strings.ToLower("MRN12345")) || strings.Contains(k, "12345") {
		t.Fatalf("key %q contains the ID", k)
	}
	if got := PatientKey(secret, "  HOSP ", " MRN12345\t"); got != k {
		t.Errorf("canonical form: trimmed, upper-cased authority should give the same key")
	}
	if got := PatientKey([]byte("index-secret-two"), "HOSP", "MRN12345"); got == k {
		t.Error("a different secret gave the same key")
	}
	if got := PatientKey(secret, "HOSP", "mrn12345"); got == k {
		t.Error("the ID is case-sensitive; its key must be too")
	}
	if got := PatientKey(secret, "OTHER", "MRN12345"); got == k {
		t.Error("a different authority gave the same key")
	}
	if got := PatientKey(secret, "", "MRN12345"); got == k {
		t.Error("no authority gave the same key as HOSP")
	}
	// The separator keeps ("AB", "C") and ("A", "BC") apart.
	if PatientKey(secret, "AB", "C") == PatientKey(secret, "A", "BC") {
		t.Error("authority and ID are not separated")
	}
	if PatientKey(secret, "HOSP", "  ") != "" {
		t.Error("an empty ID must have no key")
	}
}
