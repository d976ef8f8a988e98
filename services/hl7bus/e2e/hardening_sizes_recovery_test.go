package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/kafkatest"
)

// stageProcesses runs ingress, parse, transform, route and egress as
// processes against env, each with --instance inst, delivering to recv.
type stageProcesses struct {
	cfg, ingressAddr string
	procs            map[string]*process
}

func startStageProcesses(t *testing.T, env *kafkatest.Env, recv *receiver, inst string) *stageProcesses {
	t.Helper()
	sp := &stageProcesses{ingressAddr: freeAddr(t), procs: map[string]*process{}}
	sp.cfg = writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
kafka:
  brokers: [%s]
  topic_prefix: "%s"
  partitions: 3
registry:
  url: %s
interfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
destinations:
  - {name: lis, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms, max_backoff: 1s}}
routes:
  - {name: all, destinations: [lis]}
`, strings.Join(env.Kafka.Brokers, ", "), env.Kafka.TopicPrefix, env.RegistryURL, sp.ingressAddr, recv.addr))
	// Ingress first, listening before the others start: their metrics
	// endpoints take any free port, and one of them could otherwise take
	// the port freeAddr picked for ingress before ingress binds it.
	sp.procs["ingress"] = sp.start(t, "ingress", inst)
	waitListening(t, sp.ingressAddr, 60*time.Second)
	for _, st := range []string{"parse", "transform", "route", "egress"} {
		sp.procs[st] = sp.start(t, st, inst)
	}
	return sp
}

func (sp *stageProcesses) start(t *testing.T, stage, inst string) *process {
	t.Helper()
	return startProcess(t, stage+"-"+inst, stage, "--config", sp.cfg, "--instance", inst, "--http-address", "127.0.0.1:0")
}

// sendBatch sends one message for each of patients (so every partition
// gets some) and returns them.
func sendBatch(t *testing.T, ctx context.Context, addr string, round, patients int) [][]byte {
	t.Helper()
	var msgs [][]byte
	for p := 0; p < patients; p++ {
		m := []byte(message("ADT", 500+p, round))
		sendExpectCode(t, ctx, addr, m, hl7v2.AckAccept)
		msgs = append(msgs, m)
	}
	return msgs
}

// TestHardeningRecoveryRestartInPlace (D12): a stage killed (SIGKILL) and
// restarted in place under the same instance name resumes its partitions
// within 5 s. Before static membership the new member waited for the dead
// one's session to expire: about 45 s without delivery.
func TestHardeningRecoveryRestartInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs five processes")
	}
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	recv := startReceiver(t)
	sp := startStageProcesses(t, env, recv, "r0")
	waitFor(t, recv, 60*time.Second, sendBatch(t, ctx, sp.ingressAddr, 0, 6)...)

	for i, st := range []string{"parse", "egress"} {
		sp.procs[st].kill()
		restarted := time.Now()
		sp.procs[st] = sp.start(t, st, "r0")
		msgs := sendBatch(t, ctx, sp.ingressAddr, i+1, 6)
		took := waitFor(t, recv, 60*time.Second, msgs...)
		since := time.Since(restarted)
		t.Logf("%s killed and restarted: flow resumed %v after the restart", st, since)
		if since > 5*time.Second {
			t.Errorf("%s: the flow resumed %v after the restart (%v after sending), want within 5s", st, since, took)
		}
	}
	for _, p := range sp.procs {
		p.stop(t)
	}
}

// TestHardeningRecoveryHandover (D12): a stage instance that is stopped
// (SIGTERM, as in a rolling update or scale-in) hands its partitions to
// the remaining instance within 5 s. A static member does not leave its
// group when it closes; hl7bus sends the leave itself.
func TestHardeningRecoveryHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs seven processes")
	}
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	recv := startReceiver(t)
	sp := startStageProcesses(t, env, recv, "h0")
	second := map[string]*process{}
	for _, st := range []string{"parse", "egress"} {
		second[st] = sp.start(t, st, "h1")
	}
	// Both instances of each stage hold partitions once this flows.
	waitFor(t, recv, 60*time.Second, sendBatch(t, ctx, sp.ingressAddr, 0, 6)...)
	time.Sleep(3 * time.Second)
	waitFor(t, recv, 60*time.Second, sendBatch(t, ctx, sp.ingressAddr, 1, 6)...)

	for i, st := range []string{"parse", "egress"} {
		sp.procs[st].stop(t)
		stopped := time.Now()
		delete(sp.procs, st)
		msgs := sendBatch(t, ctx, sp.ingressAddr, i+2, 6)
		waitFor(t, recv, 60*time.Second, msgs...)
		since := time.Since(stopped)
		t.Logf("%s h0 stopped: h1 delivered every partition's messages %v later", st, since)
		if since > 5*time.Second {
			t.Errorf("%s: handover took %v, want within 5s", st, since)
		}
	}
	for _, p := range sp.procs {
		p.stop(t)
	}
	for _, p := range second {
		p.stop(t)
	}
}
