package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/mllp"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// The ingress ACK policy, end to end through MLLP: what the sender is
// answered, and where the frame ends up (raw with the verdict, dlq.parse
// with class rejected_at_ingress, never out.lis nor the receiver).

const (
	classRejectedAtIngress = "rejected_at_ingress"
	// sentinelCtl names the good message each test sends last: once the
	// receiver has it, everything sent before it has been through parse.
	sentinelCtl = "SENTINEL"
)

// startLISPipeline runs all five stages with the one interface it (on a
// free port) and a catch-all route to a receiver "lis".
func startLISPipeline(t *testing.T, ctx context.Context, env *kafkatest.Env, it ingress.Interface) (*ingress.Service, *receiver) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	recv := startReceiver(t)
	it.Protocol, it.Address = "mllp", "127.0.0.1:0"
	in := ingress.New(ingress.Config{Interfaces: []ingress.Interface{it}}, env.Kafka, env.Serde, log)
	if err := in.Start(ctx); err != nil {
		t.Fatal(err)
	}
	profiles := map[string]*hl7v2.Profile{}
	if it.Profile != "" {
		p, err := hl7v2.LoadProfile(it.Profile)
		if err != nil {
			t.Fatal(err)
		}
		profiles[it.Name] = p
	}
	stages := []interface{ Run(context.Context) error }{
		parse.New(parse.Config{Instance: "0", Profiles: profiles}, env.Kafka, env.Serde, log),
		transform.New(transform.Config{Instance: "0"}, env.Kafka, env.Serde, log),
		route.New(route.Config{Instance: "0", Rules: routes(t, route.Rule{Name: "all", Destinations: []string{"lis"}})}, env.Kafka, env.Serde, log),
		egress.New(egress.Config{Destinations: []egress.Destination{{Name: "lis", Protocol: "mllp", Address: recv.addr,
			Retry: egress.Retry{InitialBackoff: 50 * time.Millisecond}}}}, env.Kafka, env.Serde, log),
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A stage stopped while it was still starting (a test that
			// failed early) reports the cancellation: not a failure.
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
	return in, recv
}

// sendOne sends frame on a fresh connection; a nil reply with a nil error
// never happens: no answer within timeout is an error.
func sendOne(ctx context.Context, addr string, frame []byte, timeout time.Duration) ([]byte, error) {
	c := mllp.NewClient(addr, mllp.WithAckTimeout(timeout))
	defer c.Close()
	return c.Send(ctx, frame)
}

// adt is a well-formed ADT^A01 with control ID ctl and the extra segments.
func adt(ctl string, extra ...string) string {
	return "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||ADT^A01^ADT_A01|" + ctl + "|P|2.5\r" +
		"EVN|A01|20261201101500\r" + strings.Join(extra, "") +
		"PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN||19800101|M\rPV1|1|I\r"
}

// waitReceived waits until the receiver holds a message with control ID ctl.
func waitReceived(t *testing.T, recv *receiver, ctl string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, f := range recv.messages() {
			if m, err := hl7v2.Parse(f); err == nil && m.ControlID() == ctl {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the receiver never got %s", ctl)
}

// readNative returns every committed record of topic, decoded to goavro's
// native form, polling until done says it has enough or within ends.
func readNative(t *testing.T, ctx context.Context, env *kafkatest.Env, topic string, within time.Duration, done func([]map[string]any) bool) []map[string]any {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pollCtx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var recs []map[string]any
	for !done(recs) && pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			v, err := env.Serde.DecodeNative(ctx, r.Value)
			if err != nil {
				t.Errorf("%s offset %d: %v", topic, r.Offset, err)
				return
			}
			if m, ok := v.(map[string]any); ok {
				recs = append(recs, m)
			}
		})
	}
	return recs
}

// nativeField walks a native record by field names, unwrapping unions.
func nativeField(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := unwrapUnion(v).(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return unwrapUnion(v)
}

func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, x := range m {
			if k == "string" || strings.HasPrefix(k, "org.hl7bus.") {
				return x
			}
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

// errIssue is one ERR segment of a v2.5+ reply: code and location.
type errIssue struct {
	code int
	loc  string // SEG-n, e.g. MSH-10
	text string
}

// replyIssues reads a reply's MSA-1, MSA-2, MSH-10 and ERR segments.
func replyIssues(t *testing.T, reply []byte) (code, msa2, id string, issues []errIssue) {
	t.Helper()
	m, err := hl7v2.Parse(reply)
	if err != nil {
		t.Fatalf("reply %q: %v", reply, err)
	}
	msa, _ := m.Segment("MSA", 1)
	for i := 1; i <= m.Count("ERR"); i++ {
		e, _ := m.Segment("ERR", i)
		n, _ := strconv.Atoi(e.Field(3).Comp(1).String())
		loc := e.Field(2).Comp(1).String()
		if f := e.Field(2).Comp(3).String(); f != "" {
			loc += "-" + f
		}
		issues = append(issues, errIssue{code: n, loc: loc, text: e.Field(8).String()})
	}
	return msa.Field(1).String(), msa.Field(2).String(), m.ControlID(), issues
}

func TestIngressVerdictsEndToEnd(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	in, recv := startLISPipeline(t, ctx, env, ingress.Interface{Name: "in"})
	addr := in.Addr("in")

	badBatch := "FHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000\rBHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000||||BATCH7\r" +
		strings.Replace(adt("BAD1"), "ADT^A01", "ADT^A08", 1) + adt("BAD2") + "BTS|5\rFTS|3\r"
	tests := []struct {
		name    string
		frame   string
		verdict string
		// Reply: MSA-1, MSA-2 and the ERR segments expected (code and
		// location), and a text one ERR-8 must contain.
		ack      string
		msa2     string
		issues   []errIssue
		textHas  string
		noAnswer bool
	}{
		{name: "D9 MSH without MSH-9, MSH-10, MSH-12 (probe 1.2)", frame: "MSH|^~\\&|A\r", verdict: "missing_header_field",
			ack: "AR", issues: []errIssue{{code: 101, loc: "MSH-9"}, {code: 101, loc: "MSH-10"}, {code: 101, loc: "MSH-12"}}},
		{name: "D9 empty MSH-10 (probe 1.19)", frame: adt(""), verdict: "missing_header_field",
			ack: "AR", issues: []errIssue{{code: 101, loc: "MSH-10"}}},
		{name: "D4 ADT with a stray MSA (probe 1.17b)", frame: adt("MSA1", "MSA|AA|X\r"), verdict: "unexpected_msa",
			ack: "AR", msa2: "MSA1", issues: []errIssue{{code: 100, loc: "MSA"}}},
		{name: "D10 two MSH without an envelope (probe 1.16b)", frame: adt("TWO1") + adt("TWO2"), verdict: "several_messages",
			ack: "AR", msa2: "TWO1", textHas: "without a batch envelope"},
		{name: "D10 batch whose BTS-1 is wrong (probe 1.15)", frame: badBatch, verdict: "batch_count",
			ack: "AR", msa2: "BATCH7", textHas: "BTS-1"},
		{name: "D16 duplicate delimiters in MSH-2: MSA-2 still names the message (probe 1.3)",
			frame: strings.Replace(adt("DELIM1"), "MSH|^~\\&|", "MSH|^^\\&|", 1), verdict: "unparseable",
			ack: "AR", msa2: "DELIM1", issues: []errIssue{{code: 102, loc: "MSH-2"}}},
		{name: "D8 corrupt MSH-1 must not quote the PID (probe 5.5)",
			frame: strings.Replace(strings.ReplaceAll(adt("PHI4"), "\r", "\n"), "MSH|", "MSH#", 1), verdict: "unparseable",
			ack: "AR", textHas: "MSH"},
		{name: "D4 a real ACK as input (probe 1.17)", frame: "MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20261201101500||ACK^A01^ACK|REALACK|P|2.5\rMSA|AA|X123\r",
			verdict: "acknowledgement", noAnswer: true},
	}
	ids := map[string]string{} // test name -> message ID
	for _, tt := range tests {
		reply, err := sendOne(ctx, addr, []byte(tt.frame), 2*time.Second)
		if tt.noAnswer {
			if err == nil {
				t.Errorf("%s: answered %q; an acknowledgement is never acknowledged", tt.name, reply)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		code, msa2, id, issues := replyIssues(t, reply)
		ids[tt.name] = id
		if bytes.Contains(reply, []byte("ZZTESTNAME")) || bytes.Contains(reply, []byte("99887766")) {
			t.Errorf("%s: the reply quotes the patient: %q", tt.name, reply)
		}
		if code != tt.ack || msa2 != tt.msa2 {
			t.Errorf("%s: answered %s with MSA-2 %q, want %s %q: %q", tt.name, code, msa2, tt.ack, tt.msa2, reply)
		}
		for _, want := range tt.issues {
			found := false
			for _, is := range issues {
				found = found || is.code == want.code && is.loc == want.loc
			}
			if !found {
				t.Errorf("%s: no ERR %d at %s in %+v", tt.name, want.code, want.loc, issues)
			}
		}
		if tt.textHas != "" && !bytes.Contains(reply, []byte(tt.textHas)) {
			t.Errorf("%s: the reply does not say %q: %q", tt.name, tt.textHas, reply)
		}
	}
	if reply, err := sendOne(ctx, addr, []byte(adt(sentinelCtl)), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if code, _, _, _ := replyIssues(t, reply); code != "AA" {
		t.Fatalf("a good message got %s", code)
	}
	waitReceived(t, recv, sentinelCtl, 60*time.Second)

	// raw: every frame stored once, with the verdict.
	raw := readNative(t, ctx, env, env.Kafka.Topic("raw"), 20*time.Second, func(r []map[string]any) bool { return len(r) >= len(tests)+1 })
	dead := readNative(t, ctx, env, env.Kafka.DLQTopic("parse"), 20*time.Second, func(r []map[string]any) bool { return len(r) >= len(tests) })
	for _, tt := range tests {
		var rec map[string]any
		for _, r := range raw {
			if id, ok := ids[tt.name]; ok && str(r["message_id"]) == id || !ok && bytes.Equal(nativeField(r, "payload").([]byte), []byte(tt.frame)) {
				rec = r
			}
		}
		if rec == nil {
			t.Errorf("%s: not stored in raw", tt.name)
			continue
		}
		id := str(rec["message_id"])
		if got := str(nativeField(rec, "rejected", "code")); got != tt.verdict {
			t.Errorf("%s: raw verdict %q, want %q", tt.name, got, tt.verdict)
		}
		if reason := str(nativeField(rec, "rejected", "reason")); reason == "" || strings.Contains(reason, "ZZTESTNAME") || strings.Contains(reason, "99887766") {
			t.Errorf("%s: verdict reason %q (empty or with content)", tt.name, reason)
		}
		found := false
		for _, d := range dead {
			if str(d["message_id"]) == id {
				found = true
				if str(d["error_class"]) != classRejectedAtIngress || !strings.Contains(str(d["reason"]), tt.verdict) {
					t.Errorf("%s: dead letter class %q reason %q", tt.name, d["error_class"], d["reason"])
				}
			}
		}
		if !found {
			t.Errorf("%s: no dead letter in dlq.parse", tt.name)
		}
	}
	// Nothing answered AR (or not answered) was routed or delivered.
	out := readNative(t, ctx, env, env.Kafka.OutTopic("lis"), 10*time.Second, func(r []map[string]any) bool {
		for _, x := range r {
			if str(x["control_id"]) == sentinelCtl {
				return true
			}
		}
		return false
	})
	if len(out) != 1 {
		t.Errorf("out.lis holds %d records, want only the good message", len(out))
	}
	if got := recv.messages(); len(got) != 1 {
		t.Errorf("the receiver got %d messages, want only the good one", len(got))
	}
}

func TestIngressBatchEndToEnd(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	in, recv := startLISPipeline(t, ctx, env, ingress.Interface{Name: "in"})
	batch, err := os.ReadFile(filepath.Join("..", "..", "..", "libs", "hl7v2", "testdata", "batch_file.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	reply, err := sendOne(ctx, in.Addr("in"), batch, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The answer is the standard's acknowledgement batch: the envelope
	// mirrored, one ACK per message of each batch.
	f, err := hl7v2.ParseBatch(reply)
	if err != nil {
		t.Fatalf("the reply is not a batch: %v: %q", err, reply)
	}
	if !f.Header.Present() || len(f.Batches) != 2 || len(f.Batches[0].Messages) != 2 || len(f.Batches[1].Messages) != 0 {
		t.Fatalf("reply batch %q", reply)
	}
	parent := ""
	for i, m := range f.Batches[0].Messages {
		ack, err := hl7v2.ParseACK(m.Bytes())
		if err != nil || ack.Code != "AA" || ack.ControlID != "B1M"+strconv.Itoa(i+1) {
			t.Fatalf("ACK %d: %+v %v", i+1, ack, err)
		}
		p, n, ok := strings.Cut(m.ControlID(), "-")
		if !ok || n != strconv.Itoa(i+1) || parent != "" && p != parent {
			t.Fatalf("ACK %d has MSH-10 %q, want <parent>-%d", i+1, m.ControlID(), i+1)
		}
		parent = p
	}
	waitReceived(t, recv, "B1M1", 60*time.Second)
	waitReceived(t, recv, "B1M2", 10*time.Second)

	raw := readNative(t, ctx, env, env.Kafka.Topic("raw"), 10*time.Second, func(r []map[string]any) bool { return len(r) >= 1 })
	if len(raw) != 1 || str(raw[0]["message_id"]) != parent || !bytes.Equal(raw[0]["payload"].([]byte), batch) || nativeField(raw[0], "rejected") != nil {
		t.Fatalf("raw holds %d records; want the one frame, accepted", len(raw))
	}
	parsed := readNative(t, ctx, env, env.Kafka.Topic("parsed"), 10*time.Second, func(r []map[string]any) bool { return len(r) >= 2 })
	if len(parsed) != 2 {
		t.Fatalf("parsed holds %d records, want 2", len(parsed))
	}
	for _, p := range parsed {
		ctl := str(nativeField(p, "header", "control_id"))
		want := parent + "-" + strings.TrimPrefix(ctl, "B1M")
		if str(p["message_id"]) != want || str(nativeField(p, "parent_message_id")) != parent || !bytes.HasPrefix(p["payload"].([]byte), []byte("MSH|")) {
			t.Errorf("parsed %s: message_id %q parent %v", ctl, p["message_id"], nativeField(p, "parent_message_id"))
		}
	}
}

func TestIngressTooLargeForTheTopicIsAR(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	in, recv := startLISPipeline(t, ctx, env, ingress.Interface{Name: "in"})
	// Every stage raises its topics' max.message.bytes to the record limit
	// when it starts: wait until one message went through them all, so none
	// undoes the misconfiguration below.
	if _, err := sendOne(ctx, in.Addr("in"), []byte(adt("WARM1")), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, recv, "WARM1", 60*time.Second)
	// Misconfiguration: the topic holds less than the interface accepts
	// (say, an operator lowered it, or hl7bus may not alter topic configs).
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	limit := "65536"
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, env.Kafka.Topic("raw"))
	if err == nil {
		_, err = resps.On(env.Kafka.Topic("raw"), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	// A PDF-like OBX-5: random base64, so compression cannot bring the
	// record under the limit.
	pdf := make([]byte, 150000)
	rand.New(rand.NewSource(1)).Read(pdf)
	big := adt("BIG1", "OBX|1|ED|PDF||^AP^PDF^Base64^"+base64.StdEncoding.EncodeToString(pdf)+"||||||F\r")
	reply, err := sendOne(ctx, in.Addr("in"), []byte(big), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	code, msa2, id, issues := replyIssues(t, reply)
	if code != "AR" || msa2 != "BIG1" || len(issues) == 0 || !strings.Contains(issues[0].text, "too large") || !strings.Contains(issues[0].text, "65536 bytes") {
		t.Fatalf("answered %s %q %+v; want AR saying too large and naming the limit", code, msa2, issues)
	}
	if _, err := sendOne(ctx, in.Addr("in"), []byte(adt(sentinelCtl)), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, recv, sentinelCtl, 60*time.Second)
	raw := readNative(t, ctx, env, env.Kafka.Topic("raw"), 10*time.Second, func(r []map[string]any) bool { return len(r) >= 3 })
	found := false
	for _, r := range raw {
		if str(r["message_id"]) == id {
			found = str(nativeField(r, "rejected", "code")) == "too_large"
		}
	}
	if !found {
		t.Errorf("the receipt of the too-large message is not in raw with verdict too_large")
	}
	if len(recv.messages()) != 2 {
		t.Errorf("the receiver got %d messages, want only the two good ones", len(recv.messages()))
	}
}

func TestIngressProfileErrorIsAE(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	profile := filepath.Join(t.TempDir(), "strict.yaml")
	if err := os.WriteFile(profile, []byte("name: strict\nrequired: [PID-7, PV1-3]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, recv := startLISPipeline(t, ctx, env, ingress.Interface{Name: "in", Profile: profile,
		Ack: ingress.AckPolicy{OnProfileError: ingress.OnProfileErrorError}})
	// adt leaves PV1-3 (assigned location) empty, which the profile requires.
	reply, err := sendOne(ctx, in.Addr("in"), []byte(adt("PROF1")), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	code, msa2, id, issues := replyIssues(t, reply)
	found := false
	for _, is := range issues {
		found = found || is.code == 101 && is.loc == "PV1-3"
	}
	if code != "AE" || msa2 != "PROF1" || !found {
		t.Fatalf("answered %s %q %+v; want AE with ERR 101 at PV1-3", code, msa2, issues)
	}
	good := strings.Replace(adt(sentinelCtl), "PV1|1|I\r", "PV1|1|I|W1^R1\r", 1)
	if reply, err := sendOne(ctx, in.Addr("in"), []byte(good), 5*time.Second); err != nil {
		t.Fatal(err)
	} else if code, _, _, _ := replyIssues(t, reply); code != "AA" {
		t.Fatalf("a conforming message got %s: %q", code, reply)
	}
	waitReceived(t, recv, sentinelCtl, 60*time.Second)
	raw := readNative(t, ctx, env, env.Kafka.Topic("raw"), 10*time.Second, func(r []map[string]any) bool { return len(r) >= 2 })
	for _, r := range raw {
		if str(r["message_id"]) == id && str(nativeField(r, "rejected", "code")) != "profile_error" {
			t.Errorf("raw verdict %v, want profile_error", nativeField(r, "rejected"))
		}
	}
	dead := readNative(t, ctx, env, env.Kafka.DLQTopic("parse"), 10*time.Second, func(r []map[string]any) bool { return len(r) >= 1 })
	if len(dead) != 1 || str(dead[0]["message_id"]) != id || str(dead[0]["error_class"]) != classRejectedAtIngress {
		t.Errorf("dlq.parse: %v", dead)
	}
	if len(recv.messages()) != 1 {
		t.Errorf("the receiver got %d messages, want only the conforming one", len(recv.messages()))
	}
}
