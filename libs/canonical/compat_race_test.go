package canonical

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hl7bus/hl7bus/schemas"
)

// TestRegisterWhenAnotherInstanceSetTheCompatibility: instances of a stage
// start together; Apicurio answers the second PUT /config/{subject} with
// 409 "A rule named 'COMPATIBILITY' already exists" (seen in the interop
// suite: an egress instance failed to start). Register must start when the
// level in force is BACKWARD, and still fail when it is not.
func TestRegisterWhenAnotherInstanceSetTheCompatibility(t *testing.T) {
	_, reg := newSerde(t)
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/config/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error_code":409,"message":"A rule named 'COMPATIBILITY' already exists."}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(refusing.Close)
	direct, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		level sr.CompatibilityLevel
		ok    bool
	}{{sr.CompatBackward, true}, {sr.CompatNone, false}} {
		topic := "hl7bus.out." + strings.ToLower(tt.level.String())
		if res := direct.SetCompatibility(ctx, sr.SetCompatibility{Level: tt.level}, topic+"-value"); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		cl, err := sr.NewClient(sr.URLs(refusing.URL))
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewSerde(cl).Register(ctx, topic, schemas.Out)
		if tt.ok && err != nil {
			t.Errorf("level %s in force: %v", tt.level, err)
		}
		if !tt.ok && (err == nil || !strings.Contains(err.Error(), "setting BACKWARD compatibility")) {
			t.Errorf("level %s in force: %v, want the refusal", tt.level, err)
		}
	}
}
