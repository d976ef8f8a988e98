package mapping

import "testing"

// TestHasSetID: the segments whose field 1 a split renumbers.
func TestHasSetID(t *testing.T) {
	for _, tt := range []struct {
		segment string
		want    bool
	}{{"OBR", true}, {"SPM", true}, {"OBX", true}, {"ORC", false}, {"ZHB", false}, {"MSH", false}} {
		if got := hasSetID(tt.segment); got != tt.want {
			t.Errorf("hasSetID(%s) = %v, want %v", tt.segment, got, tt.want)
		}
	}
}

func TestCompareVersion(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"2.5.1", "2.5", 1}, {"2.5", "2.5.1", -1}, {"2.5", "2.5.0", 0}, {"2.10", "2.9", 1}, {"2.3", "2.3", 0}, {"2.x", "2.0", 0}, {"", "2", -1}} {
		if got := compareVersion(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersion(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
