package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestEndpoints(t *testing.T) {
	tel := New(nil)
	tel.Health.Register("parse")
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	status := func(path string) int {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("/healthz") != 200 || status("/readyz") != 503 || status("/metrics") != 200 {
		t.Error("before ready")
	}
	tel.Health.Set("parse", true)
	if status("/readyz") != 200 {
		t.Error("after ready")
	}
	if status("/debug/pprof/") != 404 {
		t.Error("pprof must be off by default")
	}
	tel.PProf = true
	srv2 := httptest.NewServer(tel.Handler())
	defer srv2.Close()
	resp, err := srv2.Client().Get(srv2.URL + "/debug/pprof/")
	if err != nil {
		t.Fatalf("pprof when enabled: %v", err)
	}
	// Closed, or the connection stays busy and its goroutines outlive
	// the test (goleak found them).
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("pprof when enabled: status %d", resp.StatusCode)
	}
}

// TestServeStopsWithContext: Serve's goroutines end with ctx (goleak in
// TestMain checks that nothing outlives the test).
func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := New(nil).Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening 5 s after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
