package logattr

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOnlyHereAttributesAreMade fails when product code builds a log
// attribute itself instead of calling a constructor of this package: the
// list of what may be logged must stay in one file.
func TestOnlyHereAttributesAreMade(t *testing.T) {
	root := filepath.Join("..", "..")
	forbidden := regexp.MustCompile(`slog\.(String|Int|Int64|Uint64|Any|Bool|Duration|Float64|Time|Group)\(|\.(Info|Warn|Error|Debug)\("[^"]*", "`)
	var bad []string
	for _, dir := range []string{"libs", "services"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.Contains(path, string(filepath.Separator)+"logattr"+string(filepath.Separator)) ||
				strings.Contains(path, "defs"+string(filepath.Separator)+"internal") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(b), "\n") {
				if forbidden.MatchString(line) {
					bad = append(bad, path+":"+itoa(i+1)+": "+strings.TrimSpace(line))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bad {
		t.Errorf("log attribute made outside libs/logattr: %s", b)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestControlIDIsBounded(t *testing.T) {
	long := strings.Repeat("A", 200<<10)
	tests := []struct {
		name, in, want string
	}{
		{"short is unchanged", "CTL-1", "CTL-1"},
		{"exactly the limit is unchanged", strings.Repeat("B", maxControlID), strings.Repeat("B", maxControlID)},
		{"probe 1.23: 200 KB", long, strings.Repeat("A", maxControlID) + "...(204800 bytes)"},
		{"cut on a rune boundary", strings.Repeat("x", maxControlID-1) + "é" + "tail", strings.Repeat("x", maxControlID-1) + "...(69 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, a := range []struct {
				key  string
				attr func(string) slog.Attr
			}{{"control_id", ControlID}, {"msa_2", ControlIDInAck}} {
				got := a.attr(tt.in)
				if got.Key != a.key || got.Value.String() != tt.want {
					t.Errorf("%s(%d bytes) = %s=%q, want %q", a.key, len(tt.in), got.Key, got.Value.String(), tt.want)
				}
				if len(got.Value.String()) > maxControlID+32 {
					t.Errorf("%s is %d bytes long", a.key, len(got.Value.String()))
				}
			}
		})
	}
}
