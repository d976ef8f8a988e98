package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Frame bytes.
const (
	StartBlock byte = 0x0B
	EndBlock   byte = 0x1C
	CR         byte = 0x0D
	// ACKByte and NAKByte are the one-byte payloads of MLLP release 2 commit
	// acknowledgements.
	ACKByte byte = 0x06
	NAKByte byte = 0x15
)

// DefaultMaxFrameSize bounds a frame when no limit is configured: larger
// than any lab report with embedded PDFs we have seen, small enough that a
// misbehaving sender cannot exhaust memory.
const DefaultMaxFrameSize = 16 << 20

// Reader reads MLLP frames from a stream.
type Reader struct {
	br  *bufio.Reader
	max int
	// skipped counts bytes discarded outside frames.
	skipped int64
	// crPending is set when a frame ended without its CR being available
	// yet; a CR arriving first next time belongs to that frame and is not
	// counted as skipped.
	crPending bool
	// OnFrameStart, when set, is called as a start block is read; the
	// server uses it to switch from the idle to the read timeout.
	OnFrameStart func()
	// RejectForeign makes ReadFrame fail with a *NotMLLPError (RejectTLS,
	// RejectHTTP) when the stream opens with a TLS record or an HTTP
	// request line instead of a start block. Default false: the client
	// reading replies leaves it off.
	RejectForeign bool
	// MaxJunk, when positive, bounds the bytes skipped while waiting for a
	// start block (at the start or between two frames): one more is a
	// *NotMLLPError (RejectNoStartBlock). Zero: no bound.
	MaxJunk int

	// started is set by the first start block: the preamble check looks
	// only at the bytes before it.
	started bool
}

// foreignPreambles are how other protocols open a connection. A client of
// one of them never sends a start block we could wait for (or, worse, its
// binary handshake happens to contain 0x0B…0x1C and would be read as a
// message), so the connection is closed as soon as one is recognised.
var foreignPreambles = []struct {
	prefix string
	reason string
}{
	// A TLS record of type handshake (22) with protocol major version 3:
	// every SSL 3.0 to TLS 1.3 ClientHello.
	{"\x16\x03", RejectTLS},
	{"GET ", RejectHTTP}, {"POST ", RejectHTTP}, {"PUT ", RejectHTTP}, {"HEAD ", RejectHTTP},
	{"OPTIONS ", RejectHTTP}, {"DELETE ", RejectHTTP}, {"PATCH ", RejectHTTP}, {"CONNECT ", RejectHTTP},
	{"TRACE ", RejectHTTP},
	// The HTTP/2 connection preface (RFC 9113 section 3.4).
	{"PRI * HTTP", RejectHTTP},
}

// maxPreamble is the longest entry of foreignPreambles.
const maxPreamble = len("PRI * HTTP")

// foreignPreamble reports which protocol head (the first bytes of a
// stream, all junk so far) opens like, and whether more bytes could still
// make it match one (more = false, reason = "": it is none of them).
func foreignPreamble(head []byte) (reason string, more bool) {
	for _, p := range foreignPreambles {
		switch {
		case len(head) >= len(p.prefix) && string(head[:len(p.prefix)]) == p.prefix:
			return p.reason, false
		case len(head) < len(p.prefix) && bytes.HasPrefix([]byte(p.prefix), head):
			more = true
		}
	}
	return "", more
}

// NewReader returns a Reader that refuses frames larger than maxSize bytes
// (DefaultMaxFrameSize when maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxFrameSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// Skipped returns how many bytes were discarded because they were outside a
// frame.
func (r *Reader) Skipped() int64 { return r.skipped }

// ReadFrame returns the payload of the next frame in a new slice. It returns
// io.EOF when the stream ends between frames, ErrTruncated when it ends
// inside one, a *FrameTooLargeError when the payload exceeds the limit and
// a *NotMLLPError when RejectForeign or MaxJunk says the stream is not
// MLLP; after the last two the caller should close the connection.
func (r *Reader) ReadFrame() ([]byte, error) {
	if err := r.skipToStart(); err != nil {
		return nil, err
	}
	var frame []byte
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		// A start block inside a frame means the sender gave up on the
		// previous frame and began again; keep the new one.
		if i := lastIndex(chunk, StartBlock); i >= 0 {
			r.skipped += int64(len(frame) + i + 1)
			frame = frame[:0]
			chunk = chunk[i+1:]
		}
		if len(frame)+len(chunk) > r.max+1 {
			head := append(frame, chunk...)
			if len(head) > HeadSize {
				head = head[:HeadSize]
			}
			return nil, &FrameTooLargeError{Limit: r.max, Head: head}
		}
		frame = append(frame, chunk...)
		switch {
		case err == nil:
			frame = frame[:len(frame)-1] // drop the end block
			r.consumeCR()
			return frame, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, ErrTruncated
		default:
			return nil, err
		}
	}
}

func (r *Reader) skipToStart() error {
	// Only the bytes before the stream's first start block can be another
	// protocol's preamble; head collects them while they still could.
	sniff := r.RejectForeign && !r.started
	var head [maxPreamble]byte
	n, gap := 0, 0
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if b == StartBlock {
			r.crPending = false
			r.started = true
			if r.OnFrameStart != nil {
				r.OnFrameStart()
			}
			return nil
		}
		if b == CR && r.crPending {
			r.crPending = false
			continue
		}
		r.crPending = false
		r.skipped++
		gap++
		if sniff {
			head[n] = b
			n++
			reason, more := foreignPreamble(head[:n])
			if reason != "" {
				return &NotMLLPError{Reason: reason}
			}
			sniff = more && n < len(head)
		}
		if r.MaxJunk > 0 && gap > r.MaxJunk {
			return &NotMLLPError{Reason: RejectNoStartBlock}
		}
	}
}

// consumeCR takes the CR after an end block if it has already arrived. It
// never waits for it: a sender that omits the CR would otherwise hang
// waiting for an ACK we would not send.
func (r *Reader) consumeCR() {
	if r.br.Buffered() == 0 {
		r.crPending = true
		return
	}
	if b, err := r.br.Peek(1); err == nil && b[0] == CR {
		_, _ = r.br.ReadByte()
	}
}

func lastIndex(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// AppendFrame appends payload framed for MLLP to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, payload...)
	return append(dst, EndBlock, CR)
}

// WriteFrame writes payload as one frame with a single Write call, so frames
// from concurrent writers sharing a locked writer never interleave.
func WriteFrame(w io.Writer, payload []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, len(payload)+3), payload))
	return err
}
