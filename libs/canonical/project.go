package canonical

import (
	"strings"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// Projections: typed views of a parsed message that records carry, built
// from the message alone so every stage that needs one gets the same.

// PatientOf projects the message's first PID, or returns nil when there is
// none. Names, sex and identifiers are trimmed; null ("") and empty
// identifier repetitions are skipped. BirthDate is PID-7 as the sender
// wrote the date (never shifted to UTC: a birth date has no time zone), at
// its precision: YYYY, YYYY-MM or YYYY-MM-DD; "" when PID-7 is not a DTM.
func PatientOf(m *hl7v2.Message) *Patient {
	pid, ok := m.Segment("PID", 1)
	if !ok {
		return nil
	}
	p := &Patient{
		FamilyName: strings.TrimSpace(pid.Field(5).Comp(1).Sub(1).String()),
		GivenName:  strings.TrimSpace(pid.Field(5).Comp(2).String()),
		Sex:        strings.TrimSpace(pid.Field(8).Comp(1).String()),
	}
	if d, ok := hl7v2.ParseDTM([]byte(strings.TrimSpace(pid.Field(7).Comp(1).String()))); ok {
		p.BirthDate = d.Date()
	}
	for _, r := range pid.Field(3).Reps() {
		id := strings.TrimSpace(r.Comp(1).String())
		if id == "" || r.IsNull() {
			continue
		}
		p.Identifiers = append(p.Identifiers, Identifier{
			Value: id, Authority: strings.TrimSpace(r.Comp(4).Sub(1).String()), Type: strings.TrimSpace(r.Comp(5).String())})
	}
	return p
}

// MessageTimeOf returns MSH-7 in UTC (RFC 3339) and the sender's offset
// ("+01:00", "" without one); ok is false when MSH-7 is absent or not a
// DTM.
func MessageTimeOf(m *hl7v2.Message) (utc, offset string, ok bool) {
	return hl7v2.ToUTC(m.Header(7))
}
