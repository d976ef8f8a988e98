package pipeline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/pipeline"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// TestStalledStageNotReady (D11): a stage whose input has records it
// cannot get past (here the handler fails transiently, as while the
// registry is down) reports not ready on /readyz and
// hl7bus_stage_stalled 1, and recovers both once it makes progress.
func TestStalledStageNotReady(t *testing.T) {
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	in, out := env.Kafka.Topic("in"), env.Kafka.Topic("out")
	admin, err := kafka.NewAdmin(env.Kafka, log)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := kafka.EnsureTopics(ctx, admin, env.Kafka, in); err != nil {
		t.Fatal(err)
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: in, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	down.Store(true)
	tel := telemetry.Nop()
	st := pipeline.Stage{Name: "test", Instance: "0", Input: in, Outputs: map[string]string{out: schemas.DeadLetter},
		Telemetry: tel, StallAfter: 500 * time.Millisecond,
		Retry: pipeline.RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Handle: func(_ context.Context, rec *kgo.Record) ([]*kgo.Record, pipeline.Ident, error) {
			if down.Load() {
				return nil, pipeline.Ident{}, errors.New("registry unavailable")
			}
			return []*kgo.Record{{Topic: out, Value: rec.Value}}, pipeline.Ident{}, nil
		}}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pipeline.Run(runCtx, env.Kafka, env.Serde, log, st) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 20s: %s", what)
			}
		}
	}
	waitUntil("/readyz 503 naming the stage and hl7bus_stage_stalled 1", func() bool {
		code, body := get("/readyz")
		_, metrics := get("/metrics")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "test") &&
			strings.Contains(metrics, `hl7bus_stage_stalled{stage="test"} 1`)
	})
	down.Store(false)
	waitUntil("/readyz 200 and hl7bus_stage_stalled 0", func() bool {
		code, _ := get("/readyz")
		_, metrics := get("/metrics")
		return code == http.StatusOK && strings.Contains(metrics, `hl7bus_stage_stalled{stage="test"} 0`)
	})
}
