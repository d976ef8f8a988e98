package parse

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/schemas"
)

func newStage(t *testing.T, profiles map[string]*hl7v2.Profile) (*Service, *kafkatest.Env) {
	t.Helper()
	env := kafkatest.New(t)
	ctx := context.Background()
	for topic, s := range map[string]string{"hl7bus.raw": schemas.Raw, "hl7bus.parsed": schemas.Parsed} {
		if _, err := env.Serde.Register(ctx, topic, s); err != nil {
			t.Fatal(err)
		}
	}
	return New(Config{Profiles: profiles}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler)), env
}

func encodeRaw(t *testing.T, env *kafkatest.Env, raw *canonical.Raw) []byte {
	t.Helper()
	if raw.ReceivedAt.IsZero() {
		raw.ReceivedAt = time.Now()
	}
	v, err := env.Serde.Encode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// handle runs s's handler on the raw record value v as the driver does
// (pipeline.Typed: decode, handle, encode) and decodes what it wrote.
func handle(ctx context.Context, s *Service, v []byte) ([]*canonical.Parsed, pipeline.Ident, error) {
	outs, id, err := pipeline.Typed(s.serde, s.Handle)(ctx, &kgo.Record{Value: v})
	if err != nil {
		return nil, id, err
	}
	var ps []*canonical.Parsed
	for _, o := range outs {
		rec, err := s.serde.Decode(ctx, o.Value)
		if err != nil {
			return nil, id, err
		}
		ps = append(ps, rec.(*canonical.Parsed))
	}
	return ps, id, nil
}

func TestHandleAppliesTheInterfaceProfile(t *testing.T) {
	profile, err := hl7v2.ParseProfile([]byte("name: strict\nrequired: [PID-7]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, env := newStage(t, map[string]*hl7v2.Profile{"lab": profile})
	ctx := context.Background()
	msg := "MSH|^~\\&|HIS|GENHOSP|LIS|LAB|20240101||ADT^A01^ADT_A01|C1|P|2.5\rEVN|A01|20240101\rPID|1||1^^^H^MR||DOE\rPV1|1|I\r"
	for iface, wantValid := range map[string]bool{"lab": false, "other": true} {
		v := encodeRaw(t, env, &canonical.Raw{MessageID: "M1", Interface: iface, Protocol: "mllp", Peer: "p", OrderingKey: "k", Payload: []byte(msg)})
		ps, id, err := handle(ctx, s, v)
		if err != nil || id.MessageID != "M1" || id.ControlID != "C1" || len(ps) != 1 {
			t.Fatalf("%s: %v %+v %d", iface, err, id, len(ps))
		}
		p := ps[0]
		if p.Validation.Valid != wantValid {
			t.Errorf("%s: valid = %v, want %v (issues %+v)", iface, p.Validation.Valid, wantValid, p.Validation.Issues)
		}
		if string(p.Payload) != msg || p.Header.ControlID != "C1" || p.ParentMessageID != "" || p.OrderingKey != "k" {
			t.Errorf("%s: %+v", iface, p)
		}
	}
	bad := encodeRaw(t, env, &canonical.Raw{MessageID: "M2", Interface: "lab", Payload: []byte("hello")})
	if _, id, err := handle(ctx, s, bad); !pipeline.IsPermanent(err) || pipeline.ErrorClass(err) != canonical.ErrorPermanent || id.MessageID != "M2" {
		t.Errorf("unparseable: %v %+v", err, id)
	}
}

func TestHandleDeadLettersWhatIngressRejected(t *testing.T) {
	s, env := newStage(t, nil)
	// Even a message that parses: the sender was answered AR, so it must
	// never be routed.
	v := encodeRaw(t, env, &canonical.Raw{MessageID: "M3", Interface: "in", Payload: []byte("MSH|^~\\&|A|B|C|D|1||ADT^A01|C3|P|2.5\rMSA|AA|X\r"),
		Header:   canonical.Header{ControlID: "C3"},
		Rejected: &canonical.Rejection{Code: canonical.RejectUnexpectedMSA, Reason: "MSA segment not allowed"}})
	ps, id, err := handle(context.Background(), s, v)
	if ps != nil || !pipeline.IsPermanent(err) || pipeline.ErrorClass(err) != canonical.ErrorRejectedAtIngress || id.MessageID != "M3" || id.ControlID != "C3" {
		t.Fatalf("got %v %+v %v (class %s)", ps, id, err, pipeline.ErrorClass(err))
	}
	if !strings.Contains(err.Error(), "unexpected_msa: MSA segment not allowed") {
		t.Errorf("reason %q", err)
	}
}

func TestHandleSplitsABatch(t *testing.T) {
	s, env := newStage(t, nil)
	batch, err := os.ReadFile(filepath.Join("..", "..", "libs", "hl7v2", "testdata", "batch_file.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ordering string
		keys     [2]string
	}{
		{canonical.OrderPatient, [2]string{"NATLAB|1^GENHOSP", "NATLAB|2^GENHOSP"}},
		{canonical.OrderInterface, [2]string{"interface:in", "interface:in"}},
		{canonical.OrderNone, [2]string{"P1-1", "P1-2"}},
		{"", [2]string{"NATLAB|1^GENHOSP", "NATLAB|2^GENHOSP"}}, // records from before the field: patient
	} {
		v := encodeRaw(t, env, &canonical.Raw{MessageID: "P1", Interface: "in", OrderingKey: "interface:in", Ordering: tt.ordering, Payload: batch})
		h := pipeline.Typed(s.serde, s.Handle)
		outs, id, err := h(context.Background(), &kgo.Record{Key: []byte("interface:in"), Value: v})
		if err != nil || id.MessageID != "P1" || len(outs) != 2 {
			t.Fatalf("%s: %v %+v %d records", tt.ordering, err, id, len(outs))
		}
		for i, o := range outs {
			rec, err := env.Serde.Decode(context.Background(), o.Value)
			if err != nil {
				t.Fatal(err)
			}
			p := rec.(*canonical.Parsed)
			want := fmt.Sprintf("P1-%d", i+1)
			if p.MessageID != want || p.ParentMessageID != "P1" || p.Header.ControlID != fmt.Sprintf("B1M%d", i+1) ||
				!strings.HasPrefix(string(p.Payload), "MSH|") || strings.Contains(string(p.Payload), "BHS") {
				t.Errorf("%s: message %d: %+v", tt.ordering, i+1, p)
			}
			if string(o.Key) != tt.keys[i] || p.OrderingKey != tt.keys[i] {
				t.Errorf("%s: message %d keyed %q (record says %q), want %q", tt.ordering, i+1, o.Key, p.OrderingKey, tt.keys[i])
			}
		}
	}
}

func TestHandleBoundsTheReport(t *testing.T) {
	s, env := newStage(t, nil)
	var b strings.Builder
	b.WriteString("MSH|^~\\&|LIS|LAB|HIS|H|20240101||ORU^R01^ORU_R01|C9|P|2.5\rPID|1||1^^^H^MR||DOE\rOBR|1||L1|GLU\r")
	for i := 0; i < 500; i++ {
		b.WriteString("OBX|x|NM|GLU||notanumber|||||||||||||||||||||||||||||\r") // bad set ID, value, status...
	}
	ps, _, err := handle(context.Background(), s, encodeRaw(t, env, &canonical.Raw{MessageID: "M9", Interface: "in", Payload: []byte(b.String())}))
	if err != nil {
		t.Fatal(err)
	}
	v := ps[0].Validation
	if len(v.Issues) != canonical.MaxIssues || v.IssuesTruncated < 500 || v.Valid {
		t.Errorf("%d issues kept, %d truncated, valid %v", len(v.Issues), v.IssuesTruncated, v.Valid)
	}
}

// TestParsedRecordsAreValidUTF8 encodes the parsed record of every sample
// message (the library's, latin1 and cp1252 among them, and the shared
// corpus when present) and checks every string the Avro record holds is
// valid UTF-8: fastavro and Java Avro refuse or garble anything else.
func TestParsedRecordsAreValidUTF8(t *testing.T) {
	s, env := newStage(t, nil)
	ctx := context.Background()
	var files []string
	for _, pattern := range []string{
		filepath.Join("..", "..", "libs", "hl7v2", "testdata", "*.hl7"),
		filepath.Join("..", "..", "..", "shared", "corpus", "*", "*.hl7"),
		filepath.Join("..", "..", "..", "shared", "corpus", "*", "hl7v2", "*"),
	} {
		m, _ := filepath.Glob(pattern)
		files = append(files, m...)
	}
	files = append(files, "invalid-utf8")
	checked := 0
	for _, f := range files {
		var data []byte
		if f == "invalid-utf8" {
			data = []byte("MSH|^~\\&|HIS\xff|GEN\xe9HOSP|LIS|LAB|20240101||ADT^A01^ADT_A01|C\xfe1|P|2.5|||||||UNICODE UTF-8\rPID|1||1^^^H^MR||\xff\xfe\xc3(\r")
		} else {
			var err error
			if data, err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
		ps, _, err := handle(ctx, s, encodeRaw(t, env, &canonical.Raw{MessageID: "U", Interface: "in", Payload: data}))
		if err != nil {
			continue // not a message (bad samples): dead-lettered, no parsed record
		}
		for _, p := range ps {
			v, err := env.Serde.Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			native, err := env.Serde.DecodeNative(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			if path := invalidString(native, ""); path != "" {
				t.Errorf("%s: %s is not valid UTF-8", filepath.Base(f), path)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d records checked", checked)
	}
	t.Logf("%d parsed records checked", checked)
}

// invalidString returns the path of the first string in v that is not
// valid UTF-8, "" when all are.
func invalidString(v any, path string) string {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return path
		}
	case map[string]any:
		for k, e := range x {
			if p := invalidString(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range x {
			if p := invalidString(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
