package mllp

import (
	"bufio"
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
// inside one and a *FrameTooLargeError when the payload exceeds the limit;
// after that error the stream is positioned inside the frame, so the caller
// should close the connection.
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
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if b == StartBlock {
			r.crPending = false
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
