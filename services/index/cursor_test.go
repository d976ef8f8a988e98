package index

import (
	"errors"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []struct {
		at int64
		id string
	}{{0, "m"}, {1764672000000000, "msg|with|bars"}, {-5, "ü"}} {
		at, id, err := decodeCursor(encodeCursor(c.at, c.id))
		if err != nil || at != c.at || id != c.id {
			t.Errorf("round trip of (%d, %q) = (%d, %q, %v)", c.at, c.id, at, id, err)
		}
	}
	for _, bad := range []string{"", "!!", encodeCursor(1, "")[:2], "MTIz"} {
		if _, _, err := decodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("decodeCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}
}

// FuzzDecodeCursor: a cursor comes from an HTTP query parameter, so any
// string must decode or fail with ErrBadCursor, and what decodes must
// encode back to a cursor that decodes the same.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1764672000000000, "m1"))
	f.Add("")
	f.Add("MTIzfA")
	f.Fuzz(func(t *testing.T, c string) {
		at, id, err := decodeCursor(c)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
			return
		}
		at2, id2, err := decodeCursor(encodeCursor(at, id))
		if err != nil || at2 != at || id2 != id {
			t.Fatalf("(%d, %q) re-encoded decodes to (%d, %q, %v)", at, id, at2, id2, err)
		}
	})
}
