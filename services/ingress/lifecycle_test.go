package ingress

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

// TestStopAfterAFailedStart: a Start that fails on its second listener
// (the address is taken) leaves the first running; Stop stops it and
// returns at once, without waiting for a context that never ends.
func TestStopAfterAFailedStart(t *testing.T) {
	env := kafkatest.New(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	s := New(Config{Interfaces: []Interface{
		{Name: "first", Protocol: "mllp", Address: "127.0.0.1:0"},
		{Name: "second", Protocol: "mllp", Address: taken.Addr().String()},
	}}, env.Kafka, env.Serde, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err == nil {
		t.Fatal("Start succeeded on a taken address")
	}
	first := s.Addr("first")
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after a failed Start")
	}
	if c, err := net.DialTimeout("tcp", first, time.Second); err == nil {
		c.Close()
		t.Errorf("the first listener (%s) still accepts after Stop", first)
	}
}
