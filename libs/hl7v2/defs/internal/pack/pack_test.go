package pack

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

// TestEncodeGzipHeader checks what makes the file reproducible: no name,
// no modification time, and the payload intact inside.
func TestEncodeGzipHeader(t *testing.T) {
	vs := []Version{{ID: "2.5", Segments: []Segment{{ID: "MSH", Name: "Message Header", Fields: []Field{{Name: "Field Separator", Type: "ST", Min: 1, Max: 1}}}}}}
	gz, st, err := Encode(vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q, mtime %v; want neither", zr.Name, zr.ModTime)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Payload(vs, nil)
	if !bytes.Equal(got, want) || st.Payload != len(want) || !bytes.HasPrefix(got, []byte(Magic)) {
		t.Errorf("payload = %d bytes (stats %d), want %d starting with %s", len(got), st.Payload, len(want), Magic)
	}
}

// TestPayloadStringsSorted checks that string indexes do not depend on the
// order items were met in: the same strings in another order give the same
// string table.
func TestPayloadStringsSorted(t *testing.T) {
	a, _ := Payload([]Version{{ID: "2.1", Events: [][2]string{{"B^B01", "B_B01"}, {"A^A01", "A_A01"}}}}, nil)
	b, _ := Payload([]Version{{ID: "2.1", Events: [][2]string{{"A^A01", "A_A01"}, {"B^B01", "B_B01"}}}}, nil)
	// The string tables (everything before the version entries) agree.
	n := bytes.Index(a, []byte("B_B01")) + len("B_B01")
	if n <= len("B_B01") || !bytes.Equal(a[:n], b[:n]) {
		t.Errorf("string tables differ:\n%q\n%q", a[:n], b[:n])
	}
}
