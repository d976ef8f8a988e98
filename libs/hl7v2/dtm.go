package hl7v2

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// The HL7 date and time grammar, once: the validator checks DT, TM and
// DTM/TS values with it, and the projections (canonical, transform) read
// DTM values with it, so a value the validator accepts is exactly a value
// the projections can read.
//
//	DT  YYYY[MM[DD]]
//	TM  HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]
//	DTM YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
//
// A fraction needs the seconds before it and has 1 to 4 digits (HL7 gives
// a ten-thousandth of a second at most). Seconds run to 60, a leap second,
// which a time.Time folds into the next minute. The offset is +/-HHMM with
// HH at most 14 (UTC+14, Kiribati) and MM at most 59, so odd offsets
// (+0545, -0330, +1245) are read. A month has its real number of days:
// February 29 only in a leap year.

// Precision says how much of a DTM value the sender gave.
type Precision int

// Precisions of a DTM value, coarsest first.
const (
	PrecisionYear     Precision = iota + 1 // YYYY
	PrecisionMonth                         // YYYYMM
	PrecisionDay                           // YYYYMMDD
	PrecisionHour                          // YYYYMMDDHH
	PrecisionMinute                        // YYYYMMDDHHMM
	PrecisionSecond                        // YYYYMMDDHHMMSS
	PrecisionFraction                      // YYYYMMDDHHMMSS.S to .SSSS
)

// DateTime is a DTM value read into its parts. Parts beyond Precision are
// zero (Month and Day are 1).
type DateTime struct {
	Year, Month, Day     int
	Hour, Minute, Second int
	// Nanosecond is the fraction, at most to the ten-thousandth of a
	// second.
	Nanosecond int
	Precision  Precision
	// HasOffset says the value carried +/-ZZZZ; Offset is it in seconds
	// east of UTC.
	HasOffset bool
	Offset    int
}

// ParseDTM reads an HL7 DTM (or TS's first component) value; ok is false
// when b does not follow the grammar. Surrounding blanks are not trimmed.
func ParseDTM(b []byte) (DateTime, bool) {
	var d DateTime
	b, off, hasOff, ok := splitZone(b)
	if !ok || len(b) < 4 {
		return DateTime{}, false
	}
	d.Offset, d.HasOffset = off, hasOff
	datePart := b
	if len(b) > 8 {
		datePart = b[:8]
	}
	if !readDate(datePart, &d) {
		return DateTime{}, false
	}
	if len(b) > 8 && !readClock(b[8:], &d) {
		return DateTime{}, false
	}
	return d, true
}

// Time returns the value as a time.Time in the sender's offset (UTC when
// it gave none), the parts it did not give at their smallest.
func (d DateTime) Time() time.Time {
	zone := time.UTC
	if d.HasOffset {
		zone = time.FixedZone(d.OffsetString(), d.Offset)
	}
	return time.Date(d.Year, time.Month(d.Month), d.Day, d.Hour, d.Minute, d.Second, d.Nanosecond, zone)
}

// OffsetString returns the offset as ±HH:MM ("+05:45"), "" without one.
func (d DateTime) OffsetString() string {
	if !d.HasOffset {
		return ""
	}
	sign, o := '+', d.Offset
	if o < 0 {
		sign, o = '-', -o
	}
	return fmt.Sprintf("%c%02d:%02d", sign, o/3600, o%3600/60)
}

// Date returns the calendar date as written (no conversion to UTC), in
// ISO 8601 at the value's precision: YYYY, YYYY-MM or YYYY-MM-DD (the
// shapes of a FHIR date).
func (d DateTime) Date() string {
	switch d.Precision {
	case PrecisionYear:
		return fmt.Sprintf("%04d", d.Year)
	case PrecisionMonth:
		return fmt.Sprintf("%04d-%02d", d.Year, d.Month)
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// ToUTC converts an HL7 DTM to RFC 3339 in UTC and returns the sender's
// offset ("+01:00"; "" when the value had none, in which case the time is
// taken as UTC). Blanks around the value are ignored; ok is false when it
// is not a DTM.
func ToUTC(dtm string) (utc, offset string, ok bool) {
	d, ok := ParseDTM([]byte(strings.TrimSpace(dtm)))
	if !ok {
		return "", "", false
	}
	return d.Time().UTC().Format(time.RFC3339Nano), d.OffsetString(), true
}

// isDate accepts a DT: YYYY, YYYYMM or YYYYMMDD (only the last before 2.5,
// but partial dates are so common in older messages that we accept them
// too).
func isDate(b []byte) bool {
	var d DateTime
	return readDate(b, &d)
}

// isTime accepts a TM: HH[MM[SS[.S{1,4}]]][+/-ZZZZ].
func isTime(b []byte) bool {
	b, _, _, ok := splitZone(b)
	if !ok || len(b) == 0 {
		return false
	}
	var d DateTime
	return readClock(b, &d)
}

// isDateTime accepts a DTM.
func isDateTime(b []byte) bool {
	_, ok := ParseDTM(b)
	return ok
}

// readDate reads YYYY[MM[DD]] into d.
func readDate(b []byte, d *DateTime) bool {
	if !isDigits(b) || (len(b) != 4 && len(b) != 6 && len(b) != 8) {
		return false
	}
	d.Year, d.Month, d.Day, d.Precision = num(b[:4]), 1, 1, PrecisionYear
	if len(b) >= 6 {
		d.Month, d.Precision = num(b[4:6]), PrecisionMonth
		if d.Month < 1 || d.Month > 12 {
			return false
		}
	}
	if len(b) == 8 {
		d.Day, d.Precision = num(b[6:8]), PrecisionDay
		if d.Day < 1 || d.Day > daysIn(d.Year, d.Month) {
			return false
		}
	}
	return true
}

// readClock reads HH[MM[SS[.S{1,4}]]] into d.
func readClock(b []byte, d *DateTime) bool {
	main, frac, hasFrac := bytes.Cut(b, []byte("."))
	if !isDigits(main) || (len(main) != 2 && len(main) != 4 && len(main) != 6) {
		return false
	}
	d.Hour, d.Precision = num(main[:2]), PrecisionHour
	if d.Hour > 23 {
		return false
	}
	if len(main) >= 4 {
		d.Minute, d.Precision = num(main[2:4]), PrecisionMinute
		if d.Minute > 59 {
			return false
		}
	}
	if len(main) == 6 {
		d.Second, d.Precision = num(main[4:6]), PrecisionSecond
		if d.Second > 60 {
			return false
		}
	}
	if hasFrac {
		if len(main) != 6 || len(frac) < 1 || len(frac) > 4 || !isDigits(frac) {
			return false
		}
		ns := num(frac)
		for i := len(frac); i < 9; i++ {
			ns *= 10
		}
		d.Nanosecond, d.Precision = ns, PrecisionFraction
	}
	return true
}

// splitZone separates a trailing +ZZZZ/-ZZZZ offset and returns it in
// seconds east of UTC; ok is false for a malformed one.
func splitZone(b []byte) (rest []byte, offset int, has, ok bool) {
	i := bytes.IndexAny(b, "+-")
	if i < 0 {
		return b, 0, false, true
	}
	z := b[i+1:]
	if len(z) != 4 || !isDigits(z) || num(z[:2]) > 14 || num(z[2:]) > 59 {
		return nil, 0, false, false
	}
	offset = num(z[:2])*3600 + num(z[2:])*60
	if b[i] == '-' {
		offset = -offset
	}
	return b[:i], offset, true, true
}

// daysIn is the number of days of month (1-12) in year.
func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
