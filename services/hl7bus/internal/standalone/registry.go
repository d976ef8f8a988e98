package standalone

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// registry is the embedded schema registry: franz-go's srfake, whose state
// is saved to a file after every registration and seeded back at start, so
// schema IDs stay the same across restarts and old records still decode.
type registry struct {
	fake *srfake.Registry
	path string

	mu       sync.Mutex
	subjects map[string]bool
}

type savedSchema struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
	ID      int    `json:"id"`
	Schema  string `json:"schema"`
}

func openRegistry(dir string) (*registry, error) {
	r := &registry{fake: srfake.NewRegistry(), path: filepath.Join(dir, "schemas.json"), subjects: map[string]bool{}}
	b, err := os.ReadFile(r.path)
	if os.IsNotExist(err) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading saved schemas: %w", err)
	}
	var saved []savedSchema
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("reading saved schemas %s: %w", r.path, err)
	}
	seeded := map[int]bool{}
	for _, s := range saved {
		sch := sr.Schema{Schema: s.Schema, Type: sr.TypeAvro}
		if seeded[s.ID] {
			// The same schema under another subject shares its ID;
			// registering it again finds that ID.
			id, _, err := r.fake.RegisterSchema(s.Subject, sch)
			if err != nil || id != s.ID {
				return nil, fmt.Errorf("restoring %s: got id %d, want %d: %v", s.Subject, id, s.ID, err)
			}
		} else {
			r.fake.SeedSchema(s.Subject, s.Version, s.ID, sch)
			seeded[s.ID] = true
		}
		_ = r.fake.SetCompat(s.Subject, sr.CompatBackward)
		r.subjects[s.Subject] = true
	}
	return r, nil
}

// handler serves the registry API and saves the state after each
// successful registration, before the client sees the new ID.
func (r *registry) handler() http.Handler {
	inner := r.fake.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || !strings.HasPrefix(req.URL.Path, "/subjects/") || !strings.HasSuffix(req.URL.Path, "/versions") {
			inner.ServeHTTP(w, req)
			return
		}
		rec := &recorder{header: http.Header{}}
		inner.ServeHTTP(rec, req)
		if rec.status == 0 || rec.status == http.StatusOK {
			subject := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/subjects/"), "/versions")
			if err := r.save(subject); err != nil {
				http.Error(w, fmt.Sprintf(`{"error_code":50001,"message":%q}`, err.Error()), http.StatusInternalServerError)
				return
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		if rec.status != 0 {
			w.WriteHeader(rec.status)
		}
		_, _ = w.Write(rec.body.Bytes())
	})
}

// save rewrites the saved state with every version of every known subject.
func (r *registry) save(subject string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subjects[subject] = true
	var out []savedSchema
	for s := range r.subjects {
		for v := 1; ; v++ {
			ss, ok := r.fake.GetSchema(s, v)
			if !ok {
				break
			}
			out = append(out, savedSchema{Subject: s, Version: v, ID: ss.ID, Schema: ss.Schema.Schema})
		}
	}
	// Seeding needs each ID's first subject first: order by ID, then subject.
	sortSaved(out)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("saving schemas: %w", err)
	}
	return os.Rename(tmp, r.path)
}

func sortSaved(s []savedSchema) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && (s[j].ID < s[j-1].ID || s[j].ID == s[j-1].ID && s[j].Subject < s[j-1].Subject); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
