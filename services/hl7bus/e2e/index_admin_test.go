package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// switchReceiver is an MLLP destination that answers AR to the control
// IDs it is told to reject (a receiver with a mapping problem) and AA to
// every other, and counts what it got by control ID.
type switchReceiver struct {
	addr string
	srv  *mllp.Server
	mu   sync.Mutex
	got  map[string]int
	rej  map[string]bool
}

func startSwitchReceiver(t *testing.T) *switchReceiver {
	t.Helper()
	r := &switchReceiver{got: map[string]int{}, rej: map[string]bool{}}
	r.srv = mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, f []byte) ([]byte, error) {
		m, err := hl7v2.Parse(f)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.got[m.ControlID()]++
		code := hl7v2.AckAccept
		if r.rej[m.ControlID()] {
			code = hl7v2.AckReject
		}
		r.mu.Unlock()
		ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: code, ControlID: "R" + m.ControlID()})
		if err != nil {
			return nil, err
		}
		return ack.Bytes(), nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Shutdown(context.Background()) })
	return r
}

func (r *switchReceiver) reject(ctl string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rej[ctl] = on
}

func (r *switchReceiver) count(ctl string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[ctl]
}

// cli runs the hl7bus binary with args and returns its stdout, stderr and
// whether it exited 0. env adds variables (HL7BUS_TOKEN for another role).
func cli(t *testing.T, env []string, args ...string) (string, string, bool) {
	t.Helper()
	cmd := exec.Command(hl7busBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err == nil
}

// jsonLines decodes one JSON object per line.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	return rows
}

// destStatus is the status of one destination in a messages find row.
func destStatus(row map[string]any, name string) string {
	ds, _ := row["destinations"].([]any)
	for _, d := range ds {
		dm, _ := d.(map[string]any)
		if dm["name"] == name {
			s, _ := dm["status"].(string)
			return s
		}
	}
	return ""
}

// eventually retries f until it returns "" or within passes; the last
// complaint fails the test.
func eventually(t *testing.T, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, msg)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// a08 is an A08 for one patient; names and the record number are the
// PHI the index must not hold.
func a08(ctl, mrn, family, given string) string {
	return "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20261201120000||ADT^A08^ADT_A01|" + ctl + "|P|2.5.1\r" +
		"EVN|A08|20261201120000\r" +
		"PID|1||" + mrn + "^^^HOSP^MR||" + family + "^" + given + "||19800101|F|||12 PINE ROAD^^TOWN\r" +
		"PV1|1|I\r"
}

// analystPatients are the test corpus: each A08's control ID, record
// number and name. The names, the numbers and the address (phiAddress)
// are the PHI the index must not hold; the control IDs it must.
var analystPatients = []struct{ ctl, mrn, family, given string }{
	{"C1", "ZZMRN1001", "ZZFAMILYA", "ZZGIVENA"},
	{"REJ1", "ZZMRN1002", "ZZFAMILYB", "ZZGIVENB"},
	{"C3", "ZZMRN1003", "ZZFAMILYC", "ZZGIVENC"},
}

// phiAddress is the street every a08 carries.
const phiAddress = "PINE ROAD"

// TestAnalystDayEndToEnd is the "done means", through the CLI a
// user types, on each index backend: find a message by control ID and by
// patient ID and see its delivery; a destination that answers AR puts the
// message in `dlq list`; replayed after the destination is fixed it is
// delivered and the index says so; a delivered message replayed to one
// destination arrives there again (and only there); each of these leaves
// an audit record; a viewer can search but not read content; and the
// index's database holds none of the patients' names or IDs — the SQLite
// file of the embedded default, and a pg_dump of the PostgreSQL database
// when HL7BUS_TEST_POSTGRES_DSN names a server (scripts/postgres.sh).
func TestAnalystDayEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the standalone")
	}
	t.Run("sqlite", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		c1ID := analystDay(t, dataDir, "")
		// No PHI in the index: its SQLite files hold none of the names,
		// record numbers or addresses sent.
		files, _ := filepath.Glob(filepath.Join(dataDir, "index.db*"))
		if len(files) == 0 {
			t.Fatalf("no index database in %s", dataDir)
		}
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
			assertNoPHI(t, filepath.Base(f), b)
		}
		assertHoldsIDs(t, "the SQLite files", all, c1ID)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv(postgresEnv)
		if dsn == "" {
			t.Skipf("%s not set: the PostgreSQL run skips (scripts/postgres.sh run go test -run 'TestAnalystDayEndToEnd/postgres' ./services/hl7bus/e2e/ sets it)", postgresEnv)
		}
		pgDump := postgresTool(t, "pg_dump")
		dbDSN := postgresDatabase(t, dsn)
		c1ID := analystDay(t, filepath.Join(t.TempDir(), "data"),
			fmt.Sprintf("index: {driver: postgres, dsn: %q}\n", dbDSN))
		// No PHI in the index: a dump of every row of its database holds
		// none of the names, record numbers or addresses sent.
		cmd := exec.Command(pgDump, "--data-only", "--no-owner", "--dbname="+dbDSN)
		var dump, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &dump, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("pg_dump: %v: %s", err, errb.String())
		}
		assertNoPHI(t, "the pg_dump", dump.Bytes())
		assertHoldsIDs(t, "the pg_dump", dump.Bytes(), c1ID)
	})
}

// assertNoPHI fails for each name, record number or address of the
// corpus that b holds.
func assertNoPHI(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, p := range analystPatients {
		for _, phi := range []string{p.mrn, p.family, p.given, phiAddress} {
			if bytes.Contains(b, []byte(phi)) {
				t.Errorf("%s holds %q", what, phi)
			}
		}
	}
}

// assertHoldsIDs keeps assertNoPHI from passing on the wrong bytes (an
// empty dump, a file the index never wrote): what the index must hold,
// the control IDs and a message ID, is there.
func assertHoldsIDs(t *testing.T, what string, b []byte, messageID string) {
	t.Helper()
	for _, id := range []string{"REJ1", "C3", messageID} {
		if !bytes.Contains(b, []byte(id)) {
			t.Errorf("%s lacks %q: the PHI check read no index rows", what, id)
		}
	}
}

// analystDay runs the analyst's day on a standalone whose configuration
// adds indexSection (empty: the embedded SQLite default) and returns C1's
// message ID, the standalone stopped.
func analystDay(t *testing.T, dataDir, indexSection string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	lis, ehr := startSwitchReceiver(t), startSwitchReceiver(t)
	lis.reject("REJ1", true)
	ingressAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
http: {address: "127.0.0.1:0"}
kafka: {partitions: 2}
standalone: {data_dir: "%s", kafka_address: "%s", registry_address: "%s"}
admin: {address: "%s"}
%sinterfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
destinations:
  - {name: lis, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms, max_backoff: 1s}}
  - {name: ehr, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms, max_backoff: 1s}}
routes:
  - {name: all, destinations: [lis, ehr]}
`, dataDir, freeAddr(t), freeAddr(t), adminAddr, indexSection, ingressAddr, lis.addr, ehr.addr))
	sa := startProcess(t, "standalone", "standalone", "--config", cfg)
	waitListening(t, ingressAddr, 90*time.Second)
	waitListening(t, adminAddr, 90*time.Second)

	patients := analystPatients
	c := mllp.NewClient(ingressAddr, mllp.WithAckTimeout(20*time.Second))
	defer c.Close()
	for _, p := range patients {
		reply, err := c.Send(ctx, []byte(a08(p.ctl, p.mrn, p.family, p.given)))
		if err != nil {
			t.Fatal(err)
		}
		if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckAccept {
			t.Fatalf("%s: ACK %q (%v)", p.ctl, reply, err)
		}
	}
	base := []string{"--config", cfg}

	// Find by control ID: delivered to both.
	var c1 map[string]any
	eventually(t, 60*time.Second, func() string {
		out, errOut, ok := cli(t, nil, append([]string{"messages", "find", "--control-id", "C1", "--json"}, base...)...)
		if !ok {
			return "messages find: " + errOut
		}
		rows := jsonLines(t, out)
		if len(rows) != 1 || rows[0]["status"] != "delivered" || destStatus(rows[0], "lis") != "delivered" || destStatus(rows[0], "ehr") != "delivered" {
			return fmt.Sprintf("C1 rows %v, want one, delivered to lis and ehr", rows)
		}
		c1 = rows[0]
		return ""
	})
	for _, k := range []string{"message_id", "control_id", "interface", "type", "received_at"} {
		if c1[k] == nil || c1[k] == "" {
			t.Errorf("messages find row lacks %s: %v", k, c1)
		}
	}
	if c1["type"] != "ADT^A08" || c1["interface"] != "adt-in" {
		t.Errorf("C1 row: type %v interface %v", c1["type"], c1["interface"])
	}
	c1ID, _ := c1["message_id"].(string)

	// Find by patient ID (hashed by the index; never stored as typed).
	out, errOut, ok := cli(t, nil, append([]string{"messages", "find", "--patient-id", "ZZMRN1001", "--json"}, base...)...)
	if !ok {
		t.Fatalf("messages find --patient-id: %s", errOut)
	}
	if rows := jsonLines(t, out); len(rows) != 1 || rows[0]["message_id"] != c1ID {
		t.Errorf("by patient ID: %v, want C1 only", rows)
	}

	// The AR: dead-lettered for lis, listed by dlq list.
	var dlID string
	eventually(t, 60*time.Second, func() string {
		out, errOut, ok := cli(t, nil, append([]string{"dlq", "list", "--json"}, base...)...)
		if !ok {
			return "dlq list: " + errOut
		}
		for _, r := range jsonLines(t, out) {
			if r["control_id"] == "REJ1" && r["stage"] == "egress" && r["destination"] == "lis" {
				dlID, _ = r["id"].(string)
				return ""
			}
		}
		return "REJ1 not in dlq list: " + out
	})
	if !strings.HasPrefix(dlID, "egress:") {
		t.Errorf("dead letter id %q, want egress:<partition>:<offset>", dlID)
	}

	// Fix the destination, replay the dead letter: delivered, and the
	// index says so.
	lis.reject("REJ1", false)
	before := lis.count("REJ1")
	if _, errOut, ok := cli(t, nil, append([]string{"dlq", "replay", dlID, "--yes"}, base...)...); !ok {
		t.Fatalf("dlq replay: %s", errOut)
	}
	eventually(t, 60*time.Second, func() string {
		if n := lis.count("REJ1"); n <= before {
			return fmt.Sprintf("lis got REJ1 %d times, want more than %d", n, before)
		}
		out, errOut, ok := cli(t, nil, append([]string{"messages", "find", "--control-id", "REJ1", "--json"}, base...)...)
		if !ok {
			return "messages find: " + errOut
		}
		rows := jsonLines(t, out)
		if len(rows) != 1 || destStatus(rows[0], "lis") != "delivered" || rows[0]["status"] != "delivered" {
			return fmt.Sprintf("REJ1 rows %v, want delivered to lis after the replay", rows)
		}
		return ""
	})
	if n := ehr.count("REJ1"); n != 1 {
		t.Errorf("ehr got REJ1 %d times: the dead letter's replay re-sent to a destination that had it", n)
	}

	// Replay a delivered message to one destination: it arrives again,
	// there only.
	lisC1, ehrC1 := lis.count("C1"), ehr.count("C1")
	if _, errOut, ok := cli(t, nil, append([]string{"replay", "--message-id", c1ID, "--destination", "lis", "--resend", "--yes"}, base...)...); !ok {
		t.Fatalf("replay --resend: %s", errOut)
	}
	eventually(t, 60*time.Second, func() string {
		if n := lis.count("C1"); n != lisC1+1 {
			return fmt.Sprintf("lis got C1 %d times, want %d", n, lisC1+1)
		}
		return ""
	})
	time.Sleep(time.Second)
	if n := ehr.count("C1"); n != ehrC1 {
		t.Errorf("ehr got C1 %d times, want %d: the replay was for lis only", n, ehrC1)
	}

	// Replay a delivered message into route (the default target) with
	// --resend while lis rejects it: the index must say lis rejected, not
	// keep the first delivery's delivered (the replay reopens each
	// destination it re-sends to).
	lis.reject("C3", true)
	lisC3 := lis.count("C3")
	if _, errOut, ok := cli(t, nil, append([]string{"replay", "--control-id", "C3", "--since", "1h", "--resend", "--yes"}, base...)...); !ok {
		t.Fatalf("replay --control-id C3 --resend: %s", errOut)
	}
	eventually(t, 60*time.Second, func() string {
		if n := lis.count("C3"); n <= lisC3 {
			return fmt.Sprintf("lis got C3 %d times, want more than %d", n, lisC3)
		}
		out, errOut, ok := cli(t, nil, append([]string{"messages", "find", "--control-id", "C3", "--json"}, base...)...)
		if !ok {
			return "messages find: " + errOut
		}
		rows := jsonLines(t, out)
		// A receiver's AR ranks rejected (above its dead letter's
		// dead_lettered); ehr took it again.
		if len(rows) != 1 || destStatus(rows[0], "lis") != "rejected" || rows[0]["status"] == "delivered" {
			return fmt.Sprintf("C3 rows %v, want lis rejected and not delivered overall after the replay", rows)
		}
		return ""
	})
	lis.reject("C3", false)

	// A viewer searches but cannot read content; the refusal is audited.
	tok, errOut, ok := cli(t, nil, append([]string{"admin", "tokens", "create", "--role", "viewer", "--name", "hospital-helpdesk"}, base...)...)
	if !ok {
		t.Fatalf("admin tokens create: %s", errOut)
	}
	viewer := []string{"HL7BUS_TOKEN=" + lastLine(tok)}
	if _, errOut, ok := cli(t, viewer, append([]string{"messages", "find", "--control-id", "C1"}, base...)...); !ok {
		t.Errorf("a viewer cannot search: %s", errOut)
	}
	if out, errOut, ok := cli(t, viewer, append([]string{"messages", "show", c1ID, "--content"}, base...)...); ok || strings.Contains(out, "ZZFAMILYA") {
		t.Errorf("a viewer read content: ok=%v out=%q err=%q", ok, out, errOut)
	}
	if out, errOut, ok := cli(t, nil, append([]string{"messages", "show", c1ID, "--content", "--json"}, base...)...); !ok || !strings.Contains(out, "ZZFAMILYA") {
		t.Errorf("the admin token could not read C1's content: ok=%v err=%q", ok, errOut)
	}

	// Each of these left an audit record.
	eventually(t, 30*time.Second, func() string {
		actions := auditActions(t, adminAddr, dataDir)
		for _, want := range []string{"replay.start", "content.read", "access.denied", "token.use", "token.create"} {
			if actions[want] == 0 {
				return fmt.Sprintf("no %s in the audit trail %v", want, actions)
			}
		}
		if actions["replay.start"] < 2 {
			return fmt.Sprintf("replay.start %d times, want 2 (dlq replay and replay)", actions["replay.start"])
		}
		return ""
	})

	sa.stop(t)
	return c1ID
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// auditActions counts the audit trail's events by action, read through
// the API with the standalone's admin token.
func auditActions(t *testing.T, addr, dataDir string) map[string]int {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dataDir, "secrets", "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v1/audit?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Events []struct {
			Action string `json:"action"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("audit: %s: %v", resp.Status, err)
	}
	n := map[string]int{}
	for _, e := range page.Events {
		n[e.Action]++
	}
	return n
}
