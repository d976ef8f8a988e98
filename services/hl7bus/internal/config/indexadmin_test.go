package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/index"
)

// TestIndexAdminDefaults: what a file that leaves the index and admin
// sections out runs with, and what the standalone adds.
func TestIndexAdminDefaults(t *testing.T) {
	f, err := Load("testdata/standalone.good.yaml", "standalone.data_dir=/var/lib/hl7bus")
	if err != nil {
		t.Fatal(err)
	}
	want := index.Config{Driver: "sqlite", BatchSize: 2000, FlushInterval: 200 * time.Millisecond, Retention: 168 * time.Hour}
	if f.Index != want {
		t.Errorf("index defaults %+v, want %+v", f.Index, want)
	}
	ad := f.Admin
	if ad.Address != "127.0.0.1:9465" || ad.Replay != (admin.ReplayConfig{MaxMessages: 10000, Rate: 50, MaxRate: 1000}) ||
		ad.OIDC.RolesClaim != "roles" || ad.OIDC.ActorClaim != "sub" || ad.TokensFile != "" || ad.TLS.Enabled() {
		t.Errorf("admin defaults %+v", ad)
	}
	if err := f.ValidateModules("index"); err == nil || !strings.Contains(err.Error(), "index.dsn: required") || !strings.Contains(err.Error(), "index.secret_file: required") {
		t.Errorf("index outside standalone: %v", err)
	}
	if err := f.ValidateModules("admin"); err == nil || !strings.Contains(err.Error(), "admin.tokens_file: required") || !strings.Contains(err.Error(), "index.dsn") {
		t.Errorf("admin outside standalone: %v", err)
	}
	if err := f.ValidateModules("parse", "egress"); err != nil {
		t.Errorf("other modules need nothing of these sections: %v", err)
	}
	f.ForStandalone()
	for key, got := range map[string]string{
		"index.dsn":         f.Index.DSN,
		"index.secret_file": f.Index.SecretFile,
		"admin.tokens_file": f.Admin.TokensFile,
	} {
		w := map[string]string{"index.dsn": "/var/lib/hl7bus/index.db", "index.secret_file": "/var/lib/hl7bus/secrets/index-hmac",
			"admin.tokens_file": "/var/lib/hl7bus/secrets/admin-tokens"}[key]
		if got != filepath.FromSlash(w) {
			t.Errorf("standalone %s = %q, want %q", key, got, w)
		}
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := f.ValidateModules("index", "admin"); err != nil {
		t.Errorf("standalone defaults should satisfy the modules: %v", err)
	}
}

// TestIndexAdminSettings: values the file gives are kept, retention 0
// (keep everything) included, and ForStandalone does not override them.
func TestIndexAdminSettings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sets  []string
		env   map[string]string
		check func(*File) string
	}{
		{"retention 0 keeps everything", []string{"index.retention=0"}, nil, func(f *File) string {
			if f.Index.Retention != 0 {
				return "retention " + f.Index.Retention.String()
			}
			return ""
		}},
		{"retention from the environment", nil, map[string]string{"HL7BUS_INDEX_RETENTION": "72h"}, func(f *File) string {
			if f.Index.Retention != 72*time.Hour {
				return "retention " + f.Index.Retention.String()
			}
			return ""
		}},
		{"audit retention from the file, independent of retention", []string{"index.audit_retention=52560h", "index.retention=72h"}, nil, func(f *File) string {
			if f.Index.AuditRetention != 6*8760*time.Hour || f.Index.Retention != 72*time.Hour {
				return "audit retention " + f.Index.AuditRetention.String() + ", retention " + f.Index.Retention.String()
			}
			return ""
		}},
		{"postgres keeps its dsn empty", []string{"index.driver=postgres"}, nil, func(f *File) string {
			f.ForStandalone()
			if f.Index.DSN != "" {
				return "a sqlite file for postgres: " + f.Index.DSN
			}
			if err := f.ValidateModules("index"); err == nil || !strings.Contains(err.Error(), "index.dsn") {
				return "no index.dsn error"
			}
			return ""
		}},
		{"given paths win", []string{"index.dsn=/db/x.db", "index.secret_file=/s/k", "admin.tokens_file=/s/t"}, nil, func(f *File) string {
			f.ForStandalone()
			if f.Index.DSN != "/db/x.db" || f.Index.SecretFile != "/s/k" || f.Admin.TokensFile != "/s/t" {
				return "overridden"
			}
			return ""
		}},
		{"replay bounds", []string{"admin.replay.rate=5", "admin.replay.max_rate=10", "admin.replay.max_messages=7"}, nil, func(f *File) string {
			if f.Admin.Replay != (admin.ReplayConfig{MaxMessages: 7, Rate: 5, MaxRate: 10}) {
				return "replay"
			}
			return ""
		}},
		{"admin off", []string{"admin.address=off"}, nil, func(f *File) string {
			if f.Admin.Address != "off" {
				return "address " + f.Admin.Address
			}
			return ""
		}},
		{"oidc", []string{"admin.oidc.issuer=https://idp.example", "admin.oidc.client_id=hl7bus", "admin.oidc.roles_claim=groups"}, nil, func(f *File) string {
			if f.Admin.OIDC.RolesClaim != "groups" || f.Admin.OIDC.ActorClaim != "sub" {
				return "claims"
			}
			if err := f.ValidateModules("admin"); err == nil || strings.Contains(err.Error(), "tokens_file") {
				return "OIDC alone should satisfy admin.tokens_file"
			}
			return ""
		}},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		f, err := Load("testdata/standalone.good.yaml", append(tc.sets, "kafka.brokers=127.0.0.1:9092")...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if msg := tc.check(f); msg != "" {
			t.Errorf("%s: %s (%+v %+v)", tc.name, msg, f.Index, f.Admin)
		}
	}
}

// TestAdminTLSFiles: Validate leaves the certificate files alone (they
// may be mounted only where the admin API runs); ValidateModules("admin")
// reads them.
func TestAdminTLSFiles(t *testing.T) {
	f, err := Load("testdata/standalone.good.yaml", "admin.tls.cert_file=/nonexistent/tls.crt", "admin.tls.key_file=/nonexistent/tls.key", "kafka.brokers=127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("Validate read the TLS files: %v", err)
	}
	f.ForStandalone()
	if err := f.ValidateModules("admin"); err == nil || !strings.Contains(err.Error(), "admin.tls.cert_file: /nonexistent/tls.crt") {
		t.Errorf("ValidateModules: %v", err)
	}
}
