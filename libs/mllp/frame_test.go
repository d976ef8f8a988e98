package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		frames  []string
		skipped int64
		final   error
	}{
		{"one", "\x0bMSH|a\x1c\r", []string{"MSH|a"}, 0, io.EOF},
		{"two in one read", "\x0bA\x1c\r\x0bB\x1c\r", []string{"A", "B"}, 0, io.EOF},
		{"garbage before", "xx\r\n\x0bA\x1c\r", []string{"A"}, 4, io.EOF},
		{"garbage between", "\x0bA\x1c\rjunk\x0bB\x1c\r", []string{"A", "B"}, 4, io.EOF},
		{"no CR after end block", "\x0bA\x1c\x0bB\x1c", []string{"A", "B"}, 0, io.EOF},
		{"LF instead of CR", "\x0bA\x1c\n\x0bB\x1c\r", []string{"A", "B"}, 1, io.EOF},
		{"empty frame", "\x0b\x1c\r", []string{""}, 0, io.EOF},
		{"restart inside frame", "\x0bAB\x0bC\x1c\r", []string{"C"}, 3, io.EOF},
		{"truncated", "\x0bA\x1c\r\x0bpartial", []string{"A"}, 0, ErrTruncated},
		{"nothing", "", nil, 0, io.EOF},
		{"only garbage", "abc", nil, 3, io.EOF},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(bytes.NewReader([]byte(tt.in))), 0)
				var got []string
				var err error
				for {
					var f []byte
					if f, err = r.ReadFrame(); err != nil {
						break
					}
					got = append(got, string(f))
				}
				if !errors.Is(err, tt.final) {
					t.Errorf("final err = %v, want %v", err, tt.final)
				}
				if len(got) != len(tt.frames) {
					t.Fatalf("frames = %q, want %q", got, tt.frames)
				}
				for i := range got {
					if got[i] != tt.frames[i] {
						t.Fatalf("frames = %q, want %q", got, tt.frames)
					}
				}
				if r.Skipped() != tt.skipped {
					t.Errorf("skipped = %d, want %d", r.Skipped(), tt.skipped)
				}
			})
		}
	}
}

func TestReadFrameTooLarge(t *testing.T) {
	payload := append([]byte("MSH|^~\\&|A|B\r"), bytes.Repeat([]byte("x"), 200<<10)...)
	r := NewReader(bytes.NewReader(AppendFrame(nil, payload)), 100<<10)
	_, err := r.ReadFrame()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if tl.Limit != 100<<10 || len(tl.Head) != HeadSize || !bytes.HasPrefix(tl.Head, []byte("MSH|")) {
		t.Errorf("limit %d head %d %q", tl.Limit, len(tl.Head), tl.Head[:8])
	}
	// Exactly at the limit is fine.
	r = NewReader(bytes.NewReader(AppendFrame(nil, payload[:1000])), 1000)
	if f, err := r.ReadFrame(); err != nil || len(f) != 1000 {
		t.Errorf("at limit: %d %v", len(f), err)
	}
	r = NewReader(bytes.NewReader(AppendFrame(nil, payload[:1001])), 1000)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("one over the limit: %v", err)
	}
}

func TestWriteFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range []string{"MSH|1", "", "MSH|2\rPID|1\r"} {
		if err := WriteFrame(&buf, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, 0)
	for _, want := range []string{"MSH|1", "", "MSH|2\rPID|1\r"} {
		got, err := r.ReadFrame()
		if err != nil || string(got) != want {
			t.Fatalf("got %q %v want %q", got, err, want)
		}
	}
}

// FuzzReadFrame checks that any byte stream yields frames or errors without
// panicking, that frames never exceed the limit, and that frames never hold
// the framing bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x0bMSH|a\x1c\r"))
	f.Add([]byte("junk\x0bA\x1c\x0bB\x1c\rtrail"))
	f.Add([]byte("\x0b\x0b\x1c\x1c\r\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		r := NewReader(bytes.NewReader(in), limit)
		for i := 0; i < len(in)+1; i++ {
			fr, err := r.ReadFrame()
			if err != nil {
				return
			}
			if len(fr) > limit {
				t.Fatalf("frame of %d bytes over limit %d", len(fr), limit)
			}
			if bytes.IndexByte(fr, StartBlock) >= 0 || bytes.IndexByte(fr, EndBlock) >= 0 {
				t.Fatalf("frame %q holds framing bytes", fr)
			}
		}
		t.Fatalf("more frames than input bytes")
	})
}

func TestReadFrameRejectsForeignStreams(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reason string // "" when the frame must be read
	}{
		{"TLS record", "\x16\x03\x01\x00\x10\x0bMSH\x1c\r", RejectTLS},
		{"HTTP GET", "GET / HTTP/1.1\r\n", RejectHTTP},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n", RejectHTTP},
		{"TRACE", "TRACE / HTTP/1.1\r\n", RejectHTTP},
		{"too much junk", strings.Repeat("z", 33), RejectNoStartBlock},
		{"junk at the bound", strings.Repeat("z", 32) + "\x0bA\x1c\r", ""},
		{"0x16 not followed by 0x03", "\x16\x16\x0bA\x1c\r", ""},
		{"GET without its space", "GETX\x0bA\x1c\r", ""},
		{"lowercase get", "get \x0bA\x1c\r", ""},
		{"NUL and 0xFF junk", "\x00\xff\x0bA\x1c\r", ""},
		{"a preamble between frames is junk, not a protocol", "\x0bA\x1c\rGET \x0bB\x1c\r", ""},
		{"too much junk between frames", "\x0bA\x1c\r" + strings.Repeat("z", 33) + "\x0bB\x1c\r", RejectNoStartBlock},
	}
	for _, tt := range tests {
		for rname, wrap := range map[string]func(io.Reader) io.Reader{"whole": func(r io.Reader) io.Reader { return r }, "one byte": iotest.OneByteReader} {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(strings.NewReader(tt.in)), 0)
				r.RejectForeign, r.MaxJunk = true, 32
				var err error
				for err == nil {
					_, err = r.ReadFrame()
				}
				var ne *NotMLLPError
				switch {
				case tt.reason == "" && !errors.Is(err, io.EOF):
					t.Errorf("err = %v, want the frames read to EOF", err)
				case tt.reason != "" && (!errors.As(err, &ne) || ne.Reason != tt.reason || !errors.Is(err, ErrNotMLLP)):
					t.Errorf("err = %v, want NotMLLPError %s", err, tt.reason)
				}
			})
		}
	}
}

// TestReadFrameLenientByDefault: without RejectForeign and MaxJunk (the
// client's reader) nothing changes.
func TestReadFrameLenientByDefault(t *testing.T) {
	r := NewReader(strings.NewReader("GET "+strings.Repeat("z", 10000)+"\x0bA\x1c\r"), 0)
	if f, err := r.ReadFrame(); err != nil || string(f) != "A" {
		t.Fatalf("%q %v", f, err)
	}
}
