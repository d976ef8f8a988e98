package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresEnv names the PostgreSQL server the end-to-end tests also run
// the index on: a superuser's DSN (scripts/postgres.sh exports it, with
// the server's binaries in postgresBinEnv). Without it those runs skip.
const (
	postgresEnv    = "HL7BUS_TEST_POSTGRES_DSN"
	postgresBinEnv = "HL7BUS_TEST_POSTGRES_BIN"
)

// postgresDatabase creates a database of random name on the server of
// dsn for one test, drops it when the test ends (after the processes
// that use it, which the test starts later and so stop first), and
// returns its DSN: dsn with the database replaced.
func postgresDatabase(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		// The script's DSN is a URL; a key=value one would need its
		// dbname replaced instead, which no caller needs yet.
		t.Fatalf("%s: want a postgres:// URL", postgresEnv)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "e2e_" + hex.EncodeToString(b)
	run := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(context.Background()) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := run("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE: a connection the stopped standalone left behind must not
		// keep the database alive.
		if err := run("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// postgresTool is the path of one of the server's client programs
// (pg_dump): in postgresBinEnv when set, else on PATH. A missing tool
// fails the test: the DSN says the server is there to be checked.
func postgresTool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv(postgresBinEnv); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", postgresBinEnv, err)
		}
		return p
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is set but %s is not (nor %s on PATH)", postgresEnv, postgresBinEnv, name)
	}
	return p
}
