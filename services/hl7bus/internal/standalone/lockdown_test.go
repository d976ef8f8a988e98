package standalone

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	libkafka "github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/schemas"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// testFile is a standalone configuration on dir with free loopback ports.
func testFile(dir string) *config.File {
	return &config.File{
		Kafka:      libkafka.Config{Partitions: 3}.WithDefaults(),
		Standalone: config.Standalone{DataDir: dir, KafkaAddress: "127.0.0.1:0", RegistryAddress: "127.0.0.1:0"},
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs the embedded broker and registry on dir until the test ends.
func start(t *testing.T, dir string) (*Embedded, *config.File) {
	t.Helper()
	f := testFile(dir)
	emb, err := StartEmbedded(f, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return emb, f
}

// assertSASLRefused runs op, a request without credentials, and checks
// that it fails with the broker closing the connection on the client's
// first request, which kgo reports as a SASL refusal. Under load the
// client can instead see the connection die before it reads (the broker
// closed it all the same): such a try is repeated, up to three times, and
// op must never succeed.
func assertSASLRefused(t *testing.T, what string, op func() error) {
	t.Helper()
	var err error
	for range 3 {
		err = op()
		var eof *kgo.ErrFirstReadEOF
		switch {
		case err == nil:
			t.Errorf("%s without credentials succeeded", what)
			return
		case errors.As(err, &eof) && strings.Contains(err.Error(), "SASL"):
			return
		}
	}
	t.Errorf("%s without credentials: %v, want the broker's SASL refusal", what, err)
}

// TestEmbeddedBrokerRequiresSASL: a client without credentials can neither
// list, create nor delete topics, nor produce into raw; the standalone's
// own configuration (what its stages use) can.
func TestEmbeddedBrokerRequiresSASL(t *testing.T) {
	_, f := start(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The configuration the stages get authenticates: create raw as they do.
	authed, err := libkafka.NewAdmin(f.Kafka, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer authed.Close()
	raw := f.Kafka.Topic(libkafka.TopicRaw)
	if err := libkafka.EnsureTopics(ctx, authed, f.Kafka, raw); err != nil {
		t.Fatalf("authenticated client: %v", err)
	}

	// kprobe's client: seed brokers and nothing else. No retries, so the
	// broker's refusal comes back as it is rather than as a timeout.
	anon, err := kgo.NewClient(kgo.SeedBrokers(f.Kafka.Brokers...), kgo.RequestRetries(0), kgo.RecordRetries(1),
		kgo.RetryTimeout(2*time.Second), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	adm := kadm.NewClient(anon)
	assertSASLRefused(t, "listing topics", func() error { _, err := adm.ListTopics(ctx); return err })
	assertSASLRefused(t, "creating a topic", func() error {
		_, err := adm.CreateTopic(ctx, 1, 1, nil, "hl7bus.probe-created")
		return err
	})
	assertSASLRefused(t, "producing into raw", func() error {
		pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
		defer pcancel()
		return anon.ProduceSync(pctx, &kgo.Record{Topic: raw, Value: []byte("forged")}).FirstErr()
	})
	assertSASLRefused(t, "deleting raw", func() error { _, err := adm.DeleteTopic(ctx, raw); return err })

	// Nothing the anonymous client tried happened.
	tds, err := kadm.NewClient(authed).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !tds.Has(raw) || tds.Has("hl7bus.probe-created") {
		t.Errorf("topics after the anonymous client: %v", tds.Names())
	}
	offs, err := kadm.NewClient(authed).ListEndOffsets(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("raw[%d] holds %d records: the forged record was stored", o.Partition, o.Offset)
		}
	})
}

// TestEmbeddedRegistryRequiresBasicAuth: every endpoint answers 401
// without the right credentials, and nothing an unauthenticated request
// tried is applied or saved.
func TestEmbeddedRegistryRequiresBasicAuth(t *testing.T) {
	dir := t.TempDir()
	_, f := start(t, dir)
	url := f.Registry.URL
	schema := `{"schema":"{\"type\":\"record\",\"name\":\"X\",\"fields\":[{\"name\":\"x\",\"type\":\"string\"}]}"}`
	do := func(method, path, body, user, pass string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	user, pass := f.Registry.Username, f.Registry.Password.Value()
	if user == "" || pass == "" {
		t.Fatalf("the standalone's registry configuration has no credentials")
	}
	tests := []struct {
		name, method, path, body, user, pass string
	}{
		{"list subjects, no auth", "GET", "/subjects", "", "", ""},
		{"set compatibility NONE, no auth", "PUT", "/config/hl7bus.raw-value", `{"compatibility":"NONE"}`, "", ""},
		{"set global compatibility, no auth", "PUT", "/config", `{"compatibility":"NONE"}`, "", ""},
		{"register a schema, no auth", "POST", "/subjects/hl7bus.raw-value/versions", schema, "", ""},
		{"read a schema by ID, no auth", "GET", "/schemas/ids/1", "", "", ""},
		{"delete a subject, no auth", "DELETE", "/subjects/hl7bus.raw-value", "", "", ""},
		{"register, wrong password", "POST", "/subjects/hl7bus.raw-value/versions", schema, user, pass + "x"},
		{"register, wrong user", "POST", "/subjects/hl7bus.raw-value/versions", schema, "admin", pass},
		{"register, empty password", "POST", "/subjects/hl7bus.raw-value/versions", schema, user, ""},
		{"set compatibility, password prefix", "PUT", "/config/hl7bus.raw-value", `{"compatibility":"NONE"}`, user, pass[:len(pass)-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(tt.method, tt.path, tt.body, tt.user, tt.pass)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d %s, want 401", tt.method, tt.path, code, body)
			}
			if strings.Contains(body, pass) {
				t.Errorf("the answer carries the password")
			}
		})
	}
	// Nothing was registered or changed...
	if code, body := do("GET", "/subjects", "", user, pass); code != http.StatusOK || strings.Contains(body, "hl7bus.raw-value") {
		t.Errorf("subjects after unauthenticated writes: %d %s", code, body)
	}
	if code, body := do("GET", "/config/hl7bus.raw-value?defaultToGlobal=true", "", user, pass); strings.Contains(body, "NONE") {
		t.Errorf("compatibility after an unauthenticated PUT: %d %s", code, body)
	}
	// ...or saved.
	if b, err := os.ReadFile(filepath.Join(dir, "schemas.json")); err == nil && bytes.Contains(b, []byte("hl7bus.raw-value")) {
		t.Errorf("schemas.json holds an unauthenticated registration: %s", b)
	}
	// With the credentials, the registry works as before: the stages'
	// client registers and reads back.
	cl, err := f.Registry.Client()
	if err != nil {
		t.Fatal(err)
	}
	serde := canonical.NewSerde(cl)
	ctx := context.Background()
	if _, err := serde.Register(ctx, "hl7bus.raw", schemas.Raw); err != nil {
		t.Fatalf("authenticated registration: %v", err)
	}
	if _, err := serde.Encode(&canonical.Raw{MessageID: "M1", Interface: "in", ReceivedAt: time.Now(), Protocol: "mllp",
		Peer: "p", OrderingKey: "k", Payload: []byte("MSH|^~\\&|A\r")}); err != nil {
		t.Fatalf("encoding with the registered schema: %v", err)
	}
	if code, body := do("GET", "/subjects", "", user, pass); code != http.StatusOK || !strings.Contains(body, "hl7bus.raw-value") {
		t.Errorf("subjects after an authenticated registration: %d %s", code, body)
	}
}

// TestEmbeddedListensOnLoopbackOnly: an address off loopback is refused
// with an error naming the key, before anything listens.
func TestEmbeddedListensOnLoopbackOnly(t *testing.T) {
	tests := []struct {
		name, kafka, registry, wantErr string
	}{
		{"loopback v4", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"loopback v6 registry", "127.0.0.1:0", "[::1]:0", ""},
		{"localhost", "localhost:0", "localhost:0", ""},
		{"registry on every interface", "127.0.0.1:0", "0.0.0.0:0", "standalone.registry_address"},
		{"registry with no host", "127.0.0.1:0", ":0", "standalone.registry_address"},
		{"registry on v6 any", "127.0.0.1:0", "[::]:0", "standalone.registry_address"},
		{"registry on a LAN address", "127.0.0.1:0", "192.168.1.10:0", "standalone.registry_address"},
		{"registry on a host name", "127.0.0.1:0", "clinic-server:0", "standalone.registry_address"},
		{"broker on every interface", "0.0.0.0:0", "127.0.0.1:0", "standalone.kafka_address"},
		{"broker on a LAN address", "10.0.0.5:0", "127.0.0.1:0", "standalone.kafka_address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFile(t.TempDir())
			f.Standalone.KafkaAddress, f.Standalone.RegistryAddress = tt.kafka, tt.registry
			emb, err := StartEmbedded(f, quietLog())
			if err == nil {
				emb.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				if strings.Contains(err.Error(), "cannot assign requested address") {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("%s %s / %s accepted; the embedded broker and registry must listen on loopback only", tt.name, tt.kafka, tt.registry)
			case tt.wantErr != "" && (!strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "loopback")):
				t.Fatalf("error %q should name %s and say loopback", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				if err := Validate(f); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Validate: %v, want an error naming %s", err, tt.wantErr)
				}
			}
		})
	}
}

// TestSecretsGeneratedReusedAndRenewed: the credentials are created on the
// first start with owner-only modes, are the same after a restart, are
// what the stages use, and are new once the data directory is deleted.
func TestSecretsGeneratedReusedAndRenewed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	emb, f := start(t, dir)
	secrets := filepath.Join(dir, "secrets")
	st, err := os.Stat(secrets)
	if err != nil {
		t.Fatalf("no secrets directory after the first start: %v", err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("%s has mode %o, want 700", secrets, st.Mode().Perm())
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("a new data directory must be private to its owner: %v %v", st.Mode(), err)
	}
	files := map[string]string{}
	for _, name := range []string{"kafka-scram", "registry-basic"} {
		p := filepath.Join(secrets, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, st.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(b)
	}
	if want := f.Kafka.SASL.Username + ":" + f.Kafka.SASL.Password.Value() + "\n"; files["kafka-scram"] != want {
		t.Errorf("the stages' kafka.sasl is not the kafka-scram file")
	}
	if want := f.Registry.Username + ":" + f.Registry.Password.Value() + "\n"; files["registry-basic"] != want {
		t.Errorf("the stages' registry credentials are not the registry-basic file")
	}
	if f.Kafka.SASL.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("kafka.sasl.mechanism %q, want SCRAM-SHA-512", f.Kafka.SASL.Mechanism)
	}
	if len(f.Kafka.SASL.Password.Value()) < 40 || f.Kafka.SASL.Password == f.Registry.Password {
		t.Errorf("weak or shared generated passwords")
	}
	// Produce one record, then restart on the same directory.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	produce := func(f *config.File) error {
		cl, err := libkafka.NewAdmin(f.Kafka, quietLog(), kgo.RequestRetries(2), kgo.RetryTimeout(5*time.Second))
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := libkafka.EnsureTopics(ctx, cl, f.Kafka, "hl7bus.raw"); err != nil {
			return err
		}
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "hl7bus.raw", Value: []byte("v")}).FirstErr()
	}
	if err := produce(f); err != nil {
		t.Fatal(err)
	}
	emb.Close()
	_, f2 := start(t, dir)
	for name, before := range files {
		after, err := os.ReadFile(filepath.Join(secrets, name))
		if err != nil || string(after) != before {
			t.Errorf("%s changed across a restart (%v)", name, err)
		}
	}
	if f2.Kafka.SASL.Password != f.Kafka.SASL.Password || f2.Registry.Password != f.Registry.Password {
		t.Errorf("the restarted standalone uses other credentials")
	}
	if err := produce(f2); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	// A new data directory means new credentials.
	fresh := filepath.Join(t.TempDir(), "data")
	_, f3 := start(t, fresh)
	if f3.Kafka.SASL.Password == f.Kafka.SASL.Password || f3.Registry.Password == f.Registry.Password {
		t.Errorf("a new data directory reused the old credentials")
	}
}

// TestSecretsNeverPrinted: the credentials the stages get print as
// ******** in every form a log line or config print uses.
func TestSecretsNeverPrinted(t *testing.T) {
	var logs bytes.Buffer
	f := testFile(t.TempDir())
	emb, err := StartEmbedded(f, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	for _, secret := range []string{f.Kafka.SASL.Password.Value(), f.Registry.Password.Value()} {
		if secret == "" {
			t.Fatal("no credentials")
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a password is in the log")
		}
	}
}

// TestBrokerDataDirFromBeforeTheLockdown: a data directory written by a
// broker without authentication (every data directory before this change)
// starts with the generated credentials, and keeps its records.
func TestBrokerDataDirFromBeforeTheLockdown(t *testing.T) {
	dir := t.TempDir()
	old, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(filepath.Join(dir, "kafka")), kfake.SeedTopics(1, "hl7bus.raw"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(old.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "hl7bus.raw", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	old.Close()

	_, f := start(t, dir)
	rd, err := libkafka.NewReader(f.Kafka, quietLog(), "hl7bus.raw", true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	fs := rd.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatalf("reading the old record with the new credentials: %v", err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("records %v", recs)
	}
}

// TestUseEmbedded: a tool given the standalone's file gets the generated
// credentials, unless the file names its own; a data directory without
// them is an error naming where it looked, and nothing is created there.
func TestUseEmbedded(t *testing.T) {
	dir := t.TempDir()
	_, started := start(t, dir)
	tests := []struct {
		name                   string
		dataDir                string
		sasl                   libkafka.SASL
		registryUser           string
		wantKafkaUser, wantErr string
		wantKafkaPass          string
		wantRegistryPass       string
	}{
		{name: "the embedded default", dataDir: dir, wantKafkaUser: "hl7bus",
			wantKafkaPass: started.Kafka.SASL.Password.Value(), wantRegistryPass: started.Registry.Password.Value()},
		{name: "the file's kafka.sasl wins", dataDir: dir,
			sasl:          libkafka.SASL{Mechanism: "SCRAM-SHA-256", Username: "ops", Password: "own"},
			wantKafkaUser: "ops", wantKafkaPass: "own", wantRegistryPass: started.Registry.Password.Value()},
		{name: "the file's registry user wins", dataDir: dir, registryUser: "reader",
			wantKafkaUser: "hl7bus", wantKafkaPass: started.Kafka.SASL.Password.Value(), wantRegistryPass: ""},
		{name: "never started there", dataDir: filepath.Join(dir, "other"), wantErr: filepath.Join(dir, "other", "secrets")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &config.File{Kafka: libkafka.Config{SASL: tt.sasl}.WithDefaults(), Registry: config.Registry{Username: tt.registryUser},
				Standalone: config.Standalone{DataDir: tt.dataDir, KafkaAddress: "127.0.0.1:9092", RegistryAddress: "127.0.0.1:8081"}}
			err := UseEmbedded(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				if _, err := os.Stat(tt.dataDir); err == nil {
					t.Errorf("a client created %s", tt.dataDir)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Kafka.Brokers[0] != "127.0.0.1:9092" || f.Registry.URL != "http://127.0.0.1:8081" {
				t.Errorf("not pointed at the embedded broker and registry: %v %s", f.Kafka.Brokers, f.Registry.URL)
			}
			if f.Kafka.SASL.Username != tt.wantKafkaUser || f.Kafka.SASL.Password.Value() != tt.wantKafkaPass {
				t.Errorf("kafka.sasl user %q, not the expected credentials", f.Kafka.SASL.Username)
			}
			if f.Registry.Password.Value() != tt.wantRegistryPass {
				t.Errorf("registry credentials are not the expected ones")
			}
			if err := f.Kafka.Validate(); err != nil {
				t.Errorf("the resulting kafka section is invalid: %v", err)
			}
		})
	}
}

// TestSecretsRefusedWhenOthersCanRead: a secrets file or directory another
// user could read is refused at start, with the fix in the error.
func TestSecretsRefusedWhenOthersCanRead(t *testing.T) {
	for _, tt := range []struct{ name, path string }{
		{"secrets directory", "secrets"}, {"broker credentials", "secrets/kafka-scram"}, {"registry credentials", "secrets/registry-basic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			emb, _ := start(t, dir)
			emb.Close()
			p := filepath.Join(dir, tt.path)
			if err := os.Chmod(p, 0o744); err != nil {
				t.Fatal(err)
			}
			f := testFile(dir)
			emb, err := StartEmbedded(f, quietLog())
			if err == nil {
				emb.Close()
				t.Fatalf("started with %s readable by others", tt.path)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "chmod") {
				t.Errorf("error %q should name %s and the fix", err, p)
			}
		})
	}
}

// TestSecretsFileMalformed: a damaged credentials file is an error naming
// the file and never quoting it.
func TestSecretsFileMalformed(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "secrets", "kafka-scram")
	if err := os.WriteFile(p, []byte("no-colon-secretvalue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openSecrets(dir)
	if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), "secretvalue") {
		t.Fatalf("error %v", err)
	}
	if _, err := ReadSecrets(dir); err == nil || strings.Contains(err.Error(), "secretvalue") {
		t.Fatalf("ReadSecrets: %v", err)
	}
}

// TestOpenDataDirWarned: an existing data directory that other users may
// enter is used as its owner set it, with a warning naming it.
func TestOpenDataDirWarned(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode os.FileMode
		warn bool
	}{{"private", 0o700, false}, {"world-readable", 0o755, true}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			f := testFile(dir)
			emb, err := StartEmbedded(f, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			emb.Close()
			if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), dir); got != tt.warn {
				t.Errorf("warned %v, want %v:\n%s", got, tt.warn, logs.String())
			}
			if st, _ := os.Stat(dir); st.Mode().Perm() != tt.mode {
				t.Errorf("the data directory's mode changed to %o", st.Mode().Perm())
			}
		})
	}
}
