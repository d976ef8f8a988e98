// Package standalone runs the whole exchange in one process: the embedded
// broker (franz-go's kfake, persisted to the data directory), the embedded
// schema registry, and the five stages, which still talk to each other only
// through the broker and Avro records, as in production.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/logattr"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/services/egress"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
	"github.com/hl7bus/hl7bus/services/ingress"
	"github.com/hl7bus/hl7bus/services/parse"
	"github.com/hl7bus/hl7bus/services/route"
	"github.com/hl7bus/hl7bus/services/transform"
)

// Embedded is a running embedded broker and registry.
type Embedded struct {
	Cluster *kfake.Cluster
	reg     *registry
	http    *http.Server
}

// StartEmbedded starts the broker and registry of f.Standalone.
func StartEmbedded(f *config.File, log *slog.Logger) (*Embedded, error) {
	if err := Validate(f); err != nil {
		return nil, err
	}
	dir := f.Standalone.DataDir
	if err := privateDataDir(dir, log); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "kafka"), 0o755); err != nil {
		return nil, fmt.Errorf("standalone.data_dir: %w", err)
	}
	secrets, err := openSecrets(dir)
	if err != nil {
		return nil, err
	}
	auth, err := brokerAuth(filepath.Join(dir, "kafka"), secrets.Kafka)
	if err != nil {
		return nil, err
	}
	_, portStr, err := net.SplitHostPort(f.Standalone.KafkaAddress)
	if err != nil {
		return nil, fmt.Errorf("standalone.kafka_address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("standalone.kafka_address: %w", err)
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(filepath.Join(dir, "kafka")),
		kfake.DefaultNumPartitions(int(f.Kafka.Partitions)),
		// The broker-wide record limit (kfake checks each produced batch
		// against it, as Kafka does) follows the one size policy, so even a
		// topic created without hl7bus's max.message.bytes holds every record.
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(f.Kafka.WithDefaults().MaxRecordBytes)})}
	if f.Standalone.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	opts = append(opts, auth...)
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the embedded broker: %w", err)
	}
	reg, err := openRegistry(dir)
	if err != nil {
		cluster.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", f.Standalone.RegistryAddress)
	if err != nil {
		cluster.Close()
		return nil, fmt.Errorf("standalone.registry_address: %w", err)
	}
	srv := &http.Server{Handler: requireBasicAuth(secrets.Registry, reg.handler()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded registry stopped", logattr.Error(err))
		}
	}()
	// With port 0 in the configuration, the stages must use the ports the
	// broker and registry actually got.
	f.Kafka.Brokers = cluster.ListenAddrs()
	f.Registry.URL = "http://" + ln.Addr().String()
	// The stages log in with the generated users: the embedded broker and
	// registry know no others, whatever kafka.sasl and registry say.
	useCredentials(f, secrets, true, true)
	log.Info("embedded broker and registry running", logattr.URL("kafka", f.Kafka.Brokers[0]),
		logattr.URL("registry", f.Registry.URL), logattr.DataDir(dir))
	return &Embedded{Cluster: cluster, reg: reg, http: srv}, nil
}

// Close stops the registry and the broker (which saves its state).
func (e *Embedded) Close() {
	_ = e.http.Close()
	e.Cluster.Close()
}

// Stages runs the five stages of f against its broker and registry until ctx
// ends, then stops them in order: ingress first (finishing and ACKing what
// is in flight), then the others.
func Stages(ctx context.Context, f *config.File, tel *telemetry.Telemetry, log *slog.Logger) error {
	cl, err := f.Registry.Client()
	if err != nil {
		return err
	}
	serde := canonical.NewSerde(cl)
	if f.HTTP.Address != "off" {
		addr, err := tel.Serve(ctx, f.HTTP.Address)
		if err != nil {
			return err
		}
		log.Info("serving /metrics, /healthz and /readyz", logattr.Address(addr))
	}
	profiles, err := f.Profiles()
	if err != nil {
		return err
	}
	// One parser for every stage: the header ingress computes is carried,
	// so parse and transform must read the payload as ingress did.
	parser, err := f.Parser.NewParser()
	if err != nil {
		return fmt.Errorf("parser.%w", err)
	}
	in := ingress.New(ingress.Config{Interfaces: f.Interfaces, Telemetry: tel, Parser: parser}, f.Kafka, serde, log)
	if err := in.Start(ctx); err != nil {
		_ = in.Stop(context.Background())
		return err
	}
	// One instance of each stage, with a transactional ID that is the same
	// on every start, so a restart fences the transactions its killed
	// predecessor left open.
	others := []interface{ Run(context.Context) error }{
		parse.New(parse.Config{Instance: "standalone", Telemetry: tel, Profiles: profiles, Parser: parser}, f.Kafka, serde, log),
		transform.New(transform.Config{Instance: "standalone", Telemetry: tel, Parser: parser}, f.Kafka, serde, log),
		route.New(route.Config{Instance: "standalone", Rules: f.Routes, Telemetry: tel}, f.Kafka, serde, log),
		egress.New(egress.Config{Destinations: f.Destinations, Telemetry: tel}, f.Kafka, serde, log),
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errc := make(chan error, len(others))
	for _, st := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Run(runCtx); err != nil {
				errc <- err
				stop()
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-runCtx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := []error{in.Stop(shutdownCtx)}
	stop()
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
