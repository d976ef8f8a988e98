package hl7v2

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// Charset says how a message's bytes become text.
type Charset struct {
	// Declared is MSH-18 (first repetition) as the sender wrote it, "" when
	// absent.
	Declared string
	// Used names the decoding actually applied: "UTF-8" for ASCII, UTF-8 and
	// undeclared messages, the declared set when it is supported, or the
	// fallback's name.
	Used string
	// enc is nil for ASCII/UTF-8, which need no conversion when valid.
	enc      encoding.Encoding
	fallback encoding.Encoding
	fbName   string
}

// Encoding returns the x/text encoding that decodes the message's values, or
// nil when they are UTF-8 (including ASCII).
func (c Charset) Encoding() encoding.Encoding { return c.enc }

// decode turns wire bytes into a Go string. Bytes that are not valid in a
// message declared (or assumed) UTF-8/ASCII are decoded with the fallback,
// because the usual reason is a sender writing windows-1252 and calling it
// ASCII; the raw bytes stay available through Value.Raw either way.
func (c Charset) decode(b []byte) string {
	if c.enc == nil {
		if utf8.Valid(b) {
			return string(b)
		}
		if c.fallback != nil {
			if s, err := c.fallback.NewDecoder().Bytes(b); err == nil {
				return string(s)
			}
		}
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	s, err := c.enc.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(s)
}

// encode turns text into wire bytes in the message's character set.
func (c Charset) encode(s string) ([]byte, error) {
	if c.enc == nil {
		return []byte(s), nil
	}
	b, err := c.enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("encoding value in %s: %w", c.Used, err)
	}
	return b, nil
}

// charsets maps HL7 table 0211 names (upper-cased, spaces kept) to
// encodings. nil means UTF-8, which is also what ASCII decodes as.
// ISO IR87/IR159 (JIS with ISO 2022 switching) and UTF-16/32 are absent on
// purpose: their bytes can contain our delimiters, so ER7 cannot carry them
// as a default character set.
var charsets = map[string]encoding.Encoding{
	"ASCII":           nil,
	"UNICODE":         nil, // 2.5 and earlier: "UNICODE" meant UTF-8 in practice
	"UNICODE UTF-8":   nil,
	"UTF-8":           nil,
	"8859/1":          charmap.ISO8859_1,
	"8859/2":          charmap.ISO8859_2,
	"8859/3":          charmap.ISO8859_3,
	"8859/4":          charmap.ISO8859_4,
	"8859/5":          charmap.ISO8859_5,
	"8859/6":          charmap.ISO8859_6,
	"8859/7":          charmap.ISO8859_7,
	"8859/8":          charmap.ISO8859_8,
	"8859/9":          charmap.ISO8859_9,
	"8859/10":         charmap.ISO8859_10,
	"8859/13":         charmap.ISO8859_13,
	"8859/14":         charmap.ISO8859_14,
	"8859/15":         charmap.ISO8859_15,
	"8859/16":         charmap.ISO8859_16,
	"GB 18030-2000":   simplifiedchinese.GB18030,
	"BIG-5":           traditionalchinese.Big5,
	"KS X 1001":       korean.EUCKR,
	"WINDOWS-1252":    charmap.Windows1252, // not in table 0211, but senders write it
	"CP1252":          charmap.Windows1252,
	"WINDOWS-1250":    charmap.Windows1250,
	"WINDOWS-1251":    charmap.Windows1251,
	"ISO-8859-1":      charmap.ISO8859_1,
	"ISO-8859-15":     charmap.ISO8859_15,
	"ISO_8859-1:1987": charmap.ISO8859_1,
}

// LookupCharset returns the encoding for an HL7 table 0211 character set name
// (or one of the common non-HL7 spellings senders use: windows-1252,
// ISO-8859-1). A nil encoding with a nil error means UTF-8.
func LookupCharset(name string) (encoding.Encoding, error) {
	e, ok := charsets[strings.ToUpper(strings.TrimSpace(name))]
	if !ok {
		// The name is not quoted: it usually comes from MSH-18, and errors
		// of this package carry no message content.
		return nil, fmt.Errorf("%w: a name of %d characters that is not in HL7 table 0211 or a known alias", ErrCharset, len(name))
	}
	return e, nil
}

// resolveCharset picks the decoding for a declared MSH-18 value.
func (p *Parser) resolveCharset(declared []byte) Charset {
	c := Charset{Declared: string(declared), Used: "UTF-8", fallback: p.fallback, fbName: p.fallbackName}
	if len(declared) == 0 {
		return c
	}
	e, err := LookupCharset(c.Declared)
	if err != nil {
		// An unknown declaration is reported by validation; decoding with
		// the fallback keeps the content readable meanwhile.
		if p.fallback != nil {
			c.enc, c.Used = p.fallback, p.fallbackName
		}
		return c
	}
	if e != nil {
		c.enc, c.Used = e, strings.ToUpper(strings.TrimSpace(c.Declared))
	}
	return c
}
