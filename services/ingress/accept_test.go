package ingress

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

// msg builds an ADT^A01 with MSH-10 ctl, MSH-15/16 ack (e.g. "AL|NE", ""
// for original mode) and extra segments before PID.
func msg(ctl, ack string, extra ...string) string {
	msh := "MSH|^~\\&|HIS|GENHOSP|LIS|NATLAB|20261201101500||ADT^A01^ADT_A01|" + ctl + "|P|2.5"
	if ack != "" {
		msh += "|||" + ack
	}
	return msh + "\rEVN|A01|20261201101500\r" + strings.Join(extra, "") + "PID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JANE\rPV1|1|I\r"
}

// failProduces makes the broker refuse the next produce request with a
// non-retriable error, so the store fails the way a broker that lost its
// data directory does.
func failProduces(env *kafkatest.Env) {
	env.Cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestAcceptAckMatrix is the ACK policy as one table: AA/CA/AE/CE/AR/CR
// and no answer, by acknowledgement mode and by whether the store worked,
// and the verdict each stored record carries.
func TestAcceptAckMatrix(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Every failure path logs; none of it may carry the patient's name or
	// identifier (PID-5, PID-3), whatever the level.
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	profile, err := hl7v2.ParseProfile([]byte("name: strict\nrequired: [PV1-3]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, env.Kafka, env.Serde, log)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	s.validators = map[string]*hl7v2.Validator{"strict": hl7v2.NewValidator(profile)}
	// A producer whose records are capped at 8 KiB, for the client-side
	// too-large case (the broker takes up to 1 MiB).
	small, err := kafka.NewProducer(env.Kafka, log, kgo.ProducerBatchMaxBytes(8192))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	big := msg("BIG", "", "OBX|1|ED|PDF||^AP^PDF^Base64^"+strings.Repeat("A", 10000)+"||||||F\r")

	tests := []struct {
		name      string
		iface     string
		frame     string
		failStore bool
		tinyLimit bool
		want      string // MSA-1 of the reply, "" for no reply
		msa2      string
		errCode   hl7v2.ErrorCode // first ERR's code, 0 for none
		text      string          // in the reply
		stored    bool
		verdict   string // raw.rejected.code, "" for none
	}{
		{name: "AA original mode, stored", frame: msg("C1", ""), want: "AA", msa2: "C1", stored: true},
		{name: "CA enhanced AL, stored", frame: msg("C2", "AL|NE"), want: "CA", msa2: "C2", stored: true},
		{name: "AE original mode, not stored", frame: msg("C3", ""), failStore: true, want: "AE", msa2: "C3", text: "resend", stored: false},
		{name: "CE enhanced AL, not stored", frame: msg("C4", "AL|AL"), failStore: true, want: "CE", msa2: "C4", text: "resend", stored: false},
		{name: "none: enhanced NE, stored", frame: msg("C5", "NE|AL"), want: "", stored: true},
		{name: "none: enhanced ER, stored", frame: msg("C6", "ER|AL"), want: "", stored: true},
		{name: "CE enhanced ER, not stored", frame: msg("C7", "ER|AL"), failStore: true, want: "CE", msa2: "C7", stored: false},
		{name: "AR original mode: MSH-10 missing", frame: msg("", ""), want: "AR", msa2: "", errCode: 101, stored: true, verdict: canonical.RejectMissingHeaderField},
		{name: "CR enhanced: MSH-10 missing", frame: msg("", "AL|NE"), want: "CR", msa2: "", errCode: 101, stored: true, verdict: canonical.RejectMissingHeaderField},
		{name: "AR even when not stored", frame: msg("", ""), failStore: true, want: "AR", errCode: 101, stored: false},
		{name: "AR before v2.5: the reason in MSA-3", frame: strings.Replace(msg("", ""), "|P|2.5", "|P|2.3", 1), want: "AR", errCode: 101, text: "MSA|AR||required field missing: MSH-10", stored: true, verdict: canonical.RejectMissingHeaderField},
		{name: "AR: MSH-9, MSH-10, MSH-12 missing", frame: "MSH|^~\\&|A\r", want: "AR", errCode: 101, text: "MSH-12", stored: true, verdict: canonical.RejectMissingHeaderField},
		{name: "AR: a stray MSA", frame: msg("C8", "", "MSA|AA|X\r"), want: "AR", msa2: "C8", errCode: 100, text: "MSA", stored: true, verdict: canonical.RejectUnexpectedMSA},
		{name: "CR: a stray MSA, enhanced", frame: msg("C9", "AL|AL", "MSA|AA|X\r"), want: "CR", msa2: "C9", errCode: 100, stored: true, verdict: canonical.RejectUnexpectedMSA},
		{name: "none: an acknowledgement", frame: "MSH|^~\\&|LIS|NATLAB|HIS|GENHOSP|20261201||ACK^A01^ACK|A1|P|2.5\rMSA|AA|C1\r", want: "", stored: true, verdict: canonical.RejectAcknowledgement},
		{name: "AR: no MSH", frame: "hello\r", want: "AR", msa2: "", errCode: 100, text: "does not start with MSH", stored: true, verdict: canonical.RejectUnparseable},
		{name: "AR: MSH-2 holding content (probe D8)", frame: "MSH|^~\\&ZZTESTNAME99887766|HIS|GENHOSP|||20261201||ADT^A01|P10|P|2.5\r", want: "AR", errCode: 102, stored: true, verdict: canonical.RejectUnparseable},
		{name: "AR: MSH-1 not the field separator (probe D8)", frame: "MSH#~\\&|HIS|GENHOSP|LIS|NATLAB|20261201||ADT^A01|PHI4|P|2.5\nPID|1||99887766^^^GENHOSP^MR||ZZTESTNAME^JOHN\r", want: "AR", errCode: 102, stored: true, verdict: canonical.RejectUnparseable},
		{name: "AR: no MSH first, one later", frame: "EVN|A01\r" + msg("C17", ""), want: "AR", msa2: "", errCode: 100, stored: true, verdict: canonical.RejectUnparseable},
		{name: "AR: a bad segment after a sound MSH", frame: msg("C10", "", "CON_|1\r"), want: "AR", msa2: "C10", errCode: 100, stored: true, verdict: canonical.RejectUnparseable},
		{name: "AR: two messages without an envelope", frame: msg("C11", "") + msg("C12", ""), want: "AR", msa2: "C11", text: "without a batch envelope", stored: true, verdict: canonical.RejectSeveralMessages},
		{name: "AR: too large for a record, never AE", frame: big, tinyLimit: true, want: "AR", msa2: "BIG", errCode: 207, text: "8192 bytes", stored: true, verdict: canonical.RejectTooLarge},
		{name: "AE: fails the profile", iface: "strict", frame: msg("C13", ""), want: "AE", msa2: "C13", errCode: 101, stored: true, verdict: canonical.RejectProfileError},
		{name: "AE: fails the profile, enhanced MSH-16 ER", iface: "strict", frame: msg("C14", "AL|ER"), want: "AE", msa2: "C14", errCode: 101, stored: true, verdict: canonical.RejectProfileError},
		{name: "CA: fails the profile, enhanced MSH-16 NE", iface: "strict", frame: msg("C15", "AL|NE"), want: "CA", msa2: "C15", stored: true, verdict: canonical.RejectProfileError},
		{name: "AA: conforms to the profile", iface: "strict", frame: strings.Replace(msg("C16", ""), "PV1|1|I", "PV1|1|I|W1", 1), want: "AA", msa2: "C16", stored: true},
	}
	ids := map[string]int{} // message ID -> test
	for i, tt := range tests {
		iface := tt.iface
		if iface == "" {
			iface = "in"
		}
		if tt.failStore {
			failProduces(env)
		}
		if tt.tinyLimit {
			s.producer, small = small, s.producer
		}
		reply, stored := s.accept(ctx, Receipt{Interface: Interface{Name: iface}, Protocol: "mllp", Peer: "test", Payload: []byte(tt.frame)})
		if tt.tinyLimit {
			s.producer, small = small, s.producer
		}
		if stored != tt.stored {
			t.Errorf("%s: stored = %v, want %v", tt.name, stored, tt.stored)
		}
		if bytes.Contains(reply, []byte("ZZTESTNAME")) || bytes.Contains(reply, []byte("99887766")) {
			t.Errorf("%s: the reply quotes the patient: %q", tt.name, reply)
		}
		if tt.want == "" {
			if reply != nil {
				t.Errorf("%s: answered %q, want no answer", tt.name, reply)
			}
			if stored {
				ids["payload:"+tt.frame] = i
			}
			continue
		}
		ack, err := hl7v2.ParseACK(reply)
		if err != nil {
			t.Errorf("%s: reply %q: %v", tt.name, reply, err)
			continue
		}
		if ack.Code != tt.want || ack.ControlID != tt.msa2 {
			t.Errorf("%s: answered %s %q, want %s %q: %q", tt.name, ack.Code, ack.ControlID, tt.want, tt.msa2, reply)
		}
		if tt.errCode != 0 && (len(ack.Errors) == 0 || ack.Errors[0] != tt.errCode) {
			t.Errorf("%s: ERR codes %v, want %d first", tt.name, ack.Errors, tt.errCode)
		}
		if tt.text != "" && !bytes.Contains(reply, []byte(tt.text)) {
			t.Errorf("%s: the reply does not say %q: %q", tt.name, tt.text, reply)
		}
		if stored {
			ids[ack.Message.ControlID()] = i
		}
	}

	// What was stored carries the verdict the reply promised.
	reader, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(env.Kafka.Topic(kafka.TopicRaw)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	seen := 0
	for seen < len(ids) && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			rec, err := env.Serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			raw := rec.(*canonical.Raw)
			i, ok := ids[raw.MessageID]
			if !ok {
				i, ok = ids["payload:"+string(raw.Payload)]
			}
			if !ok {
				return
			}
			seen++
			tt := tests[i]
			got := ""
			if raw.Rejected != nil {
				got = raw.Rejected.Code
				if raw.Rejected.Reason == "" || strings.Contains(raw.Rejected.Reason, "ZZTESTNAME") {
					t.Errorf("%s: reason %q", tt.name, raw.Rejected.Reason)
				}
			}
			if got != tt.verdict {
				t.Errorf("%s: verdict %q, want %q", tt.name, got, tt.verdict)
			}
			if tt.verdict == canonical.RejectTooLarge && len(raw.Payload) != 0 {
				t.Errorf("%s: the receipt of a too-large message holds %d bytes of payload", tt.name, len(raw.Payload))
			}
			if raw.Ordering != OrderPatient || raw.OrderingKey == "" {
				t.Errorf("%s: ordering %q key %q", tt.name, raw.Ordering, raw.OrderingKey)
			}
		})
	}
	if seen != len(ids) {
		t.Errorf("found %d of %d stored records", seen, len(ids))
	}
	for _, phi := range []string{"ZZTESTNAME", "99887766"} {
		if strings.Contains(logs.String(), phi) {
			t.Errorf("the logs carry %q", phi)
		}
	}
	if !strings.Contains(logs.String(), "message rejected") {
		t.Errorf("nothing was logged: %q", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExamineBatch(t *testing.T) {
	s := New(Config{}, kafka.Config{}, nil, slog.New(slog.DiscardHandler))
	s.validators = map[string]*hl7v2.Validator{}
	env := func(msgs, bts, fts string) string {
		return "FHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000||||F1\rBHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000||||B1\r" +
			msgs + "BTS|" + bts + "\rFTS|" + fts + "\r"
	}
	two := msg("M1", "") + msg("M2", "")
	tests := []struct {
		name    string
		frame   string
		verdict string
		text    string
		answer  answer
	}{
		{"good", env(two, "2", "1"), "", "", answerAccept},
		{"BTS-1 wrong", env(two, "5", "1"), canonical.RejectBatchCount, "BTS-1 batch message count does not match: there are 2 messages", answerReject},
		{"FTS-1 wrong", env(two, "2", "3"), canonical.RejectBatchCount, "FTS-1", answerReject},
		{"BTS-1 not a number", env(two, "ZZTESTNAME", "1"), canonical.RejectBatchCount, "BTS-1 batch message count is not a number", answerReject},
		{"a message without MSH-10", env(msg("M1", "")+msg("", ""), "2", "1"), canonical.RejectMissingHeaderField, "message 2 of batch 1", answerReject},
		{"a stray MSA", env(msg("M1", "", "MSA|AA|X\r"), "1", "1"), canonical.RejectUnexpectedMSA, "message 1 of batch 1", answerReject},
		{"an unparseable message", env(msg("M1", "", "CON_|1\r"), "1", "1"), canonical.RejectUnparseable, "message 1 of batch 1", answerReject},
		{"a batch of ACKs", env("MSH|^~\\&|A|B|C|D|1||ACK|X|P|2.5\rMSA|AA|Y\r", "1", "1"), canonical.RejectAcknowledgement, "", answerNone},
		{"segments outside a message", "BHS|^~\\&\rPID|1\rBTS|0\r", canonical.RejectBatchStructure, "outside a message", answerReject},
	}
	for _, tt := range tests {
		ex := s.examine(Interface{Name: "in"}, []byte(tt.frame))
		got := ""
		if ex.rejection != nil {
			got = ex.rejection.Code
			if strings.Contains(ex.rejection.Reason, "ZZTESTNAME") || !strings.Contains(ex.rejection.Reason, tt.text) {
				t.Errorf("%s: reason %q, want it to say %q (and quote nothing)", tt.name, ex.rejection.Reason, tt.text)
			}
		}
		if got != tt.verdict || ex.answer != tt.answer || !ex.batch {
			t.Errorf("%s: verdict %q answer %d, want %q %d", tt.name, got, ex.answer, tt.verdict, tt.answer)
		}
	}
	ex := s.examine(Interface{Name: "in"}, []byte(env(two, "5", "1")))
	if ex.batchID != "B1" {
		t.Errorf("batch control ID %q, want BHS-11 B1", ex.batchID)
	}
	reply, _ := s.rejectReply(ex, "ID1", time.Now())
	if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != "AR" || ack.ControlID != "B1" || !strings.Contains(ack.Text, "BTS-1") {
		t.Errorf("batch AR %+v %v: %q", ack, err, reply)
	}
}

func TestBatchAck(t *testing.T) {
	f, err := hl7v2.ParseBatch([]byte("FHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000||||F1\rBHS|^~\\&|LIS|NATLAB|HIS|GENHOSP|20240301120000||||B1\r" +
		msg("M1", "") + msg("M2", "AL|NE") + "BTS|2\rBHS|^~\\&\rBTS|0\rFTS|2\r"))
	if err != nil {
		t.Fatal(err)
	}
	reply, code, err := batchAck(f, hl7v2.AckAccept, "", "ID1", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	if err != nil || code != "AA" {
		t.Fatal(code, err)
	}
	back, err := hl7v2.ParseBatch(reply)
	if err != nil {
		t.Fatalf("the acknowledgement batch does not parse: %v\n%q", err, reply)
	}
	if got := back.Header.Field(11).String() + "/" + back.Header.Field(12).String() + " " + back.Header.Field(3).String(); got != "ID1/F1 HIS" {
		t.Errorf("FHS: control ID/reference, sender = %q", got)
	}
	if len(back.Batches) != 2 || back.Batches[0].Header.Field(12).String() != "B1" || len(back.Batches[0].Messages) != 2 || len(back.Batches[1].Messages) != 0 {
		t.Fatalf("reply %q", reply)
	}
	for i, want := range [][3]string{{"AA", "M1", "ID1-1"}, {"CA", "M2", "ID1-2"}} {
		m := back.Batches[0].Messages[i]
		ack, err := hl7v2.ParseACK(m.Bytes())
		if err != nil || ack.Code != want[0] || ack.ControlID != want[1] || m.ControlID() != want[2] {
			t.Errorf("ACK %d: %+v %v, MSH-10 %q; want %v", i+1, ack, err, m.ControlID(), want)
		}
	}
	if !strings.Contains(string(reply), "BTS|2\r") || !strings.HasSuffix(string(reply), "FTS|2\r") {
		t.Errorf("trailers: %q", reply)
	}
}
