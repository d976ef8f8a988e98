package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hl7bus/hl7bus/services/admin"
)

// runCLI runs hl7bus with args and returns the exit code and outputs.
func runTokensCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}

func TestAdminTokensStandalone(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "hl7bus.yaml")
	if err := os.WriteFile(cfg, []byte("standalone:\n  data_dir: "+dataDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokensFile := filepath.Join(dataDir, "secrets", "admin-tokens")

	code, out, errOut := runTokensCLI("admin", "tokens", "create", "--config", cfg, "--role", "analyst", "--name", "ana")
	if code != ExitOK {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	rec, err := admin.LookupToken(tokensFile, tok)
	if err != nil || rec.Name != "ana" || rec.Role != admin.RoleAnalyst {
		t.Fatalf("stdout %q is not the token registered in %s: %+v %v", out, tokensFile, rec, err)
	}
	if !strings.Contains(errOut, "created token "+rec.ID) || !strings.Contains(errOut, "not shown again") || strings.Contains(errOut, tok) {
		t.Errorf("create's stderr: %q", errOut)
	}

	code, out, errOut = runTokensCLI("admin", "tokens", "create", "--config", cfg, "--role", "operator", "--name", "ops-bot", "--json")
	if code != ExitOK {
		t.Fatalf("create --json: exit %d: %s", code, errOut)
	}
	var created struct {
		ID, Name, Role, Token string
		SHA256                *string `json:"sha256"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Role != "operator" || created.Name != "ops-bot" ||
		!strings.HasPrefix(created.Token, "hl7b_"+created.ID+"_") || created.SHA256 != nil {
		t.Errorf("create --json: %q %v", out, err)
	}

	// Flags after the positional argument work too.
	code, out, errOut = runTokensCLI("admin", "tokens", "revoke", "ana", "--config", cfg)
	if code != ExitOK || !strings.Contains(out, "revoked token "+rec.ID+" (ana, role analyst)") {
		t.Fatalf("revoke: exit %d: %q %s", code, out, errOut)
	}
	if _, err := admin.LookupToken(tokensFile, tok); err == nil {
		t.Error("revoked token still valid")
	}

	code, out, errOut = runTokensCLI("admin", "tokens", "list", "--config", cfg)
	if code != ExitOK {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	recs, _ := admin.ListTokens(tokensFile)
	// The file says who ran create and revoke: the audit events of the
	// change name them.
	if me := admin.LocalOperator(); len(recs) != 2 || recs[0].CreatedBy != me || recs[0].RevokedBy != me || recs[1].CreatedBy != me || recs[1].RevokedBy != "" {
		t.Errorf("created_by/revoked_by: %+v, want %q", recs, me)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "ana") || !strings.Contains(lines[1], "analyst") ||
		strings.HasSuffix(lines[1], "-") || !strings.HasSuffix(lines[2], "-") {
		t.Errorf("list:\n%s", out)
	}
	for _, r := range recs {
		if strings.Contains(out, r.SHA256) {
			t.Errorf("list shows a hash:\n%s", out)
		}
	}

	code, out, _ = runTokensCLI("admin", "tokens", "list", "--json", "--config", cfg)
	if code != ExitOK || strings.Count(out, "\n") != 2 || strings.Contains(out, "sha256") || !strings.Contains(out, `"revoked_at"`) {
		t.Errorf("list --json: %d %q", code, out)
	}
	for _, r := range recs {
		if strings.Contains(out, r.SHA256) {
			t.Errorf("list --json shows a hash:\n%s", out)
		}
	}

	// --data-dir moves the default.
	other := filepath.Join(dir, "other")
	if code, _, errOut := runTokensCLI("admin", "tokens", "create", "--config", cfg, "--data-dir", other, "--role", "viewer", "--name", "v"); code != ExitOK {
		t.Fatalf("--data-dir: %s", errOut)
	}
	if recs, _ := admin.ListTokens(filepath.Join(other, "secrets", "admin-tokens")); len(recs) != 1 {
		t.Errorf("--data-dir: %+v", recs)
	}
}

func TestAdminTokensRefusals(t *testing.T) {
	dir := t.TempDir()
	standaloneCfg := filepath.Join(dir, "standalone.yaml")
	_ = os.WriteFile(standaloneCfg, []byte("standalone:\n  data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600)
	clusterCfg := filepath.Join(dir, "cluster.yaml")
	_ = os.WriteFile(clusterCfg, []byte("kafka: {brokers: [\"k:9092\"]}\nregistry: {url: \"http://r:8081\"}\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no verb", nil, ExitUsage, "usage: hl7bus admin tokens create"},
		{"unknown verb", []string{"mint", "--config", standaloneCfg}, ExitUsage, `unknown command "mint"`},
		{"no config", []string{"list"}, ExitUsage, "--config FILE is required"},
		{"no name", []string{"create", "--config", standaloneCfg, "--role", "viewer"}, ExitUsage, "--role and --name are required"},
		{"bad role", []string{"create", "--config", standaloneCfg, "--role", "root", "--name", "x"}, ExitInvalid, `role "root" is not one of viewer, analyst, operator, auditor, admin`},
		{"revoke nothing", []string{"revoke", "--config", standaloneCfg}, ExitUsage, "give one ID or NAME"},
		{"revoke unknown", []string{"revoke", "nobody", "--config", standaloneCfg}, ExitInvalid, `no token with id or name "nobody"`},
		{"cluster file without tokens_file", []string{"list", "--config", clusterCfg}, ExitInvalid, "admin.tokens_file: not set"},
		{"misspelt key", []string{"list", "--config", standaloneCfg, "--set", "admin.token_file=x"}, ExitInvalid, "token_file"},
	} {
		code, _, errOut := runTokensCLI(append([]string{"admin", "tokens"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, want %d; stderr %q, want %q", tc.name, code, tc.code, errOut, tc.want)
		}
	}
	// A cluster file names the tokens file: --set works like the file.
	tokens := filepath.Join(dir, "cluster-tokens")
	if code, _, errOut := runTokensCLI("admin", "tokens", "create", "--config", clusterCfg, "--set", "admin.tokens_file="+tokens, "--role", "admin", "--name", "root"); code != ExitOK {
		t.Fatalf("cluster create: %s", errOut)
	}
	if recs, _ := admin.ListTokens(tokens); len(recs) != 1 || recs[0].Role != admin.RoleAdmin {
		t.Errorf("cluster tokens: %+v", recs)
	}
	// A duplicate live name is refused.
	if code, _, errOut := runTokensCLI("admin", "tokens", "create", "--config", clusterCfg, "--set", "admin.tokens_file="+tokens, "--role", "viewer", "--name", "root"); code != ExitInvalid || !strings.Contains(errOut, "already has this name") {
		t.Errorf("duplicate name: %d %s", code, errOut)
	}
}
