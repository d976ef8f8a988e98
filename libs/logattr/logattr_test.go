package logattr

import (
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
