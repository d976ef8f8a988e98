package modules

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

func TestNewIndexNamesTheKeys(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "index-hmac")
	if err := os.WriteFile(sec, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewDeps(slog.New(slog.DiscardHandler), telemetry.Nop(), "t")
	tests := []struct {
		name string
		f    config.File
		want string
	}{
		{"no dsn", config.File{}, "index.dsn"},
		{"no secret", func() config.File { var f config.File; f.Index.DSN = filepath.Join(dir, "i.db"); return f }(), "index.secret_file"},
	}
	for _, tt := range tests {
		_, err := newIndex(&tt.f, d)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.want)
		}
	}
	var f config.File
	f.Index.DSN, f.Index.SecretFile = filepath.Join(dir, "i.db"), sec
	if _, err := newIndex(&f, d); err != nil {
		t.Fatalf("configured index: %v", err)
	}
}
