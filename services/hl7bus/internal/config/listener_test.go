package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInterfaceListenerKeys checks the listener keys of an interface as an
// operator writes them: max_message_size with its former name
// max_frame_size, max_connections, and timeouts that must carry a unit.
func TestInterfaceListenerKeys(t *testing.T) {
	const head = "registry: {url: \"http://127.0.0.1:8081\"}\nkafka: {brokers: [\"127.0.0.1:9092\"]}\ninterfaces:\n"
	tests := []struct {
		name  string
		iface string
		want  string // error substring; "" for valid
		check func(*testing.T, *File)
	}{
		{"every key", `{name: a, protocol: mllp, address: "127.0.0.1:2575", max_message_size: 65536, max_connections: 50, idle_timeout: 2m, read_timeout: 90s}`, "",
			func(t *testing.T, f *File) {
				it := f.Interfaces[0].WithDefaults()
				if it.MaxMessageSize != 65536 || it.MaxConnections != 50 || it.IdleTimeout != 2*time.Minute || it.ReadTimeout != 90*time.Second {
					t.Errorf("decoded %+v", it)
				}
			}},
		{"former name", `{name: a, protocol: mllp, address: "127.0.0.1:2575", max_frame_size: 4096}`, "",
			func(t *testing.T, f *File) {
				if got := f.Interfaces[0].WithDefaults().MaxMessageSize; got != 4096 {
					t.Errorf("max_frame_size 4096 read as max_message_size %d", got)
				}
			}},
		{"defaults", `{name: a, protocol: mllp, address: "127.0.0.1:2575"}`, "",
			func(t *testing.T, f *File) {
				it := f.Interfaces[0].WithDefaults()
				if it.MaxMessageSize != 16<<20 || it.MaxConnections != 1000 || it.IdleTimeout != 10*time.Minute || it.ReadTimeout != 30*time.Second {
					t.Errorf("defaults %+v", it)
				}
			}},
		{"both names, different", `{name: a, protocol: mllp, address: "127.0.0.1:2575", max_frame_size: 4096, max_message_size: 8192}`,
			"interfaces[0].max_frame_size", nil},
		{"timeout without a unit", `{name: a, protocol: mllp, address: "127.0.0.1:2575", read_timeout: 30}`,
			"interfaces[0].read_timeout", nil},
		{"idle timeout without a unit", `{name: a, protocol: mllp, address: "127.0.0.1:2575", idle_timeout: 600}`,
			"interfaces[0].idle_timeout", nil},
		{"negative cap", `{name: a, protocol: mllp, address: "127.0.0.1:2575", max_connections: -1}`,
			"interfaces[0].max_connections", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(head+"  - "+tt.iface+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := Load(p)
			if err == nil {
				err = f.Validate()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to name %s", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}
