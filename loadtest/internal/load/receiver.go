package load

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// Receiver stands in for the destination: it ACKs every message and records
// when each control ID arrived, to measure end-to-end latency and check
// loss, duplicates and per-patient order.
type Receiver struct {
	run  string
	srv  *mllp.Server
	ln   net.Listener
	sent *sentLog
	// delay, when set, makes the receiver slow (a slow destination).
	delay time.Duration

	mu         sync.Mutex
	seen       map[string]int
	lastSeq    map[int]int // patient -> last sequence number received
	violations int
	foreign    int
	e2e        *histogram
}

// NewReceiver listens on addr for the run's messages.
func NewReceiver(addr, run string, sent *sentLog, delay time.Duration) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Receiver{run: run, ln: ln, sent: sent, delay: delay, seen: map[string]int{}, lastSeq: map[int]int{}, e2e: newHistogram()}
	r.srv = mllp.NewServer(mllp.HandlerFunc(r.handle), mllp.WithIdleTimeout(0))
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Addr is where the receiver listens.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

func (r *Receiver) handle(_ context.Context, _ mllp.ConnInfo, frame []byte) ([]byte, error) {
	now := time.Now()
	m, err := hl7v2.Parse(frame)
	if err != nil {
		return nil, nil
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	ctl := m.ControlID()
	run, patient, seq, ok := ParseControlID(ctl)
	r.mu.Lock()
	if !ok || run != r.run {
		r.foreign++
	} else {
		r.seen[ctl]++
		if r.seen[ctl] == 1 {
			if last, ok := r.lastSeq[patient]; ok && seq < last {
				r.violations++
			}
			if seq > r.lastSeq[patient] {
				r.lastSeq[patient] = seq
			}
			if start, ok := r.sent.sentAt(ctl); ok {
				r.e2e.record(now.Sub(start))
			}
		}
	}
	r.mu.Unlock()
	ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: hl7v2.AckAccept})
	if err != nil {
		return nil, nil
	}
	return ack.Bytes(), nil
}

// Close stops the receiver.
func (r *Receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// delivered returns how many distinct messages arrived.
func (r *Receiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
