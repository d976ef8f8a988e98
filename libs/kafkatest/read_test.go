package kafkatest

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/schemas"
)

// produce writes values to topic, keyed so they spread over partitions.
func produce(t *testing.T, env *Env, topic string, values ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 3, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: v}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRead(t *testing.T) {
	env := New(t)
	topic := env.Kafka.Topic("read")
	produce(t, env, topic, []byte("a"), []byte("b"), []byte("c"), []byte("d"))
	got := env.Read(t, topic, 3)
	if len(got) != 3 {
		t.Fatalf("Read returned %d records, want exactly 3", len(got))
	}
	all := env.Read(t, topic, 4)
	var vals []string
	for _, r := range all {
		vals = append(vals, string(r.Value))
	}
	sort.Strings(vals)
	if strings.Join(vals, "") != "abcd" {
		t.Errorf("values = %v, want a b c d", vals)
	}
}

func TestReadDecoded(t *testing.T) {
	env := New(t)
	topic := env.Kafka.Topic("raw")
	if _, err := env.Serde.Register(context.Background(), topic, schemas.Raw); err != nil {
		t.Fatal(err)
	}
	b, err := env.Serde.Encode(&canonical.Raw{MessageID: "m1", Payload: []byte("MSH|")})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, env, topic, b)
	recs := env.ReadDecoded(t, topic, 1)
	if raw, ok := recs[0].(*canonical.Raw); !ok || raw.MessageID != "m1" {
		t.Errorf("decoded %#v", recs[0])
	}
}

// fatalTB records Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper()             {}
func (f *fatalTB) Logf(string, ...any) {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestReadFailsWhenTooFewArrive(t *testing.T) {
	env := New(t)
	env.ReadTimeout = 500 * time.Millisecond
	topic := env.Kafka.Topic("few")
	produce(t, env, topic, []byte("only"))
	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		env.Read(ftb, topic, 2)
	}()
	<-done
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Read took %v with a 500 ms timeout", took)
	}
	if !strings.Contains(ftb.msg, "1 of 2 records") {
		t.Errorf("failure message = %q", ftb.msg)
	}
}
