package hl7v2

import (
	"strings"
	"testing"
)

func TestToUTC(t *testing.T) {
	tests := []struct {
		in, utc, offset string
		ok              bool
	}{
		// The cases transform's ToUTC was tested with, unchanged.
		{"20240301101500+0100", "2024-03-01T09:15:00Z", "+01:00", true},
		{"20240301101500-0500", "2024-03-01T15:15:00Z", "-05:00", true},
		{"20240301101500", "2024-03-01T10:15:00Z", "", true},
		{"20240301101500.123+0000", "2024-03-01T10:15:00.123Z", "+00:00", true},
		{"202403011015", "2024-03-01T10:15:00Z", "", true},
		{"20240301", "2024-03-01T00:00:00Z", "", true},
		{"2024", "2024-01-01T00:00:00Z", "", true},
		{" 20240301 ", "2024-03-01T00:00:00Z", "", true},
		{"", "", "", false},
		{"2024-03-01", "", "", false},
		{"20241301", "", "", false},
		{"20240301101500+01", "", "", false},
		{"20240301101500+9900", "", "", false},
		{"yesterday", "", "", false},

		// Odd offsets: quarter and half hours, both ends of the range.
		{"20240301101500+0545", "2024-03-01T04:30:00Z", "+05:45", true}, // Nepal
		{"20240301101500-0330", "2024-03-01T13:45:00Z", "-03:30", true}, // Newfoundland
		{"20240301101500+1245", "2024-02-29T21:30:00Z", "+12:45", true}, // Chatham, the day before (2024 is a leap year)
		{"20240301000000+1400", "2024-02-29T10:00:00Z", "+14:00", true}, // Kiribati
		{"20241231230000-1200", "2025-01-01T11:00:00Z", "-12:00", true}, // into the next year
		{"20240301101500-0000", "2024-03-01T10:15:00Z", "+00:00", true},
		{"20240301+0100", "2024-02-29T23:00:00Z", "+01:00", true}, // an offset on a date alone
		{"20240301101500+1500", "", "", false},
		{"20240301101500+0160", "", "", false},
		{"20240301101500+01:00", "", "", false},
		{"20240301101500+", "", "", false},
		{"20240301101500+0100+0100", "", "", false},

		// Fractions: 1 to 4 digits, only after the seconds.
		{"20240301101500.1", "2024-03-01T10:15:00.1Z", "", true},
		{"20240301101500.0001", "2024-03-01T10:15:00.0001Z", "", true},
		{"20240301101500.1234-0100", "2024-03-01T11:15:00.1234Z", "-01:00", true},
		{"20240301101500.12345", "", "", false},
		{"20240301101500.", "", "", false},
		{"202403011015.5", "", "", false},
		{"20240301101500.1a", "", "", false},

		// Precision and calendar.
		{"202403", "2024-03-01T00:00:00Z", "", true},
		{"2024030110", "2024-03-01T10:00:00Z", "", true},
		{"20240229", "2024-02-29T00:00:00Z", "", true},
		{"20230229", "", "", false}, // not a leap year
		{"19000229", "", "", false}, // a century is not
		{"20000229", "2000-02-29T00:00:00Z", "", true},
		{"20240431", "", "", false},
		{"20241231235960", "2025-01-01T00:00:00Z", "", true}, // a leap second
		{"20240301241500", "", "", false},
		{"20240301106000", "", "", false},
		{"20240301101561", "", "", false},
		{"202", "", "", false},
		{"2024031", "", "", false},
		{"202403011", "", "", false},
		{"+0100", "", "", false},
	}
	for _, tt := range tests {
		utc, off, ok := ToUTC(tt.in)
		if utc != tt.utc || off != tt.offset || ok != tt.ok {
			t.Errorf("ToUTC(%q) = %q %q %v, want %q %q %v", tt.in, utc, off, ok, tt.utc, tt.offset, tt.ok)
		}
		// One grammar: the validator accepts exactly what ToUTC reads
		// (blanks aside: the validator sees the value as sent).
		if got := isDateTime([]byte(tt.in)); got != tt.ok && tt.in == strings.TrimSpace(tt.in) {
			t.Errorf("isDateTime(%q) = %v, ToUTC says %v", tt.in, got, tt.ok)
		}
	}
}

func TestParseDTMPrecisionAndDate(t *testing.T) {
	tests := []struct {
		in   string
		prec Precision
		date string
	}{
		{"1980", PrecisionYear, "1980"},
		{"198007", PrecisionMonth, "1980-07"},
		{"19800704", PrecisionDay, "1980-07-04"},
		{"1980070423", PrecisionHour, "1980-07-04"},
		{"198007042330", PrecisionMinute, "1980-07-04"},
		{"19800704233015", PrecisionSecond, "1980-07-04"},
		{"19800704233015.5", PrecisionFraction, "1980-07-04"},
		// The date as written: the offset does not move it to UTC's day.
		{"198007040030+0200", PrecisionMinute, "1980-07-04"},
		{"198007042330-0500", PrecisionMinute, "1980-07-04"},
	}
	for _, tt := range tests {
		d, ok := ParseDTM([]byte(tt.in))
		if !ok || d.Precision != tt.prec || d.Date() != tt.date {
			t.Errorf("ParseDTM(%q) = %+v %v; want precision %d, date %q", tt.in, d, ok, tt.prec, tt.date)
		}
	}
}

func TestDateAndTimeGrammar(t *testing.T) {
	dates := []struct {
		in string
		ok bool
	}{
		{"2024", true}, {"202402", true}, {"20240229", true}, {"20230229", false},
		{"20241301", false}, {"20240100", false}, {"2024010", false}, {"2024-01-01", false}, {"", false},
	}
	for _, tt := range dates {
		if got := isDate([]byte(tt.in)); got != tt.ok {
			t.Errorf("isDate(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
	times := []struct {
		in string
		ok bool
	}{
		{"10", true}, {"1015", true}, {"101530", true}, {"101530.1234", true}, {"101530+0545", true},
		{"1015.5", false}, {"101530.12345", false}, {"24", false}, {"1060", false}, {"1", false},
		{"", false}, {"+0100", false}, {"1015+01", false},
	}
	for _, tt := range times {
		if got := isTime([]byte(tt.in)); got != tt.ok {
			t.Errorf("isTime(%q) = %v, want %v", tt.in, got, tt.ok)
		}
	}
}
