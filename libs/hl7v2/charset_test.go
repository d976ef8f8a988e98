package hl7v2

import (
	"errors"
	"testing"

	"golang.org/x/text/encoding/charmap"
)

func TestCharsets(t *testing.T) {
	tests := []struct {
		name, msh18, raw, want, used string
		p                            *Parser
	}{
		{"undeclared utf-8", "", "Ren\xc3\xa9e", "Renée", "UTF-8", nil},
		{"ascii", "ASCII", "Renee", "Renee", "UTF-8", nil},
		{"utf-8", "UNICODE UTF-8", "\xe6\xbc\xa2", "漢", "UTF-8", nil},
		{"8859/1", "8859/1", "Ren\xe9e", "Renée", "8859/1", nil},
		{"8859/15 euro", "8859/15", "\xa4", "€", "8859/15", nil},
		{"8859/2", "8859/2", "\xb1", "ą", "8859/2", nil},
		{"8859/7", "8859/7", "\xe1", "α", "8859/7", nil},
		{"declared ascii, sends cp1252", "ASCII", "\x93q\x94", "“q”", "UTF-8", nil},
		{"unknown declaration uses fallback", "EBCDIC", "\xe9", "é", "WINDOWS-1252", nil},
		{"configured fallback", "", "\xe9", "й", "UTF-8", NewParser(WithFallbackCharset("WINDOWS-1251", charmap.Windows1251))},
		{"no fallback", "", "\xe9", "\uFFFD", "UTF-8", NewParser(WithFallbackCharset("", nil))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			if p == nil {
				p = NewParser()
			}
			m, err := p.Parse(msg(`MSH|^~\&|A|B|C|D|20240101||ADT^A08|X|P|2.5|||||XX|`+tt.msh18, "PID|1||||"+tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := m.Get("PID-5"); got != tt.want {
				t.Errorf("PID-5 = %q, want %q", got, tt.want)
			}
			if m.Charset().Used != tt.used || m.Charset().Declared != tt.msh18 {
				t.Errorf("charset = %+v", m.Charset())
			}
			if v := m.Value(Path{Segment: "PID", Field: 5}); string(v.Raw()) != tt.raw {
				t.Errorf("raw bytes not kept: %q", v.Raw())
			}
		})
	}
}

func TestLookupCharset(t *testing.T) {
	if e, err := LookupCharset(" unicode utf-8 "); err != nil || e != nil {
		t.Errorf("utf-8: %v %v", e, err)
	}
	if e, err := LookupCharset("8859/1"); err != nil || e != charmap.ISO8859_1 {
		t.Errorf("8859/1: %v %v", e, err)
	}
	if _, err := LookupCharset("UNICODE UTF-16"); !errors.Is(err, ErrCharset) {
		t.Errorf("utf-16 must be refused: ER7 delimiters are single bytes")
	}
}

func TestLookupCharsetErrorQuotesNoName(t *testing.T) {
	_, err := LookupCharset("ZZTESTNAME99887766")
	if !errors.Is(err, ErrCharset) {
		t.Fatalf("err = %v", err)
	}
	assertNoSentinel(t, "LookupCharset error", err.Error())
}
