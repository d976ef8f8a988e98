package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestBrokerOnlyStandalone runs `hl7bus standalone --targets broker,registry`
// as the broker and registry of one host, and every stage as its own
// `hl7bus <stage>` process against it with the standalone's own
// configuration file (the operator guide's recipe). Before the module
// registry, a standalone used as the broker ran its own stages in the same
// consumer groups and traffic was dead-lettered; here every message is
// delivered, no dead letter is written, and no group has a member of the
// standalone.
func TestBrokerOnlyStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs six processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	recv := startReceiver(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	setup := standaloneConfig(t, dataDir, 3, recv.addr)
	broker := startProcess(t, "standalone", "standalone", "--config", setup.cfg, "--targets", "broker,registry")
	waitListening(t, setup.kafkaAddr, 60*time.Second)
	waitListening(t, setup.registryAddr, 60*time.Second)
	// The broker-only standalone runs no ingress.
	time.Sleep(500 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", setup.ingressAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("the broker-only standalone listens on the interface's address")
	}

	var stages []*process
	for _, stage := range []string{"parse", "transform", "route", "egress", "ingress"} {
		// No brokers, no credentials given: the stage processes find the
		// embedded ones through the file's standalone section.
		stages = append(stages, startProcess(t, stage, stage, "--config", setup.cfg, "--instance", "p0", "--http-address", "127.0.0.1:0"))
	}
	waitListening(t, setup.ingressAddr, 60*time.Second)

	sent := sendAll(t, ctx, setup.ingressAddr, 2, 3, 2)
	checkDelivered(t, recv, sent, 120*time.Second)

	adm := embeddedAdmin(t, dataDir, setup.kafkaAddr)
	var dlqs []string
	for _, st := range []string{"parse", "transform", "route", "egress"} {
		dlqs = append(dlqs, "hl7bus.dlq."+st)
	}
	ends, err := adm.ListEndOffsets(ctx, dlqs...)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			t.Errorf("%s[%d] holds %d dead letters", o.Topic, o.Partition, o.Offset)
		}
	})
	groups, err := adm.DescribeGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) < 4 {
		t.Errorf("groups %v: want one per consuming stage", groups.Names())
	}
	for _, g := range groups.Sorted() {
		for _, m := range g.Members {
			if m.InstanceID != nil && *m.InstanceID == "standalone" {
				t.Errorf("group %s has a member of the standalone (%s): it runs stages", g.Group, m.ClientID)
			}
		}
	}

	for _, p := range stages {
		p.stop(t)
	}
	broker.stop(t)
}

// embeddedAdmin returns an admin client of the embedded broker, logged in
// with the credentials the standalone generated in dataDir.
func embeddedAdmin(t *testing.T, dataDir, addr string) *kadm.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "secrets", "kafka-scram"))
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
