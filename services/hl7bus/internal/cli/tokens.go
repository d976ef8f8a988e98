package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

const tokensUsage = `usage: hl7bus admin tokens create --role ROLE --name NAME [--json]
       hl7bus admin tokens revoke ID|NAME
       hl7bus admin tokens list [--json]
each with --config FILE [--set KEY=VALUE]... [--data-dir DIR]

The tokens file is admin.tokens_file of the configuration (for a
standalone file, <data_dir>/secrets/admin-tokens by default). create
prints the token once, on standard output; the file keeps only its hash,
and who ran the command (user@host) as created_by or revoked_by. A running
admin API writes token.create and token.revoke to the audit trail, naming
that user, when it next reads the file (within seconds).
Roles: %s.
`

// runAdminTokens is `hl7bus admin tokens create|revoke|list`: it edits
// the tokens file directly (the admin API re-reads it when it changes),
// so minting the first token needs no running API and no token.
func runAdminTokens(args []string, env Env) int {
	usage := func() int {
		fmt.Fprintf(env.Stderr, tokensUsage, strings.Join(roleNames(), ", "))
		return ExitUsage
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		return usage()
	}
	verb := args[0]
	fs := flag.NewFlagSet("admin tokens "+verb, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { usage() }
	path := fs.String("config", "", "configuration `FILE` (required)")
	var sets stringList
	fs.Var(&sets, "set", "override a key: `KEY=VALUE` (repeatable; highest precedence)")
	dataDir := fs.String("data-dir", "", "with a standalone configuration: its data directory (overrides standalone.data_dir)")
	asJSON := fs.Bool("json", false, "print JSON, one object per line")
	var role, name *string
	if verb == "create" {
		role = fs.String("role", "", "the token's `ROLE`: "+strings.Join(roleNames(), ", "))
		name = fs.String("name", "", "the token's `NAME`, unique among live tokens; audit records name it as the actor")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return ExitUsage
	}
	if *path == "" {
		fmt.Fprintln(env.Stderr, "hl7bus admin tokens: --config FILE is required")
		return usage()
	}
	file, err := tokensFile(*path, sets, *dataDir)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus admin tokens: %v\n", err)
		return ExitInvalid
	}
	now := time.Now()
	switch verb {
	case "create":
		if len(pos) != 0 || *role == "" || *name == "" {
			fmt.Fprintln(env.Stderr, "hl7bus admin tokens create: --role and --name are required, and nothing else")
			return usage()
		}
		tok, rec, err := admin.CreateTokenBy(file, *name, admin.Role(*role), admin.LocalOperator(), now)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus admin tokens create: %v\n", err)
			return ExitInvalid
		}
		if *asJSON {
			return writeJSONLine(env, struct {
				admin.TokenRecord
				Token string `json:"token"`
			}{rec, tok})
		}
		// The token alone on standard output, so `> file` captures just
		// it; what it is goes to standard error.
		fmt.Fprintln(env.Stdout, tok)
		fmt.Fprintf(env.Stderr, "created token %s (%s, role %s) in %s; it is not shown again: store it now\n", rec.ID, rec.Name, rec.Role, file)
		return ExitOK
	case "revoke":
		if len(pos) != 1 {
			fmt.Fprintln(env.Stderr, "hl7bus admin tokens revoke: give one ID or NAME")
			return usage()
		}
		rec, err := admin.RevokeTokenBy(file, pos[0], admin.LocalOperator(), now)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus admin tokens revoke: %v\n", err)
			return ExitInvalid
		}
		if *asJSON {
			return writeJSONLine(env, rec)
		}
		fmt.Fprintf(env.Stdout, "revoked token %s (%s, role %s)\n", rec.ID, rec.Name, rec.Role)
		return ExitOK
	case "list":
		if len(pos) != 0 {
			return usage()
		}
		recs, err := admin.ListTokens(file)
		if err != nil {
			fmt.Fprintf(env.Stderr, "hl7bus admin tokens list: %v\n", err)
			return ExitInvalid
		}
		if *asJSON {
			for _, r := range recs {
				// TokenRecord's JSON form leaves the hash out.
				if code := writeJSONLine(env, r); code != ExitOK {
					return code
				}
			}
			return ExitOK
		}
		writeTokenTable(env.Stdout, recs)
		return ExitOK
	default:
		fmt.Fprintf(env.Stderr, "hl7bus admin tokens: unknown command %q\n", verb)
		return usage()
	}
}

// tokensFile returns admin.tokens_file of the configuration at path: for
// a standalone file (no brokers, no registry) with the standalone's
// default in its data directory.
func tokensFile(path string, sets []string, dataDir string) (string, error) {
	f, err := config.Load(path, sets...)
	if err != nil {
		return "", err
	}
	if dataDir != "" {
		f.Standalone.DataDir = dataDir
	}
	if len(f.Kafka.Brokers) == 0 && f.Registry.URL == "" {
		f.ForStandalone()
	}
	if f.Admin.TokensFile == "" {
		return "", fmt.Errorf("admin.tokens_file: not set in %s (set it, or use --set admin.tokens_file=FILE)", path)
	}
	return f.Admin.TokensFile, nil
}

// writeTokenTable prints the tokens as a table, never their hashes.
func writeTokenTable(w io.Writer, recs []admin.TokenRecord) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tREVOKED")
	for _, r := range recs {
		revoked := "-"
		if r.RevokedAt != nil {
			revoked = r.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Role, r.CreatedAt.UTC().Format(time.RFC3339), revoked)
	}
	_ = tw.Flush()
}

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(env Env, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(env.Stderr, "hl7bus admin tokens: %v\n", err)
		return ExitInvalid
	}
	_, _ = env.Stdout.Write(append(b, '\n'))
	return ExitOK
}

// roleNames lists the roles for help texts.
func roleNames() []string {
	out := make([]string, len(admin.Roles))
	for i, r := range admin.Roles {
		out[i] = string(r)
	}
	return out
}
