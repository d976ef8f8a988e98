package hl7v2

import (
	"errors"
	"testing"
)

func TestParserConfig(t *testing.T) {
	// MSH-3 holds 0x8A, which is not UTF-8: the fallback decides what it
	// reads as.
	msg := []byte("MSH|^~\\&|A\x8A|F|B|G|20240101||ADT^A01|1|P|2.5\r")
	tests := []struct {
		fallback string
		want     string // MSH-3 as decoded
		err      bool
	}{
		{"", "A\u0160", false},             // the default, windows-1252: Š
		{"WINDOWS-1252", "A\u0160", false}, // the same, named
		{"cp1252", "A\u0160", false},       // an alias, in lower case
		{"8859/1", "A\u008A", false},       // ISO-8859-1: a C1 control
		{"none", "A\uFFFD", false},
		{" NONE ", "A\uFFFD", false},
		{"UTF-8", "", true}, // what is tried first cannot be the fallback
		{"EBCDIC", "", true},
	}
	for _, tt := range tests {
		c := ParserConfig{FallbackCharset: tt.fallback}
		p, err := c.NewParser()
		if tt.err {
			if err == nil || !errors.Is(err, ErrCharset) || c.Validate() == nil {
				t.Errorf("%q: error %v, want ErrCharset from NewParser and Validate", tt.fallback, err)
			}
			continue
		}
		if err != nil || c.Validate() != nil {
			t.Errorf("%q: %v", tt.fallback, err)
			continue
		}
		m, err := p.Parse(msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header(3); got != tt.want {
			t.Errorf("%q: MSH-3 %q, want %q", tt.fallback, got, tt.want)
		}
	}
}
