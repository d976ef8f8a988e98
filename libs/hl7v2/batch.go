package hl7v2

import (
	"bytes"
	"fmt"
	"strconv"
)

// File is the content of a batch file: an optional FHS/FTS envelope around
// batches, each an optional BHS/BTS envelope around messages. Input with
// neither (one message, or several MSH in a row) is a File with one batch
// and no headers, so every input reads the same way.
type File struct {
	// Header and Trailer are the FHS and FTS segments; Present() is false
	// when the file has none.
	Header, Trailer Segment
	Batches         []Batch
}

// Batch is one BHS...BTS group of messages.
type Batch struct {
	// Header and Trailer are the BHS and BTS segments, zero when absent.
	Header, Trailer Segment
	Messages        []*Message
}

// Present reports whether the segment exists (the zero Segment does not).
func (s Segment) Present() bool { return len(s.b) > 0 }

// Messages returns every message of the file in order.
func (f *File) Messages() []*Message {
	var out []*Message
	for _, b := range f.Batches {
		out = append(out, b.Messages...)
	}
	return out
}

// Bytes returns the file in wire form, every segment ended by CR. For a
// parsed file it equals the input after the normalisation Message.Bytes
// describes.
func (f *File) Bytes() []byte {
	var out []byte
	seg := func(s Segment) {
		if s.Present() {
			out = append(append(out, s.raw...), '\r')
		}
	}
	seg(f.Header)
	for _, b := range f.Batches {
		seg(b.Header)
		for _, m := range b.Messages {
			out = m.AppendTo(out)
		}
		seg(b.Trailer)
	}
	seg(f.Trailer)
	return out
}

// ParseBatch parses a file or batch with the default options. See
// Parser.ParseBatch.
func ParseBatch(data []byte) (*File, error) { return defaultParser.ParseBatch(data) }

// ParseBatch splits data into batches and messages and parses each message.
// Headers and trailers may be missing (senders often leave them out), but
// what is there must nest: FHS only first, FTS only last (it also closes a batch
// left open), no BHS inside an open batch, no segment other than a header before the first MSH of a
// batch. A BTS-1 or FTS-1 that is present must equal the number of messages
// in its batch or of batches in the file. An error names the segment.
func (p *Parser) ParseBatch(data []byte) (*File, error) {
	data = bytes.TrimPrefix(data, bom)
	term := terminator(data)
	sc := scanner{data: data, term: term}
	f := &File{}
	var (
		cur      *Batch // the batch messages are added to, nil between batches
		explicit bool   // cur was opened by a BHS (not yet closed by a BTS)
		msgStart = -1   // offset of the current message's MSH
		nseg     int
		closed   bool // FTS seen
	)
	fail := func(off int, format string, args ...any) (*File, error) {
		return nil, &ParseError{Err: ErrBatch, Segment: nseg, Offset: off, Detail: fmt.Sprintf(format, args...)}
	}
	endMessage := func(end int) error {
		if msgStart < 0 {
			return nil
		}
		m, err := p.parse(data[msgStart:end], term)
		if err != nil {
			return fmt.Errorf("message %d of batch %d: %w", len(cur.Messages)+1, len(f.Batches)+1, err)
		}
		cur.Messages = append(cur.Messages, m)
		msgStart = -1
		return nil
	}
	closeBatch := func() {
		if cur != nil {
			f.Batches = append(f.Batches, *cur)
			cur, explicit = nil, false
		}
	}
	for {
		raw, off, ok := sc.next()
		if !ok {
			break
		}
		nseg++
		if closed {
			return fail(off, "segment after FTS")
		}
		if len(raw) < 3 || !validSegmentName(raw[:3]) || (len(raw) > 3 && isAlnum(raw[3])) {
			return nil, &ParseError{Err: ErrSegmentName, Segment: nseg, Offset: off}
		}
		name := string(raw[:3])
		switch name {
		case "FHS":
			if nseg != 1 {
				return fail(off, "FHS is not the first segment")
			}
			seg, err := headerSegment(raw)
			if err != nil {
				return nil, delimiterParseError(err, name, 1, nseg, off)
			}
			f.Header = seg
		case "FTS":
			if err := endMessage(off); err != nil {
				return nil, err
			}
			// An FTS also closes a batch whose BTS is missing: trailers are
			// optional, and python-hl7 and HAPI read such files the same way.
			closeBatch()
			f.Trailer = trailerSegment(raw)
			if err := checkCount(f.Trailer, len(f.Batches), "FTS-1 file batch count", "batches"); err != nil {
				return fail(off, "%v", err)
			}
			closed = true
		case "BHS":
			if explicit {
				return fail(off, "BHS inside a batch that has no BTS")
			}
			if err := endMessage(off); err != nil {
				return nil, err
			}
			closeBatch()
			seg, err := headerSegment(raw)
			if err != nil {
				return nil, delimiterParseError(err, name, 1, nseg, off)
			}
			cur, explicit = &Batch{Header: seg}, true
		case "BTS":
			if err := endMessage(off); err != nil {
				return nil, err
			}
			if cur == nil {
				// A BTS with neither BHS nor messages is an empty batch.
				cur = &Batch{}
			}
			cur.Trailer = trailerSegment(raw)
			if err := checkCount(cur.Trailer, len(cur.Messages), "BTS-1 batch message count", "messages"); err != nil {
				return fail(off, "%v", err)
			}
			closeBatch()
		case "MSH":
			if err := endMessage(off); err != nil {
				return nil, err
			}
			if cur == nil {
				cur = &Batch{}
			}
			msgStart = off
		default:
			if msgStart < 0 {
				return fail(off, "%s segment outside a message (no MSH before it)", name)
			}
		}
	}
	if err := endMessage(len(data)); err != nil {
		return nil, err
	}
	closeBatch()
	return f, nil
}

// headerSegment indexes an FHS or BHS with the delimiters it declares.
func headerSegment(raw []byte) (Segment, error) {
	d, _, err := delimitersFrom(raw)
	if err != nil {
		return Segment{}, err
	}
	c := &codec{d: d, charset: Charset{Used: "UTF-8"}}
	return indexSegment(raw, d.Field, c, make([]int32, 0, bytes.Count(raw, []byte{d.Field})+2))
}

// trailerSegment indexes an FTS or BTS, whose field separator is the byte
// after its ID.
func trailerSegment(raw []byte) Segment {
	fs := byte('|')
	if len(raw) > 3 {
		fs = raw[3]
	}
	d := DefaultDelimiters
	d.Field = fs
	c := &codec{d: d, charset: Charset{Used: "UTF-8"}}
	seg, _ := indexSegment(raw, fs, c, make([]int32, 0, bytes.Count(raw, []byte{fs})+2))
	return seg
}

// checkCount compares a trailer's first field, when present, with n.
func checkCount(trailer Segment, n int, what, unit string) error {
	v := trailer.Field(1).Comp(1)
	if v.IsEmpty() {
		return nil
	}
	want, err := strconv.Atoi(string(v.Raw()))
	if err != nil {
		// The trailer's value is not quoted: errors reach logs and ACKs.
		return fmt.Errorf("%s is not a number (%d characters)", what, len(v.Raw()))
	}
	if want != n {
		return fmt.Errorf("%s does not match: there are %d %s", what, n, unit)
	}
	return nil
}
