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
