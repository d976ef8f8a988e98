package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/ingress"
)

// startIngress runs only the ingress stage with the interfaces given (on
// free ports), so a test can look at exactly what reached the raw topic.
func startIngress(t *testing.T, ctx context.Context, env *kafkatest.Env, tel *telemetry.Telemetry, its ...ingress.Interface) *ingress.Service {
	t.Helper()
	for i := range its {
		its[i].Protocol, its[i].Address = "mllp", "127.0.0.1:0"
	}
	in := ingress.New(ingress.Config{Interfaces: its, Telemetry: tel}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Stop(context.Background()) })
	return in
}

// rawRecords reads the raw topic from the start until a record whose
// payload holds marker has arrived and the topic has been quiet for a
// moment; everything ingress stored before the marker's ACK is then read.
func rawRecords(t *testing.T, ctx context.Context, env *kafkatest.Env, marker string) []*canonical.Raw {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(env.Kafka.Topic("raw")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*canonical.Raw
	seen := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			v, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			raw := v.(*canonical.Raw)
			out = append(out, raw)
			seen = seen || bytes.Contains(raw.Payload, []byte(marker))
			n++
		})
		if seen && n == 0 {
			return out
		}
	}
	t.Fatalf("the marker %s never reached raw", marker)
	return nil
}

// sendExpect sends msg on a fresh connection and returns the ACK.
func sendExpect(t *testing.T, ctx context.Context, addr, msg string) *hl7v2.Ack {
	t.Helper()
	c := mllp.NewClient(addr, mllp.WithAckTimeout(5*time.Second))
	defer c.Close()
	reply, err := c.Send(ctx, []byte(msg))
	if err != nil {
		t.Fatalf("sending: %v", err)
	}
	ack, err := hl7v2.ParseACK(reply)
	if err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	return ack
}

// metricValue reads one series (name and labels as /metrics prints them)
// from tel; 0 when absent.
func listenerMetric(t *testing.T, tel *telemetry.Telemetry, series string) float64 {
	t.Helper()
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// closedWithin fails unless the server closes nc within d without sending
// a byte.
func closedWithin(t *testing.T, nc net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(nc)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s: connection still open after %v", what, d)
		return
	}
	if len(b) > 0 {
		t.Errorf("%s: server answered %q", what, b[:min(len(b), 40)])
	}
}

// TestListenerClosesTLSAndHTTPClients (D13): a TLS client and an HTTP
// client on the MLLP port are closed at once, and nothing they sent is
// stored; a real sender on the same port is still served.
func TestListenerClosesTLSAndHTTPClients(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tel := telemetry.Nop()
	addr := startIngress(t, ctx, env, tel, ingress.Interface{Name: "lab-in"}).Addr("lab-in")

	for i := range 3 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// A real handshake: Go's ClientHello holds 0x0B and 0x1C, which the
		// framer once read as a message and stored.
		tc := tls.Client(nc, &tls.Config{ServerName: "lab.example", MinVersion: tls.VersionTLS12})
		_ = tc.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		err = tc.HandshakeContext(ctx)
		if err == nil {
			t.Fatal("TLS handshake succeeded on a plain MLLP port")
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("TLS client %d: handshake held %v (%v)", i, d, err)
		}
		nc.Close()
	}
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: lab\r\n\r\n", "POST /fhir HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\n\r\n"} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, nc, time.Second, strings.Fields(req)[0])
		nc.Close()
	}

	marker := message("ADT", 1, 1)
	if ack := sendExpect(t, ctx, addr, marker); ack.Code != hl7v2.AckAccept {
		t.Fatalf("a real sender after them: %+v", ack)
	}
	raws := rawRecords(t, ctx, env, "C001-0001")
	if len(raws) != 1 {
		for _, r := range raws {
			t.Logf("raw record: %q", r.Payload[:min(len(r.Payload), 60)])
		}
		t.Fatalf("raw holds %d records, want only the real message", len(raws))
	}
	for reason, want := range map[string]float64{"tls": 3, "http": 2} {
		series := fmt.Sprintf(`hl7bus_ingress_rejected_connections_total{interface="lab-in",reason=%q}`, reason)
		if got := listenerMetric(t, tel, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// TestListenerOversizeAnswersARNamingTheLimit (D12): a frame over the
// interface's limit gets AR at once, naming that limit, with MSA-2 = its
// MSH-10; one with no MSH still gets an AR; an interface with no limit set
// names the 16 MiB default, never 0. Nothing is stored, and every one of
// them is counted.
func TestListenerOversizeAnswersARNamingTheLimit(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tel := telemetry.Nop()
	in := startIngress(t, ctx, env, tel, ingress.Interface{Name: "small-in", MaxMessageSize: 4096}, ingress.Interface{Name: "default-in"})
	small, dflt := in.Addr("small-in"), in.Addr("default-in")

	big := func(ctl string, n int) string {
		return "MSH|^~\\&|LIS|GENHOSP|HIS|GENHOSP|20240301101500||ORU^R01^ORU_R01|" + ctl + "|P|2.5\r" +
			"PID|1||P1^^^GENHOSP^MR||DOE^PAT\rOBX|1|ED|PDF||^AP^PDF^Base64^" + strings.Repeat("A", n) + "||||||F\r"
	}
	tests := []struct {
		name, addr, msg string
		ctl, limit      string
	}{
		{"over a small limit", small, big("BIG1", 70<<10), "BIG1", "4096"},
		{"enhanced mode", small, strings.Replace(big("BIG2", 8<<10), "|P|2.5\r", "|P|2.5|||AL|NE\r", 1), "BIG2", "4096"},
		{"no MSH", small, "EVN|A01|20240301\rPID|1||P1^^^GENHOSP^MR||DOE^PAT\rNTE|1||" + strings.Repeat("x", 70<<10) + "\r", "", "4096"},
		{"no limit set", dflt, big("BIG3", 17<<20), "BIG3", "16777216"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			ack := sendExpect(t, ctx, tt.addr, tt.msg)
			// At once: as soon as the limit is read, not after a timeout
			// (reading 16 MiB takes seconds under -race).
			if d, most := time.Since(start), 3*time.Second+time.Duration(len(tt.msg)>>20)*time.Second; d > most {
				t.Errorf("AR took %v, want under %v", d, most)
			}
			want := hl7v2.AckReject
			if tt.name == "enhanced mode" {
				want = hl7v2.AckCommitReject
			}
			if ack.Code != want || ack.ControlID != tt.ctl {
				t.Errorf("ACK %s MSA-2 %q, want %s %q", ack.Code, ack.ControlID, want, tt.ctl)
			}
			if text := "message exceeds the maximum size of " + tt.limit + " bytes"; !strings.Contains(ack.Text, text) {
				t.Errorf("ACK text %q, want %q", ack.Text, text)
			}
		})
	}

	if ack := sendExpect(t, ctx, small, message("ADT", 2, 1)); ack.Code != hl7v2.AckAccept {
		t.Fatalf("a small message after them: %+v", ack)
	}
	if raws := rawRecords(t, ctx, env, "C002-0001"); len(raws) != 1 {
		t.Errorf("raw holds %d records, want only the small message (an oversize one cannot be stored)", len(raws))
	}
	for series, want := range map[string]float64{
		`hl7bus_ingress_messages_total{ack="AR",interface="small-in",type="ORU^R01"}`:   1,
		`hl7bus_ingress_messages_total{ack="CR",interface="small-in",type="ORU^R01"}`:   1,
		`hl7bus_ingress_messages_total{ack="AR",interface="small-in",type="unknown"}`:   1,
		`hl7bus_ingress_messages_total{ack="AR",interface="default-in",type="ORU^R01"}`: 1,
	} {
		if got := listenerMetric(t, tel, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// readyz returns /readyz's status and body, through client.
func readyz(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestListenerCapAndTimeouts: connections beyond max_connections are
// closed at once and counted, the interface keeps serving (and stays
// ready) through the burst and serves again when a slot frees; the idle
// and frame read timeouts are the interface's own.
func TestListenerCapAndTimeouts(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tel := telemetry.Nop()
	in := startIngress(t, ctx, env, tel,
		ingress.Interface{Name: "capped-in", MaxConnections: 4},
		ingress.Interface{Name: "quick-in", IdleTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	capped := in.Addr("capped-in")
	web := httptest.NewServer(tel.Handler())
	defer web.Close()

	var idle []net.Conn
	for range 4 {
		nc, err := net.Dial("tcp", capped)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		idle = append(idle, nc)
	}
	gauge := `hl7bus_ingress_connections{interface="capped-in"}`
	for deadline := time.Now().Add(5 * time.Second); listenerMetric(t, tel, gauge) != 4; {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want 4", gauge, listenerMetric(t, tel, gauge))
		}
		time.Sleep(10 * time.Millisecond)
	}
	const burst = 50
	start := time.Now()
	for i := range burst {
		nc, err := net.Dial("tcp", capped)
		if err != nil {
			t.Fatalf("connection %d beyond the cap: %v", i, err)
		}
		closedWithin(t, nc, time.Second, "connection beyond the cap")
		nc.Close()
	}
	t.Logf("%d connections beyond the cap closed in %v", burst, time.Since(start))
	if code, body := readyz(t, web.Client(), web.URL); code != http.StatusOK {
		t.Errorf("/readyz %d %q during a burst the cap refused", code, body)
	}
	if got := listenerMetric(t, tel, `hl7bus_ingress_rejected_connections_total{interface="capped-in",reason="max_connections"}`); got != burst {
		t.Errorf("refused connections counted %v, want %d", got, burst)
	}
	if got := listenerMetric(t, tel, gauge); got != 4 {
		t.Errorf("%s = %v after the burst, want 4", gauge, got)
	}

	idle[0].Close()
	for deadline := time.Now().Add(5 * time.Second); listenerMetric(t, tel, gauge) != 3; {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection's slot never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ack := sendExpect(t, ctx, capped, message("ADT", 3, 1)); ack.Code != hl7v2.AckAccept {
		t.Fatalf("a sender after the burst: %+v", ack)
	}

	quick := in.Addr("quick-in")
	nc, err := net.Dial("tcp", quick)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start = time.Now()
	closedWithin(t, nc, 3*time.Second, "idle connection")
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle connection closed after %v, want about idle_timeout 300ms", d)
	}
	half, err := net.Dial("tcp", quick)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write([]byte("\x0bMSH|^~\\&|slow")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	closedWithin(t, half, 3*time.Second, "half-sent frame")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("half-sent frame held %v, want about read_timeout 300ms", d)
	}
}

// TestListenerSurvivesDescriptorExhaustion (D3) runs ingress as a process
// with few file descriptors and opens more idle connections than it has:
// accept fails with EMFILE, /readyz says the listener is not ready (asked
// on a connection opened before, since a new one could not be accepted
// either), and once the connections close the same port is ready and
// serves again. Before, the listener stopped for good while /readyz said
// ready.
func TestListenerSurvivesDescriptorExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	mllpAddr, httpAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
kafka:
  brokers: [%s]
  topic_prefix: "%s"
  partitions: 3
registry:
  url: %s
interfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
`, strings.Join(env.Kafka.Brokers, ", "), env.Kafka.TopicPrefix, env.RegistryURL, mllpAddr))
	// The shell lowers the limit for the process it execs, as `ulimit -n`
	// does for an operator; the cap (1000 by default) is far above it, so
	// accept itself fails.
	const fds = 64
	limited := startShell(t, "ingress-limited", fmt.Sprintf("ulimit -n %d && exec \"$0\" \"$@\"", fds),
		hl7busBinary(t), "ingress", "--config", cfg, "--instance", "fd0", "--http-address", httpAddr)
	waitListening(t, mllpAddr, 60*time.Second)
	base := "http://" + httpAddr
	// One keep-alive connection to /readyz, opened while descriptors are
	// free and reused for every probe below.
	probe := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _ := readyz(t, probe, base); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ingress never became ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ack := sendExpect(t, ctx, mllpAddr, message("ADT", 4, 1)); ack.Code != hl7v2.AckAccept {
		t.Fatalf("before: %+v", ack)
	}

	// More connections than the process has descriptors: the kernel
	// completes them into the backlog, accept fails for the ones beyond.
	var held []net.Conn
	for range 2 * fds {
		nc, err := net.DialTimeout("tcp", mllpAddr, time.Second)
		if err != nil {
			break // the backlog is full as well
		}
		held = append(held, nc)
	}
	t.Logf("holding %d connections against %d descriptors", len(held), fds)
	unready := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		code, body := readyz(t, probe, base)
		if code == http.StatusServiceUnavailable && strings.Contains(body, "ingress listener adt-in") {
			unready = true
			break
		}
	}
	if !unready {
		t.Error("/readyz stayed ready while the listener could not accept")
	}
	for _, nc := range held {
		nc.Close()
	}

	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := readyz(t, probe, base); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover after the connections closed")
		}
	}
	if ack := sendExpect(t, ctx, mllpAddr, message("ADT", 4, 2)); ack.Code != hl7v2.AckAccept {
		t.Fatalf("after: %+v", ack)
	}
	limited.stop(t)
}

// startShell runs script with sh -c, args as $0 $1 ..., as a process
// whose output goes to a log shown when the test fails (the same
// bookkeeping as startProcess, for a command that is not the binary).
func startShell(t *testing.T, name, script string, args ...string) *process {
	t.Helper()
	return startCmd(t, name, exec.Command("sh", append([]string{"-c", script}, args...)...))
}
