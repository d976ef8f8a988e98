package admin

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

func TestRecordReader(t *testing.T) {
	env := kafkatest.New(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	topic := env.Kafka.Topic(kafka.TopicRaw)

	cl, err := kafka.NewProducer(env.Kafka, log, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := &kgo.Record{Topic: topic, Partition: 1, Key: []byte("k"), Value: []byte("v" + strconv.Itoa(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	rd, err := NewRecordReader(env.Kafka, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	got, err := rd.Read(ctx, topic, 1, 3)
	if err != nil || string(got.Value) != "v3" || got.Offset != 3 || got.Partition != 1 {
		t.Fatalf("Read(1, 3) = %+v, %v", got, err)
	}
	for _, tt := range []struct {
		name      string
		topic     string
		partition int32
		offset    int64
		want      error
	}{
		{"past the end", topic, 1, 5, ErrNotFound},
		{"empty partition", topic, 0, 0, ErrNotFound},
		{"no such partition", topic, 7, 0, ErrNotFound},
		{"no such topic", topic + "-none", 0, 0, ErrNotFound},
		{"negative offset", topic, 1, -1, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if _, err := rd.Read(ctx, tt.topic, tt.partition, tt.offset); !errors.Is(err, tt.want) {
				t.Errorf("= %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v to say so", d)
			}
		})
	}

	// Retention: the partition now starts at offset 2.
	res, err := adm.DeleteRecords(ctx, kadm.Offsets{topic: {1: {At: 2}}})
	if err != nil || res.Error() != nil {
		t.Fatalf("deleting records: %v %v", err, res.Error())
	}
	if _, err := rd.Read(ctx, topic, 1, 1); !errors.Is(err, ErrRecordGone) {
		t.Errorf("Read below the log start = %v, want ErrRecordGone", err)
	}
	if got, err := rd.Read(ctx, topic, 1, 2); err != nil || string(got.Value) != "v2" {
		t.Errorf("Read at the log start = %+v, %v", got, err)
	}
}

// Reads do not outlive their context.
func TestRecordReaderHonoursContext(t *testing.T) {
	env := kafkatest.New(t)
	rd, err := NewRecordReader(env.Kafka, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rd.Read(ctx, env.Kafka.Topic(kafka.TopicRaw), 0, 0); err == nil {
		t.Errorf("Read with a cancelled context succeeded")
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{
		"MessageID": "message_id", "TLSIdentity": "tls_identity", "ReceivedAt": "received_at",
		"Payload": "payload", "LatencyMS": "latency_ms", "ID": "id", "SourcePartition": "source_partition",
		"ParentMessageID": "parent_message_id", "IssuesTruncated": "issues_truncated",
	} {
		if got := snake(in); got != want {
			t.Errorf("snake(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestContentOf(t *testing.T) {
	f := newFixture(t)
	inner := &canonical.Raw{MessageID: "01M", Payload: []byte("MSH|^~\\&|\r"), ReceivedAt: t0}
	b, err := f.srv.d.Serde.Encode(inner)
	if err != nil {
		t.Fatal(err)
	}
	dl := &canonical.DeadLetter{MessageID: "01M", Stage: "parse", Value: b, Key: []byte{0xff, 0x00},
		Headers: map[string][]byte{"traceparent": []byte("00-abc")}, FirstFailedAt: t0}
	got, _ := f.srv.contentOf(context.Background(), dl).(map[string]any)
	if got["message_id"] != "01M" || got["stage"] != "parse" {
		t.Errorf("content = %v", got)
	}
	if v, _ := got["value"].(map[string]any); v["payload"] != "MSH|^~\\&|\r" {
		t.Errorf("embedded record = %v", got["value"])
	}
	if k, _ := got["key"].(map[string]string); k["base64"] != "/wA=" {
		t.Errorf("binary key = %v", got["key"])
	}
	if h, _ := got["headers"].(map[string]any); h["traceparent"] != "00-abc" {
		t.Errorf("headers = %v", got["headers"])
	}
	if got["first_failed_at"] != t0 || got["last_failed_at"] != nil {
		t.Errorf("times = %v, %v", got["first_failed_at"], got["last_failed_at"])
	}
}

func TestParseTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"24h", t0.Add(-24 * time.Hour), true},
		{"90m", t0.Add(-90 * time.Minute), true},
		{"2026-01-02T03:04:05+02:00", time.Date(2026, 1, 2, 1, 4, 5, 0, time.UTC), true},
		{"2026-01-02T03:04:05.5Z", time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), true},
		{"2026-01-02", time.Time{}, false},
		{"0s", time.Time{}, false},
		{"-1h", time.Time{}, false},
		{"yesterday", time.Time{}, false},
	} {
		got, err := parseTime(tt.in, t0)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseTime(%q) = %v, %v", tt.in, got, err)
		}
	}
}
