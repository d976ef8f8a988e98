package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// The lockdown of the embedded default (issue 8, probe S1): the broker
// and the registry of `hl7bus standalone` accept only the credentials it
// generated into <data_dir>/secrets/, and its own tools use them.

// probeBroker is the probe's kprobe run against addr without credentials:
// every step must fail with the broker's SASL refusal.
func probeBroker(t *testing.T, ctx context.Context, addr, raw string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second),
		kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	refused := func(what string, err error) {
		t.Helper()
		var eof *kgo.ErrFirstReadEOF
		if err == nil {
			t.Errorf("%s without credentials succeeded", what)
		} else if !(errors.As(err, &eof) && strings.Contains(err.Error(), "SASL")) && !strings.Contains(err.Error(), "connection has died") {
			// The broker hangs up on a client that skips SASL; franz-go
			// reports that as the first read's EOF ("is SASL missing?"),
			// or, for a request it shards over brokers (ListGroups), as the
			// connection having died mid-request. Either is the refusal.
			t.Errorf("%s without credentials: %v; want the broker's SASL refusal", what, err)
		}
	}
	_, err = adm.ListTopics(ctx)
	refused("listing topics", err)
	groups, err := adm.ListGroups(ctx)
	refused("listing groups", err)
	if len(groups.Groups()) > 0 {
		t.Errorf("listing groups without credentials returned %v", groups.Groups())
	}
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "hl7bus.kprobe-created")
	refused("creating a topic", err)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	refused("producing a forged record into raw", cl.ProduceSync(pctx, &kgo.Record{Topic: raw, Value: []byte("forged")}).FirstErr())
	_, err = adm.DeleteTopic(ctx, raw)
	refused("deleting raw", err)
}

// registryCall makes one request to the embedded registry; userpass is
// USER:PASSWORD or empty for none.
func registryCall(t *testing.T, method, url, body, userpass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if user, pass, ok := strings.Cut(userpass, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// secretFiles returns the credentials files of dataDir after checking
// their modes: the directory 0700, each file 0600.
func secretFiles(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	dir := filepath.Join(dataDir, "secrets")
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("no secrets directory: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %o, want 700", dir, st.Mode().Perm())
	}
	out := map[string]string{}
	for _, name := range []string{"kafka-scram", "registry-basic"} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, st.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = strings.TrimSpace(string(b))
	}
	return out
}

// runTool runs an hl7bus command to completion in dir (the test's
// directory when empty) and returns its output.
func runTool(t *testing.T, dir string, within time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, hl7busBinary(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("hl7bus %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// sendOne sends one message and requires AA.
func sendAcked(t *testing.T, ctx context.Context, addr, msg string) {
	t.Helper()
	c := mllp.NewClient(addr, mllp.WithAckTimeout(20*time.Second))
	defer c.Close()
	reply, err := c.Send(ctx, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckAccept {
		t.Fatalf("ACK %v %+v", err, ack)
	}
}

// TestStandaloneLockedDown runs hl7bus standalone as a process and tries
// the probe's S1 reproduction: an unauthenticated Kafka client and
// unauthenticated registry writes are refused and leave nothing behind,
// while the pipeline and `hl7bus tail` (no extra flags) work; the
// credentials survive a restart and are new on a new data directory.
func TestStandaloneLockedDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	recv := startReceiver(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	setup := standaloneConfig(t, dataDir, 3, recv.addr)
	cfg, ingressAddr := setup.cfg, setup.ingressAddr
	kafkaAddr, registryAddr := setup.kafkaAddr, setup.registryAddr
	start := func() *process {
		p := startProcess(t, "standalone", "standalone", "--config", cfg)
		waitListening(t, ingressAddr, 60*time.Second)
		return p
	}
	p := start()
	registry := "http://" + registryAddr

	// The pipeline works with the generated credentials.
	sent := sendAll(t, ctx, ingressAddr, 2, 2, 2)
	checkDelivered(t, recv, sent, 120*time.Second)

	// Kafka without credentials: nothing.
	probeBroker(t, ctx, kafkaAddr, "hl7bus.raw")

	// The registry without credentials: 401, and nothing persisted.
	forged := `{"schema":"{\"type\":\"record\",\"name\":\"Forged\",\"fields\":[{\"name\":\"x\",\"type\":\"string\"}]}"}`
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/config/hl7bus.raw-value", `{"compatibility":"NONE"}`},
		{"PUT", "/config", `{"compatibility":"NONE"}`},
		{"POST", "/subjects/hl7bus.raw-value/versions", forged},
		{"GET", "/subjects", ""},
	} {
		if code, body := registryCall(t, c.method, registry+c.path, c.body, ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d %s, want 401", c.method, c.path, code, body)
		}
		if code, _ := registryCall(t, c.method, registry+c.path, c.body, "hl7bus:guess"); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong password: %d, want 401", c.method, c.path, code)
		}
	}
	first := secretFiles(t, dataDir)
	if code, body := registryCall(t, "GET", registry+"/config/hl7bus.raw-value?defaultToGlobal=true", "", first["registry-basic"]); code != http.StatusOK || strings.Contains(body, "NONE") {
		t.Errorf("raw's compatibility after the unauthenticated PUT: %d %s", code, body)
	}
	if code, body := registryCall(t, "GET", registry+"/subjects/hl7bus.raw-value/versions", "", first["registry-basic"]); code != http.StatusOK || strings.TrimSpace(body) != "[1]" {
		t.Errorf("raw's versions after the unauthenticated POST: %d %s", code, body)
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "schemas.json")); err != nil || bytes.Contains(b, []byte("Forged")) {
		t.Errorf("schemas.json after the unauthenticated POST (%v): holds the forged schema: %v", err, bytes.Contains(b, []byte("Forged")))
	}

	// hl7bus tail with the standalone's file and no other flag.
	out, err := runTool(t, "", 60*time.Second, "tail", "--config", cfg, "--from-beginning", "--max", fmt.Sprint(len(sent)), "raw")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, `"message_id"`); n != len(sent) {
		t.Errorf("tail printed %d raw records, want %d:\n%s", n, len(sent), out)
	}
	if out, err := runTool(t, "", 60*time.Second, "tail", "--config", cfg, "--from-beginning", "--max", "1", "delivery"); err != nil || !strings.Contains(out, `"outcome"`) {
		t.Errorf("tail delivery: %v\n%s", err, out)
	}

	// A restart keeps the credentials, and the pipeline and tail use them.
	p.stop(t)
	p = start()
	if again := secretFiles(t, dataDir); again["kafka-scram"] != first["kafka-scram"] || again["registry-basic"] != first["registry-basic"] {
		t.Errorf("the credentials changed across a restart")
	}
	sendAcked(t, ctx, ingressAddr, message("ADT", 90, 1))
	if out, err := runTool(t, "", 60*time.Second, "tail", "--config", cfg, "--from-beginning", "--max", fmt.Sprint(len(sent)+1), "raw"); err != nil || !strings.Contains(out, "C090-0001") {
		t.Errorf("tail after a restart: %v\n%s", err, out)
	}
	probeBroker(t, ctx, kafkaAddr, "hl7bus.raw")
	p.stop(t)

	// A deleted data directory means new credentials.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	p = start()
	if fresh := secretFiles(t, dataDir); fresh["kafka-scram"] == first["kafka-scram"] || fresh["registry-basic"] == first["registry-basic"] {
		t.Errorf("a new data directory reused the old credentials")
	}
	sendAcked(t, ctx, ingressAddr, message("ADT", 91, 1))
	if out, err := runTool(t, "", 60*time.Second, "tail", "--config", cfg, "--from-beginning", "--max", "1", "raw"); err != nil || !strings.Contains(out, "C091-0001") {
		t.Errorf("tail on the new data directory: %v\n%s", err, out)
	}
	p.stop(t)
}

// startProcessIn is startProcess with the working directory set, for
// commands whose relative paths (deploy/standalone/hl7bus.yaml, its
// data_dir hl7bus-data) must resolve as they do from the repository root.
func startProcessIn(t *testing.T, dir, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(hl7busBinary(t), args...)
	cmd.Dir = dir
	return startCmd(t, name, cmd)
}

// TestReadmeTourOnTheLockedDownDefault runs the README tour's commands as
// written, from a directory laid out like the repository (the sample
// configuration, with free ports in place of the tour's fixed ones): the
// standalone of `make run`, the tour's send, and every tail command with no
// credentials given, which must find them in ./hl7bus-data/secrets/.
func TestReadmeTourOnTheLockedDownDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(root, "deploy/standalone/hl7bus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	recv := startReceiver(t)
	ingressAddr := freeAddr(t)
	body := strings.NewReplacer("127.0.0.1:2575", ingressAddr, "127.0.0.1:2576", recv.addr,
		"127.0.0.1:2577", freeAddr(t), "127.0.0.1:2578", freeAddr(t),
		"127.0.0.1:9092", freeAddr(t), "127.0.0.1:8081", freeAddr(t), "127.0.0.1:9465", freeAddr(t)).Replace(string(sample))
	if body == string(sample) {
		t.Fatal("the sample configuration no longer names the tour's ports; update this test")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "deploy/standalone"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy/standalone/hl7bus.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// The code tables its rules use sit beside it.
	if err := os.CopyFS(filepath.Join(dir, "deploy/standalone/tables"), os.DirFS(filepath.Join(root, "deploy/standalone/tables"))); err != nil {
		t.Fatal(err)
	}
	// make run, with the metrics port made free as well.
	p := startProcessIn(t, dir, "standalone", "standalone", "--config", "deploy/standalone/hl7bus.yaml", "--set", "http.address=127.0.0.1:0")
	waitListening(t, ingressAddr, 60*time.Second)

	testdata := filepath.Join(root, "libs/hl7v2/testdata")
	if out, err := runTool(t, dir, 60*time.Second, "send", ingressAddr, filepath.Join(testdata, "adt_a01_basic.hl7"), filepath.Join(testdata, "batch_file.hl7")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, topic := range []string{"raw", "parsed", "transformed", "out.lis", "delivery"} {
		out, err := runTool(t, dir, 60*time.Second, "tail", "--from-beginning", "--max", "3", topic)
		if err != nil {
			t.Errorf("tail %s: %v", topic, err)
			continue
		}
		// A record tail could not decode prints an "error" instead of a "value".
		lines, decoded := strings.Split(strings.TrimSpace(out), "\n"), 0
		for _, l := range lines {
			var rec map[string]json.RawMessage
			if json.Unmarshal([]byte(l), &rec) == nil && rec["value"] != nil && rec["error"] == nil {
				decoded++
			}
		}
		if len(lines) != 3 || decoded != 3 {
			t.Errorf("tail %s printed %d lines, %d decoded:\n%s", topic, len(lines), decoded, out)
		}
	}
	bad := filepath.Join(dir, "bad.hl7")
	if err := os.WriteFile(bad, []byte("hello\r"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _ = runTool(t, dir, 60*time.Second, "send", "--raw", ingressAddr, bad) // AR: exit status 1
	if out, err := runTool(t, dir, 60*time.Second, "tail", "--from-beginning", "--max", "1", "dlq.parse"); err != nil || !strings.Contains(out, `"stage":"parse"`) {
		t.Errorf("tail dlq.parse: %v\n%s", err, out)
	}

	// Find it, see its journey, list what failed, send it again: the
	// index and the admin API through the CLI with no flags at all (the
	// sample configuration's admin.address and the standalone's token).
	var id string
	eventually(t, 60*time.Second, func() string {
		out, err := runTool(t, dir, 30*time.Second, "messages", "find", "--control-id", "MSG00001", "--json")
		if err != nil {
			return err.Error()
		}
		rows := jsonLines(t, out)
		if len(rows) != 1 || rows[0]["status"] != "delivered" || destStatus(rows[0], "lis") != "delivered" {
			return fmt.Sprintf("messages find --control-id MSG00001: %v, want one row delivered to lis", rows)
		}
		id, _ = rows[0]["message_id"].(string)
		return ""
	})
	if out, err := runTool(t, dir, 30*time.Second, "messages", "show", id); err != nil || !strings.Contains(out, "lis") || !strings.Contains(out, "delivered") {
		t.Errorf("messages show: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, func() string {
		out, err := runTool(t, dir, 30*time.Second, "dlq", "list", "--json")
		if err != nil {
			return err.Error()
		}
		for _, r := range jsonLines(t, out) {
			if r["stage"] == "parse" {
				return ""
			}
		}
		return "dlq list has no parse dead letter: " + out
	})
	sentTimes := func() int {
		n := 0
		for _, m := range recv.messages() {
			if bytes.Contains(m, []byte("|MSG00001|")) {
				n++
			}
		}
		return n
	}
	before := sentTimes()
	if out, err := runTool(t, dir, 60*time.Second, "replay", "--message-id", id, "--destination", "lis", "--resend", "--yes"); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, func() string {
		if n := sentTimes(); n != before+1 {
			return fmt.Sprintf("the LIS got MSG00001 %d times, want %d after the replay", n, before+1)
		}
		return ""
	})
	p.stop(t)
}
