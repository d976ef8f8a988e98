package telemetry

import (
	"net/http/httptest"
	"testing"
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
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof when enabled: %v", err)
	}
}
