package hl7v2

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
)

// Parser parses messages with a fixed set of options. It holds no state
// between calls and is safe for concurrent use.
type Parser struct {
	fallback     encoding.Encoding
	fallbackName string
}

// Option configures a Parser.
type Option func(*Parser)

// WithFallbackCharset sets the character set used when MSH-18 names one this
// package does not know, and for bytes that are not valid UTF-8 in a message
// declared (or assumed) ASCII or UTF-8. Default: windows-1252, which is what
// such bytes nearly always are. A nil encoding turns invalid bytes into
// U+FFFD instead.
func WithFallbackCharset(name string, e encoding.Encoding) Option {
	return func(p *Parser) { p.fallback, p.fallbackName = e, name }
}

// NewParser returns a Parser with the given options.
func NewParser(opts ...Option) *Parser {
	p := &Parser{fallback: charmap.Windows1252, fallbackName: "WINDOWS-1252"}
	for _, o := range opts {
		o(p)
	}
	return p
}

// ParserConfig is the parser's configuration as a configuration file holds
// it (hl7bus: the parser section). One value configures every stage of a
// process, so what ingress acknowledged, parse validated and transform
// projected were decoded alike.
type ParserConfig struct {
	// FallbackCharset is WithFallbackCharset's character set, by an HL7
	// table 0211 name or a common alias (WINDOWS-1252, ISO-8859-1); "none"
	// turns invalid bytes into U+FFFD. Default (empty) WINDOWS-1252.
	FallbackCharset string `yaml:"fallback_charset"`
}

// FallbackNone is the ParserConfig.FallbackCharset that disables the
// fallback.
const FallbackNone = "none"

// DefaultFallbackCharset is the fallback NewParser uses: senders that
// declare nothing (or ASCII) and send 8-bit text mostly send Windows-1252.
const DefaultFallbackCharset = "WINDOWS-1252"

// WithDefaults returns c with the fallback in force named, so a printed
// configuration shows it.
func (c ParserConfig) WithDefaults() ParserConfig {
	if strings.TrimSpace(c.FallbackCharset) == "" {
		c.FallbackCharset = DefaultFallbackCharset
	}
	return c
}

// Options returns the options c stands for; the error names the key
// (fallback_charset) when c is invalid.
func (c ParserConfig) Options() ([]Option, error) {
	name := strings.TrimSpace(c.FallbackCharset)
	switch {
	case name == "":
		return nil, nil
	case strings.EqualFold(name, FallbackNone):
		return []Option{WithFallbackCharset("", nil)}, nil
	}
	e, err := LookupCharset(name)
	if err != nil {
		return nil, fmt.Errorf("fallback_charset: %w", err)
	}
	if e == nil {
		// UTF-8 is what is tried first: falling back to it is no
		// fallback, and would leave invalid bytes invalid.
		return nil, fmt.Errorf("fallback_charset: %w: UTF-8 cannot be the fallback (it is what is tried first); use none for U+FFFD", ErrCharset)
	}
	return []Option{WithFallbackCharset(strings.ToUpper(name), e)}, nil
}

// Validate reports whether c can build a parser.
func (c ParserConfig) Validate() error {
	_, err := c.Options()
	return err
}

// NewParser returns the parser c configures.
func (c ParserConfig) NewParser() (*Parser, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	return NewParser(opts...), nil
}

var defaultParser = NewParser()

// Parse parses one message with the default options. See Parser.Parse.
func Parse(data []byte) (*Message, error) { return defaultParser.Parse(data) }

var bom = []byte{0xEF, 0xBB, 0xBF}

// Parse parses one message. data must hold exactly one message: a second MSH
// is an error (use ParseBatch for files and batches). The Message refers to
// data, which must not be changed afterwards.
func (p *Parser) Parse(data []byte) (*Message, error) {
	data = bytes.TrimPrefix(data, bom)
	return p.parse(data, terminator(data))
}

// parse parses one message whose segments end with term.
func (p *Parser) parse(data []byte, term byte) (*Message, error) {
	sc := scanner{data: data, term: term}
	first, start, ok := sc.next()
	if !ok || !bytes.HasPrefix(first, []byte("MSH")) {
		return nil, &ParseError{Err: ErrNoMSH}
	}
	sc.pos = start
	d, _, err := delimitersFrom(first)
	if err != nil {
		return nil, delimiterParseError(err, "MSH", 1, 1, start)
	}
	c := &codec{d: d}
	// Sizing both slices up front keeps a message at two allocations for
	// its index however many segments and fields it has.
	nseg := bytes.Count(data, []byte{term}) + 1
	nfs := bytes.Count(data, []byte{d.Field})
	m := &Message{c: c, segs: make([]Segment, 0, nseg)}
	pool := make([]int32, 0, nfs+2*nseg)

	for {
		raw, segStart, ok := sc.next()
		if !ok {
			break
		}
		seg, err := indexSegment(raw, d.Field, c, pool)
		if err != nil {
			return nil, &ParseError{Err: err, Segment: len(m.segs) + 1, Offset: segStart,
				// The content is not quoted: errors reach logs and DLQ
				// reasons, which must never carry PHI.
				Detail: "a segment must start with a 3-character ID of upper-case letters and digits"}
		}
		if n := len(seg.b); n <= cap(pool) {
			pool = pool[n:cap(pool)]
		} else {
			pool = nil
		}
		if len(m.segs) > 0 && seg.Is("MSH") {
			return nil, &ParseError{Err: ErrBatch, Segment: len(m.segs) + 1, Offset: segStart,
				Detail: "a second MSH starts another message; parse it as a batch", Location: Location{Segment: "MSH", Occurrence: 2}}
		}
		m.segs = append(m.segs, seg)
	}
	c.charset = p.resolveCharset(m.segs[0].Field(18).Rep(1).Comp(1).Raw())
	return m, nil
}

// scanner splits data into segments by the terminator rule of the package
// documentation, skipping blank lines.
type scanner struct {
	data []byte
	pos  int
	term byte
}

// next returns the next non-blank segment and its offset in data.
func (s *scanner) next() ([]byte, int, bool) {
	for s.pos < len(s.data) {
		start := s.pos
		end := bytes.IndexByte(s.data[start:], s.term)
		if end < 0 {
			end = len(s.data)
			s.pos = end
		} else {
			end += start
			s.pos = end + 1
			if s.term == '\r' && s.pos < len(s.data) && s.data[s.pos] == '\n' {
				s.pos++
			}
		}
		if raw := s.data[start:end]; !isBlank(raw) {
			return raw, start, true
		}
	}
	return nil, len(s.data), false
}

// terminator returns the segment terminator data uses.
func terminator(data []byte) byte {
	if bytes.IndexByte(data, '\r') >= 0 {
		return '\r'
	}
	return '\n'
}

// indexSegment records the field boundaries of raw, appending them to pool
// (whose spare capacity the caller sized).
func indexSegment(raw []byte, fs byte, c *codec, pool []int32) (Segment, error) {
	nameEnd := bytes.IndexByte(raw, fs)
	if nameEnd < 0 {
		nameEnd = len(raw)
	}
	if !validSegmentName(raw[:nameEnd]) {
		return Segment{}, ErrSegmentName
	}
	b := append(pool[:0:cap(pool)], 0)
	for i := nameEnd; i < len(raw); {
		b = append(b, int32(i+1))
		j := bytes.IndexByte(raw[i+1:], fs)
		if j < 0 {
			break
		}
		i += j + 1
	}
	b = append(b, int32(len(raw)+1))
	return Segment{c: c, raw: raw, b: b[:len(b):len(b)]}, nil
}

// validSegmentName accepts the three upper-case letters or digits the
// standard prescribes; Z-segments and unknown IDs pass, as they must.
func validSegmentName(n []byte) bool {
	if len(n) != 3 {
		return false
	}
	for _, ch := range n {
		if !(ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

func isBlank(b []byte) bool {
	for _, ch := range b {
		if ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != 0x1A {
			return false
		}
	}
	return true
}
