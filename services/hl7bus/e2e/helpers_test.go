package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// binary is the hl7bus binary built once for the subprocess tests.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func hl7busBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hl7bus-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "hl7bus")
		out, err := exec.Command("go", "build", "-o", binPath, "..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s is not listening after %v", addr, within)
}

// process is a running hl7bus subprocess whose output goes to a log file
// shown when the test fails. One goroutine owns cmd.Wait and closes done.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	return startCmd(t, name, exec.Command(hl7busBinary(t), args...))
}

// startCmd starts cmd with its output in a log whose tail the test shows
// if it fails, and kills it when the test ends.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *process) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("process exited with %v", p.err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("process did not stop within 30s")
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// sendAll sends every message of the scenario from several connections
// and returns the messages ACKed, by control ID. Each sender owns its
// patients and sends their messages in order.
func sendAll(t *testing.T, ctx context.Context, addr string, senders, patientsPer, perPatient int) map[string]string {
	t.Helper()
	sent := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mllp.NewClient(addr, mllp.WithAckTimeout(20*time.Second))
			defer c.Close()
			for n := 0; n < perPatient; n++ {
				for p := s * patientsPer; p < (s+1)*patientsPer; p++ {
					msg := message([]string{"ADT", "ORU", "VXU"}[(p+n)%3], p, n)
					m, _ := hl7v2.Parse([]byte(msg))
					reply, err := c.Send(ctx, []byte(msg))
					if err != nil {
						t.Errorf("send %s: %v", m.ControlID(), err)
						return
					}
					ack, err := hl7v2.ParseACK(reply)
					if err != nil || ack.Code != hl7v2.AckAccept || !ack.Matches(m.ControlID()) {
						t.Errorf("ACK for %s: %v %+v", m.ControlID(), err, ack)
						return
					}
					mu.Lock()
					sent[m.ControlID()] = msg
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return sent
}

// checkDelivered waits for every sent message at the receiver, then checks
// fidelity, duplicates and per-patient order.
func checkDelivered(t *testing.T, recv *receiver, sent map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(recv.messages()) < len(sent) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	got := recv.messages()
	if len(got) != len(sent) {
		t.Fatalf("receiver got %d messages, want %d", len(got), len(sent))
	}
	last := map[string]int{}
	seen := map[string]bool{}
	for _, f := range got {
		m, err := hl7v2.Parse(f)
		if err != nil {
			t.Fatal(err)
		}
		ctl := m.ControlID()
		if seen[ctl] {
			t.Errorf("%s delivered twice", ctl)
		}
		seen[ctl] = true
		if want := sent[ctl]; string(f) != want {
			t.Errorf("%s arrived changed:\n got %q\nwant %q", ctl, f, want)
		}
		var p, n int
		fmt.Sscanf(ctl, "C%03d-%04d", &p, &n)
		patient := strings.SplitN(ctl, "-", 2)[0]
		if prev, ok := last[patient]; ok && n <= prev {
			t.Errorf("patient %s: message %d arrived after %d", patient, n, prev)
		}
		last[patient] = n
	}
}

// sendMalformed sends a frame with no MSH and expects AR.
func sendMalformed(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	c := mllp.NewClient(addr)
	defer c.Close()
	reply, err := c.Send(ctx, []byte("this is not HL7\r"))
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := hl7v2.ParseACK(reply); err != nil || ack.Code != hl7v2.AckReject {
		t.Fatalf("malformed message: %v %+v", err, ack)
	}
}

// deadLetters reads every committed record of topic.
func deadLetters(t *testing.T, ctx context.Context, brokers []string, serde *canonical.Serde, topic string, want int) []*canonical.DeadLetter {
	t.Helper()
	reader, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var dead []*canonical.DeadLetter
	for len(dead) < want && pollCtx.Err() == nil {
		reader.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			rec, err := serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatal(err)
			}
			dead = append(dead, rec.(*canonical.DeadLetter))
		})
	}
	return dead
}

// resenders send messages as real interfaces do while things fail: a
// message is resent until it is accepted, then the next one is sent. Each
// sender owns its patients and sends their messages in order.
type resenders struct {
	total  int
	acked  sync.Map // control IDs accepted
	nAcked atomic.Int64
	wg     sync.WaitGroup
}

func startResenders(ctx context.Context, addr string, senders, patientsPer, perPatient int, ackTimeout time.Duration) *resenders {
	r := &resenders{total: senders * patientsPer * perPatient}
	for s := 0; s < senders; s++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			c := mllp.NewClient(addr, mllp.WithAckTimeout(ackTimeout), mllp.WithBackoff(50*time.Millisecond, time.Second))
			defer c.Close()
			for n := 0; n < perPatient; n++ {
				for p := s * patientsPer; p < (s+1)*patientsPer; p++ {
					msg := message([]string{"ADT", "ORU", "VXU"}[(p+n)%3], p, n)
					m, _ := hl7v2.Parse([]byte(msg))
					for ctx.Err() == nil {
						reply, err := c.Send(ctx, []byte(msg))
						if err != nil {
							continue // down: the client backs off before the resend
						}
						if ack, err := hl7v2.ParseACK(reply); err == nil && ack.Code == hl7v2.AckAccept {
							r.acked.Store(m.ControlID(), true)
							r.nAcked.Add(1)
							break
						}
						time.Sleep(100 * time.Millisecond) // AE: not stored; resend
					}
				}
			}
		}()
	}
	return r
}

// waitAcked waits until n messages are accepted or ctx ends.
func (r *resenders) waitAcked(ctx context.Context, n int) {
	for r.nAcked.Load() < int64(n) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// finish waits for the senders and fails unless every message was accepted.
func (r *resenders) finish(t *testing.T) {
	t.Helper()
	r.wg.Wait()
	if n := r.nAcked.Load(); n != int64(r.total) {
		t.Fatalf("only %d of %d messages were ACKed", n, r.total)
	}
}

// waitDelivered fails unless every accepted message reaches recv within
// the time given, and returns how many extra copies arrived.
func (r *resenders) waitDelivered(t *testing.T, recv *receiver, within time.Duration) (duplicates int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		counts := map[string]int{}
		for _, f := range recv.messages() {
			if m, err := hl7v2.Parse(f); err == nil {
				counts[m.ControlID()]++
			}
		}
		missing := 0
		r.acked.Range(func(k, _ any) bool {
			if counts[k.(string)] == 0 {
				missing++
			}
			return true
		})
		if missing == 0 {
			for _, c := range counts {
				duplicates += c - 1
			}
			return duplicates
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ACKed messages were never delivered", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// standaloneSetup is a standalone exchange's configuration file and the
// addresses it listens on.
type standaloneSetup struct {
	cfg, ingressAddr, kafkaAddr, registryAddr string
}

// standaloneConfig writes the configuration of a standalone exchange on
// dataDir with one MLLP interface (adt-in) routing everything to one
// destination (lis at recvAddr), on free ports.
func standaloneConfig(t *testing.T, dataDir string, partitions int, recvAddr string) standaloneSetup {
	t.Helper()
	ingressAddr, kafkaAddr, registryAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`log: {level: info, format: text}
http: {address: "127.0.0.1:0"}
kafka: {partitions: %d}
standalone: {data_dir: "%s", kafka_address: "%s", registry_address: "%s"}
admin: {address: "%s"}
interfaces:
  - {name: adt-in, protocol: mllp, address: "%s"}
destinations:
  - {name: lis, protocol: mllp, address: "%s", retry: {initial_backoff: 50ms, max_backoff: 1s}}
routes:
  - {name: all, destinations: [lis]}
`, partitions, dataDir, kafkaAddr, registryAddr, freeAddr(t), ingressAddr, recvAddr))
	return standaloneSetup{cfg: cfg, ingressAddr: ingressAddr, kafkaAddr: kafkaAddr, registryAddr: registryAddr}
}
