package e2e

// Issue 8, "no PHI in any error text": one message with a distinctive
// patient name and ID goes through every failure path the issue lists
// (ingress verdicts, batches, sizes, profiles, validation, egress
// failures), and nothing hl7bus writes about it besides the message itself
// may carry the name or the ID: not a log line (at debug level), a
// dead-letter reason, a delivery record, a span, a metric nor an ACK's
// error text.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// The sentinels: adt() puts them in PID-5 and PID-3.
const (
	phiName = "ZZTESTNAME"
	phiID   = "99887766"
)

// lockedBuffer is a bytes.Buffer every stage's logger writes to at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// phiIn returns which sentinels s holds.
func phiIn(s string) []string {
	var found []string
	for _, p := range []string{phiName, phiID} {
		if strings.Contains(s, p) {
			found = append(found, p)
		}
	}
	return found
}

// phiReceiver is the destination: it answers AE for one control ID, an
// ACK naming another message for another, garbage for a third and AA
// otherwise. Its AE and garbage quote the patient, as a careless LIS
// might: egress must not copy a receiver's text either.
type phiReceiver struct {
	addr string
	mu   sync.Mutex
	got  map[string]int // control ID -> arrivals
}

func startPHIReceiver(t *testing.T, aeCtl, wrongCtl, garbageCtl string) *phiReceiver {
	t.Helper()
	r := &phiReceiver{got: map[string]int{}}
	srv := mllp.NewServer(mllp.HandlerFunc(func(_ context.Context, _ mllp.ConnInfo, f []byte) ([]byte, error) {
		m, err := hl7v2.Parse(f)
		if err != nil {
			return nil, err
		}
		ctl := m.ControlID()
		r.mu.Lock()
		r.got[ctl]++
		r.mu.Unlock()
		head := "MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20261201101500||ACK^A01^ACK|R" + ctl + "|P|" + m.Version() + "\r"
		switch ctl {
		case aeCtl:
			return []byte(head + "MSA|AE|" + ctl + "|patient " + phiName + " " + phiID + " unknown\r" +
				"ERR|||207^Application internal error^HL70357|E||||patient " + phiName + " not found\r"), nil
		case wrongCtl:
			return []byte(head + "MSA|AA|SOMEOTHERMSG\r"), nil
		case garbageCtl:
			return []byte("NOT HL7 " + phiName + " " + phiID), nil
		}
		return []byte(head + "MSA|AA|" + ctl + "\r"), nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return r
}

func (r *phiReceiver) arrivals(ctl string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[ctl]
}

// replyText is the part of an ACK that must never quote the patient:
// everything but its MSH, which may echo the sender's MSH fields (and in
// one case the sentinels are put in MSH-2).
func replyText(reply []byte) string {
	var out []string
	for _, seg := range strings.FieldsFunc(string(reply), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !strings.HasPrefix(seg, "MSH") {
			out = append(out, seg)
		}
	}
	return strings.Join(out, "\r")
}

// stringsOf collects every string in a native Avro value, by path so a
// leak names where it is, except the fields that hold the message itself
// (payload, value, and key, which is the ordering key: PID-3 by design).
func stringsOf(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case string:
		out[path] = x
	case []byte:
		// Raw bytes fields are the message (payload, value, key); headers
		// are bytes too but not the message: they are checked.
		if strings.HasPrefix(path, ".headers") {
			out[path] = string(x)
		}
	case map[string]any:
		for k, e := range x {
			switch k {
			case "payload", "value", "key":
				continue
			}
			stringsOf(path+"."+k, e, out)
		}
	case []any:
		for i, e := range x {
			stringsOf(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	}
}

func TestNoPHIInAnyOutput(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tel := telemetry.New(tp)

	const aeCtl, wrongCtl, garbageCtl, lastCtl = "PHIAE", "PHIWRONG", "PHIGARBAGE", "PHILAST"
	recv := startPHIReceiver(t, aeCtl, wrongCtl, garbageCtl)

	profile := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(profile, []byte("name: strict\nrequired: [PID-7, PV1-3]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prof, err := hl7v2.LoadProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	const maxSize = 16 << 10
	in := ingress.New(ingress.Config{Telemetry: tel, Interfaces: []ingress.Interface{
		{Name: "in", Protocol: "mllp", Address: "127.0.0.1:0", MaxMessageSize: maxSize},
		{Name: "strict", Protocol: "mllp", Address: "127.0.0.1:0", Profile: profile,
			Ack: ingress.AckPolicy{OnProfileError: ingress.OnProfileErrorError}},
	}}, env.Kafka, env.Serde, log)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stages := []interface{ Run(context.Context) error }{
		parse.New(parse.Config{Instance: "0", Telemetry: tel, Profiles: map[string]*hl7v2.Profile{"strict": prof}}, env.Kafka, env.Serde, log),
		transform.New(transform.Config{Instance: "0", Telemetry: tel}, env.Kafka, env.Serde, log),
		route.New(route.Config{Instance: "0", Telemetry: tel, Rules: routes(t, route.Rule{Name: "all", Destinations: []string{"lis"}})}, env.Kafka, env.Serde, log),
		egress.New(egress.Config{Telemetry: tel, Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: recv.addr,
			AckTimeout: 2 * time.Second,
			Retry:      egress.Retry{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}}}}, env.Kafka, env.Serde, log),
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Run(runCtx); err != nil && runCtx.Err() == nil {
				t.Errorf("stage: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		_ = in.Stop(context.Background())
		stop()
		wg.Wait()
	})

	pdf := make([]byte, maxSize)
	for i := range pdf {
		pdf[i] = byte(i * 7)
	}
	batch := "FHS|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500\rBHS|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||||PHIBATCH\r" +
		adt("PHIB1") + adt("PHIB2") + "BTS|" + phiID + "\rFTS|1\r"
	ack := "MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20261201101500||ACK^A01^ACK|PHIACK|P|2.5\rMSA|AA|X123|" + phiName + " " + phiID + "\r" +
		"PID|1||" + phiID + "^^^GENHOSP^MR||" + phiName + "^JOHN\r"
	// Each case carries the sentinels; answer is MSA-1 ("" for none).
	cases := []struct {
		name, iface, frame, answer string
	}{
		{"corrupt MSH-1, LF segment ends", "in", strings.Replace(strings.ReplaceAll(adt("PHIMSH1"), "\r", "\n"), "MSH|", "MSH#", 1), "AR"},
		{"the sentinels in MSH-2", "in", strings.Replace(adt("PHIMSH2"), "MSH|^~\\&|", "MSH|^~\\&"+phiName+phiID+"|", 1), "AR"},
		{"duplicate delimiters", "in", strings.Replace(adt("PHIDELIM"), "MSH|^~\\&|", "MSH|^^\\&|", 1), "AR"},
		{"no MSH-9, MSH-10, MSH-12", "in", "MSH|^~\\&|A\rPID|1||" + phiID + "^^^GENHOSP^MR||" + phiName + "^JOHN\r", "AR"},
		{"a stray MSA", "in", adt("PHIMSA", "MSA|AA|X|"+phiName+"\r"), "AR"},
		{"a real ACK", "in", ack, ""},
		{"two MSH without an envelope", "in", adt("PHITWO1") + adt("PHITWO2"), "AR"},
		{"a batch whose BTS-1 is the ID", "in", batch, "AR"},
		{"too large", "in", adt("PHIBIG", "OBX|1|ED|PDF||^AP^PDF^Base64^"+base64.StdEncoding.EncodeToString(pdf)+"||||||F\r"), "AR"},
		{"fails the profile", "strict", adt("PHIPROF"), "AE"},
		{"a bad segment name", "in", adt("PHISEG", "P@D|1||"+phiID+"||"+phiName+"\r"), "AR"},
		{"NUL bytes in PID-5", "in", strings.Replace(adt("PHINUL"), phiName+"^", phiName+"\x00\x00^", 1), "AA"},
		{"an invalid date", "in", strings.Replace(adt("PHIDATE"), "||19800101|", "||1980"+phiID+"|", 1), "AA"},
		{"an unknown table code", "in", strings.Replace(adt("PHITABLE"), "||19800101|M\r", "||19800101|"+phiName+"\r", 1), "AA"},
		{"answered AE by the receiver", "in", adt(aeCtl), "AA"},
		{"answered with another MSA-2", "in", adt(wrongCtl), "AA"},
		{"answered garbage", "in", adt(garbageCtl), "AA"},
		{"a good message", "in", adt(lastCtl), "AA"},
	}
	rejectedAtIngress := 0
	for _, c := range cases {
		if !strings.Contains(c.frame, phiName) || !strings.Contains(c.frame, phiID) {
			t.Fatalf("%s: the case does not carry both sentinels", c.name)
		}
		reply, err := sendOne(ctx, in.Addr(c.iface), []byte(c.frame), 3*time.Second)
		if c.answer == "" {
			if err == nil {
				t.Errorf("%s: answered %q, want no answer", c.name, reply)
			}
			rejectedAtIngress++
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if code, _, _, _ := replyIssues(t, reply); code != c.answer {
			t.Errorf("%s: answered %s, want %s: %q", c.name, code, c.answer, replyText(reply))
		}
		// A message over the interface's limit is refused before it is
		// read whole: it is not stored, so parse has nothing to dead-letter.
		if c.answer != "AA" && c.name != "too large" {
			rejectedAtIngress++
		}
		if found := phiIn(replyText(reply)); len(found) > 0 {
			t.Errorf("%s: the reply quotes %v: %q", c.name, found, reply)
		}
	}

	// Everything has happened once the last good message is delivered and
	// the three messages the receiver refuses are dead-lettered.
	for deadline := time.Now().Add(60 * time.Second); recv.arrivals(lastCtl) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the last good message was never delivered")
		}
	}
	dlqEgress := readNative(t, ctx, env, env.Kafka.DLQTopic("egress"), 60*time.Second, func(r []map[string]any) bool { return len(r) >= 3 })
	if len(dlqEgress) != 3 {
		t.Errorf("dlq.egress holds %d records, want the 3 the receiver refused", len(dlqEgress))
	}
	dlqParse := readNative(t, ctx, env, env.Kafka.DLQTopic("parse"), 30*time.Second, func(r []map[string]any) bool { return len(r) >= rejectedAtIngress })
	if len(dlqParse) < rejectedAtIngress {
		t.Errorf("dlq.parse holds %d records, want at least the %d rejected at ingress", len(dlqParse), rejectedAtIngress)
	}
	// Delivered: the three with validation issues and the last one, once
	// each; refused: two attempts each.
	wantDeliveries := 4 + 3*2
	deliveries := readNative(t, ctx, env, env.Kafka.Topic("delivery"), 30*time.Second, func(r []map[string]any) bool { return len(r) >= wantDeliveries })
	if len(deliveries) < wantDeliveries {
		t.Errorf("delivery holds %d records, want %d", len(deliveries), wantDeliveries)
	}
	// Whatever stage dead-lettered anything else, its reasons are checked too.
	var others []map[string]any
	for _, st := range []string{"transform", "route"} {
		others = append(others, readNative(t, ctx, env, env.Kafka.DLQTopic(st), time.Second, func([]map[string]any) bool { return false })...)
	}
	for topic, recs := range map[string][]map[string]any{"dlq.parse": dlqParse, "dlq.egress": dlqEgress, "dlq.transform/route": others, "delivery": deliveries} {
		for i, r := range recs {
			fields := map[string]string{}
			stringsOf("", r, fields)
			for path, s := range fields {
				if found := phiIn(s); len(found) > 0 {
					t.Errorf("%s record %d (%s, %s): %s quotes %v: %q", topic, i, str(r["message_id"]), str(r["control_id"]), path, found, s)
				}
			}
		}
	}
	// raw: each verdict's reason (the rest of a raw record is the frame
	// and its receipt). Every frame but the too-large one is stored.
	raw := readNative(t, ctx, env, env.Kafka.Topic("raw"), 30*time.Second, func(r []map[string]any) bool { return len(r) >= len(cases)-1 })
	if len(raw) != len(cases)-1 {
		t.Errorf("raw holds %d records, want %d", len(raw), len(cases)-1)
	}
	verdicts := 0
	for _, r := range raw {
		if rej, ok := nativeField(r, "rejected").(map[string]any); ok {
			verdicts++
			fields := map[string]string{}
			stringsOf(".rejected", rej, fields)
			for path, s := range fields {
				if found := phiIn(s); len(found) > 0 {
					t.Errorf("raw %s: %s quotes %v: %q", str(r["message_id"]), path, found, s)
				}
			}
		}
	}
	if verdicts != rejectedAtIngress {
		t.Errorf("raw holds %d verdicts, want %d", verdicts, rejectedAtIngress)
	}
	// A validation report names locations and rules, never values: the
	// messages accepted with issues have a report, and it quotes nothing.
	flagged := map[string]string{"PHINUL": "", "PHIDATE": "", "PHITABLE": ""}
	parsed := readNative(t, ctx, env, env.Kafka.Topic("parsed"), 30*time.Second, func(r []map[string]any) bool { return len(r) >= 4+3 })
	for _, r := range parsed {
		ctl := str(nativeField(r, "header", "control_id"))
		fields := map[string]string{}
		stringsOf(".validation", r["validation"], fields)
		for path, s := range fields {
			if found := phiIn(s); len(found) > 0 {
				t.Errorf("parsed %s: %s quotes %v: %q", ctl, path, found, s)
			}
		}
		if _, ok := flagged[ctl]; ok {
			issues, _ := nativeField(r, "validation", "issues").([]any)
			flagged[ctl] = fmt.Sprint(len(issues))
		}
	}
	for ctl, n := range flagged {
		if n == "" || n == "0" {
			t.Errorf("parsed %s: %q validation issues, want its flaw reported", ctl, n)
		}
	}
	for _, r := range dlqParse {
		if str(r["reason"]) == "" {
			t.Errorf("dlq.parse record %s has no reason", str(r["message_id"]))
		}
	}

	// Logs, at debug level, from every stage and the Kafka clients.
	lines := strings.Split(logs.String(), "\n")
	for _, l := range lines {
		if found := phiIn(l); len(found) > 0 {
			t.Errorf("a log line quotes %v: %s", found, l)
		}
	}
	if len(lines) < 10 {
		t.Errorf("only %d log lines: the stages did not log to the test's logger", len(lines))
	}

	// Spans: attributes, events and status.
	ended := spans.Ended()
	if len(ended) == 0 {
		t.Error("no spans recorded")
	}
	for _, s := range ended {
		texts := map[string]string{"name": s.Name(), "status": s.Status().Description}
		for _, a := range s.Attributes() {
			texts["attribute "+string(a.Key)] = a.Value.String()
		}
		for i, e := range s.Events() {
			texts[fmt.Sprintf("event %d name", i)] = e.Name
			for _, a := range e.Attributes {
				texts[fmt.Sprintf("event %d (%s) attribute %s", i, e.Name, a.Key)] = a.Value.String()
			}
		}
		for where, text := range texts {
			if found := phiIn(text); len(found) > 0 {
				t.Errorf("span %q: %s quotes %v: %q", s.Name(), where, found, text)
			}
		}
	}

	// Metrics, as /metrics exposes them.
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(body), "\n") {
		if found := phiIn(l); len(found) > 0 {
			t.Errorf("/metrics quotes %v: %s", found, l)
		}
	}
	if !strings.Contains(string(body), "hl7bus_egress_attempt_failures_total") {
		t.Error("/metrics lacks the egress failures: the failure paths did not run")
	}
	t.Logf("checked %d log lines, %d spans, %d dead letters, %d delivery records", len(lines), len(ended),
		len(dlqParse)+len(dlqEgress)+len(others), len(deliveries))
}
