// Package standalone holds the embedded default's broker (franz-go's
// kfake, persisted to the data directory) and schema registry, each
// started on its own so that `hl7bus standalone --targets broker,registry`
// can serve stages running as separate processes. The stages themselves
// are modules of the composition root (internal/modules); they still talk
// to each other only through the broker and Avro records, as in
// production.
package standalone

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/services/hl7bus/internal/config"
)

// Embedded is a running embedded broker and registry.
type Embedded struct {
	Cluster  *kfake.Cluster
	broker   *Broker
	registry *SchemaRegistry
}

// StartEmbedded starts the broker and the registry of f.Standalone, in
// that order, and points f's clients at them.
func StartEmbedded(f *config.File, log *slog.Logger) (*Embedded, error) {
	b, err := StartBroker(f, log)
	if err != nil {
		return nil, err
	}
	r, err := StartRegistry(f, log)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &Embedded{Cluster: b.Cluster, broker: b, registry: r}, nil
}

// Close stops the registry and the broker (which saves its state).
func (e *Embedded) Close() {
	e.registry.Close()
	e.broker.Close()
}

// Broker is the running embedded broker.
type Broker struct {
	Cluster *kfake.Cluster
}

// openDataDir creates the data directory (private) and returns the
// credentials in it, generating the missing ones. The broker and the
// registry each call it; they start one after the other, so the first
// generates and the second reads.
func openDataDir(f *config.File, log *slog.Logger) (*Secrets, error) {
	if err := Validate(f); err != nil {
		return nil, err
	}
	if err := privateDataDir(f.Standalone.DataDir, log); err != nil {
		return nil, err
	}
	s, err := openSecrets(f.Standalone.DataDir)
	if err != nil {
		return nil, err
	}
	// The index's and the admin API's secrets too (secrets.go).
	return s, openAppSecrets(f, time.Now(), log)
}

// StartBroker starts the embedded broker of f.Standalone and points
// kafka.brokers and kafka.sasl of f at it (the port it got, with port 0
// in the configuration, and the generated user: the embedded broker knows
// no other, whatever kafka.sasl says).
func StartBroker(f *config.File, log *slog.Logger) (*Broker, error) {
	secrets, err := openDataDir(f, log)
	if err != nil {
		return nil, err
	}
	dir := f.Standalone.DataDir
	if err := os.MkdirAll(filepath.Join(dir, "kafka"), 0o755); err != nil {
		return nil, fmt.Errorf("standalone.data_dir: %w", err)
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
	f.Kafka.Brokers = cluster.ListenAddrs()
	useCredentials(f, secrets, true, false)
	log.Info("embedded broker running", logattr.URL("kafka", f.Kafka.Brokers[0]), logattr.DataDir(dir))
	return &Broker{Cluster: cluster}, nil
}

// Close stops the broker, which saves its state.
func (b *Broker) Close() { b.Cluster.Close() }

// SchemaRegistry is the running embedded schema registry.
type SchemaRegistry struct {
	http *http.Server
}

// StartRegistry starts the embedded registry of f.Standalone and points
// registry.url and the registry credentials of f at it.
func StartRegistry(f *config.File, log *slog.Logger) (*SchemaRegistry, error) {
	secrets, err := openDataDir(f, log)
	if err != nil {
		return nil, err
	}
	dir := f.Standalone.DataDir
	reg, err := openRegistry(dir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.Standalone.RegistryAddress)
	if err != nil {
		return nil, fmt.Errorf("standalone.registry_address: %w", err)
	}
	srv := &http.Server{Handler: requireBasicAuth(secrets.Registry, reg.handler()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("embedded registry stopped", logattr.Error(err))
		}
	}()
	f.Registry.URL = "http://" + ln.Addr().String()
	useCredentials(f, secrets, false, true)
	log.Info("embedded registry running", logattr.URL("registry", f.Registry.URL), logattr.DataDir(dir))
	return &SchemaRegistry{http: srv}, nil
}

// Close stops the registry.
func (r *SchemaRegistry) Close() { _ = r.http.Close() }
