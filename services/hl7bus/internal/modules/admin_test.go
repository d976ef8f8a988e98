package modules

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/admin"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// TestTokenChangesAudited: a token created and one revoked with the CLI's
// functions after the admin API started reach the audit topic through
// the process's writer, found by the refresh loop without a request:
// actor = who ran the command, auth cli, service admin, resource
// token/<id>, name and role in the detail, never the hash.
func TestTokenChangesAudited(t *testing.T) {
	env := kafkatest.New(t)
	path := filepath.Join(t.TempDir(), "tokens")
	if _, _, err := admin.CreateTokenBy(path, "before", admin.RoleViewer, "root@h0", time.Now()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := NewDeps(log, telemetry.Nop(), "t")
	defer d.Close()
	f := &config.File{}
	f.Kafka, f.Registry.URL = env.Kafka, env.RegistryURL
	w, err := d.Audit(f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.PrepareAudit(ctx); err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator(ctx, admin.Config{TokensFile: path}, log)
	if err != nil {
		t.Fatal(err)
	}
	auditTokenChanges(auth, serviceAuditor{w: w, service: "admin"}, log)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshTokens(rctx, auth, 20*time.Millisecond)
	}()
	defer func() {
		stop()
		<-done
	}()

	_, created, err := admin.CreateTokenBy(path, "ci", admin.RoleOperator, "anna@ops1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// One read at a time: the revoke must be a second change.
	topic := env.Kafka.Topic(kafka.TopicAudit)
	env.Read(t, topic, 1)
	if _, err := admin.RevokeTokenBy(path, "ci", "ben@ops2", time.Now()); err != nil {
		t.Fatal(err)
	}
	// Keyed by actor: two actors, two partitions, any order — so each
	// record is decoded from the same read that gives its key.
	recs := env.Read(t, topic, 2)
	want := map[string]string{"token.create": "anna@ops1", "token.revoke": "ben@ops2"}
	for i := range recs {
		r, err := env.Serde.Decode(ctx, recs[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		e := r.(*canonical.AuditEvent)
		if actor, ok := want[e.Action]; !ok || e.Actor != actor || string(recs[i].Key) != actor ||
			e.Service != "admin" || e.Auth != "cli" || e.Role != "" || e.Resource != "token/"+created.ID ||
			e.Outcome != canonical.AuditOK || e.Detail != "name=ci role=operator" {
			t.Errorf("event %d: %+v", i, e)
		}
		if strings.Contains(string(recs[i].Value), created.SHA256) {
			t.Errorf("event %d holds the token's hash", i)
		}
		delete(want, e.Action)
	}
	if len(want) != 0 {
		t.Errorf("no event for %v", want)
	}
	// The token that existed at start was not reported: nothing else is
	// on the topic.
	if more := countRecords(t, env, topic); more != 2 {
		t.Errorf("%d audit records, want 2", more)
	}
}

// countRecords counts the records on topic within a second.
func countRecords(t *testing.T, env *kafkatest.Env, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n := 0
	for ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	return n
}

func TestTokenEvents(t *testing.T) {
	at := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	r := admin.TokenRecord{ID: "abcdefgh", Name: "ci", Role: admin.RoleAdmin, SHA256: strings.Repeat("f", 64), CreatedAt: at}
	rev := r
	rev.RevokedAt, rev.RevokedBy = &at, "ben@h"
	got := tokenEvents([]admin.TokenRecord{r}, []admin.TokenRecord{rev})
	if len(got) != 2 || got[0].Actor != "unknown" || got[0].Action != "token.create" || !got[0].At.Equal(at) ||
		got[1].Actor != "ben@h" || got[1].Action != "token.revoke" || got[1].Detail != "name=ci role=admin" {
		t.Errorf("%+v", got)
	}
}
