package mapping

import (
	"bytes"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
)

// normalizeOp rewrites date/times: to UTC with an explicit +0000, and/or
// truncated to a precision. Values are read with hl7v2.ParseDTM, the
// grammar the validator checks, so what validates normalizes.
type normalizeOp struct {
	path      hl7v2.Path
	toUTC     bool
	precision hl7v2.Precision // 0: keep
}

// precisions are the names normalize.precision accepts.
var precisions = map[string]hl7v2.Precision{
	"year": hl7v2.PrecisionYear, "month": hl7v2.PrecisionMonth, "day": hl7v2.PrecisionDay,
	"hour": hl7v2.PrecisionHour, "minute": hl7v2.PrecisionMinute, "second": hl7v2.PrecisionSecond,
}

func (c *compiler) compileNormalize(key string, s *NormalizeOp) op {
	p, _ := c.writable(key+".path", s.Path)
	o := &normalizeOp{path: p}
	switch s.To {
	case "":
	case "utc":
		o.toUTC = true
	default:
		c.errorf(key+".to", "%q is not a target; the one there is: utc", s.To)
	}
	if s.Precision != "" {
		pr, ok := precisions[s.Precision]
		if !ok {
			c.errorf(key+".precision", "%q is not one of year, month, day, hour, minute, second", s.Precision)
		}
		o.precision = pr
	}
	if s.To == "" && s.Precision == "" {
		c.errorf(key, "one of to and precision is required")
	}
	return o
}

func (o *normalizeOp) apply(r *run, m *hl7v2.Message) error {
	for _, p := range r.expand(m, o.path) {
		// A TS field (before 2.6) holds the time in its first component
		// and the degree of precision in the second; a DTM field has no
		// components, and its first component is the field itself. Either
		// way the time is component 1, and the rest is kept.
		if p.Component == 0 {
			p.Component = 1
		}
		v := m.Value(p)
		if v.IsEmpty() || v.IsNull() {
			continue
		}
		// A date/time is digits, '.', '+' and '-': read its wire bytes
		// as they are (no decoding, no allocation); anything escaped is
		// not a date/time anyway.
		s := v.Raw()
		d, ok := hl7v2.ParseDTM(s)
		if !ok {
			return r.fail("%s is not an HL7 date/time", p)
		}
		frac := fractionDigits(s)
		if o.toUTC {
			switch {
			case !d.HasOffset:
				r.flag(p.String(), hl7v2.CodeDataType, "no UTC offset; left in the sender's time")
			case d.Precision >= hl7v2.PrecisionHour:
				// A date alone names a day, not an instant: it has no UTC
				// equivalent and is left as written.
				d = fromTime(utc(d), d.Precision)
			}
		}
		if o.precision != 0 && o.precision < d.Precision {
			d = truncate(d, o.precision)
		}
		var buf [32]byte
		out := formatDTM(buf[:0], d, frac)
		if bytes.Equal(out, s) {
			continue
		}
		if err := setPlain(m, p, out); err != nil {
			return r.fail("%s: %v", p, err)
		}
	}
	return nil
}

// fractionDigits counts the digits of the fraction of a DTM (0 without
// one), so a rewritten value keeps the sender's resolution.
func fractionDigits(s []byte) int {
	_, f, ok := bytes.Cut(s, []byte("."))
	if !ok {
		return 0
	}
	n := 0
	for n < len(f) && f[n] >= '0' && f[n] <= '9' {
		n++
	}
	return n
}

// utc is the instant d names, in UTC: its wall time less its offset.
// (DateTime.Time builds a named fixed zone for the offset, two strings
// and a zone per value, only for UTC() to drop it again.)
func utc(d hl7v2.DateTime) time.Time {
	t := time.Date(d.Year, time.Month(d.Month), d.Day, d.Hour, d.Minute, d.Second, d.Nanosecond, time.UTC)
	return t.Add(-time.Duration(d.Offset) * time.Second)
}

// fromTime is the DateTime of t (in UTC) at precision, offset +0000.
func fromTime(t time.Time, pr hl7v2.Precision) hl7v2.DateTime {
	return hl7v2.DateTime{
		Year: t.Year(), Month: int(t.Month()), Day: t.Day(),
		Hour: t.Hour(), Minute: t.Minute(), Second: t.Second(), Nanosecond: t.Nanosecond(),
		Precision: pr, HasOffset: true,
	}
}

// truncate drops the parts of d finer than pr.
func truncate(d hl7v2.DateTime, pr hl7v2.Precision) hl7v2.DateTime {
	d.Precision = pr
	if pr < hl7v2.PrecisionFraction {
		d.Nanosecond = 0
	}
	if pr < hl7v2.PrecisionSecond {
		d.Second = 0
	}
	if pr < hl7v2.PrecisionMinute {
		d.Minute = 0
	}
	if pr < hl7v2.PrecisionHour {
		d.Hour = 0
	}
	if pr < hl7v2.PrecisionDay {
		d.Day = 1
	}
	if pr < hl7v2.PrecisionMonth {
		d.Month = 1
	}
	return d
}

// formatDTM writes d in the DTM grammar at its precision, the fraction
// with frac digits (1 to 4), the offset as +HHMM when it has one.
func formatDTM(b []byte, d hl7v2.DateTime, frac int) []byte {
	b = appendDigits(b, d.Year, 4)
	parts := [...]struct {
		pr hl7v2.Precision
		v  int
	}{{hl7v2.PrecisionMonth, d.Month}, {hl7v2.PrecisionDay, d.Day}, {hl7v2.PrecisionHour, d.Hour}, {hl7v2.PrecisionMinute, d.Minute}, {hl7v2.PrecisionSecond, d.Second}}
	for _, part := range parts {
		if d.Precision < part.pr {
			break
		}
		b = appendDigits(b, part.v, 2)
	}
	if d.Precision >= hl7v2.PrecisionFraction && frac > 0 {
		frac = min(frac, 4)
		ns := d.Nanosecond
		for i := frac; i < 9; i++ {
			ns /= 10
		}
		b = append(b, '.')
		b = appendDigits(b, ns, frac)
	}
	if d.HasOffset {
		sign, off := byte('+'), d.Offset
		if off < 0 {
			sign, off = '-', -off
		}
		b = append(b, sign)
		b = appendDigits(b, off/3600, 2)
		b = appendDigits(b, off%3600/60, 2)
	}
	return b
}

// setPlain stores ASCII text at p as wire bytes when it holds none of the
// message's delimiters (the usual case: digits and signs), skipping the
// encode-and-escape of SetValue; otherwise it goes through SetValue.
func setPlain(m *hl7v2.Message, p hl7v2.Path, v []byte) error {
	d := m.Delimiters()
	if bytes.IndexByte(v, d.Field) < 0 && bytes.IndexByte(v, d.Component) < 0 && bytes.IndexByte(v, d.Repetition) < 0 &&
		bytes.IndexByte(v, d.Subcomponent) < 0 && bytes.IndexByte(v, d.Escape) < 0 && (d.Truncation == 0 || bytes.IndexByte(v, d.Truncation) < 0) {
		return m.SetRawValue(p, v)
	}
	return m.SetValue(p, string(v))
}

// appendDigits appends v in decimal, zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [10]byte
	i := len(d)
	for v > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[i:]...)
}
