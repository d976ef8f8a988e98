package egresstest

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// MLLPPeer is an MLLP receiver (libs/mllp framing, hl7v2 ACKs) that the
// suite steers: the Peer of the MLLP sender.
type MLLPPeer struct {
	t    T
	addr string

	mu       sync.Mutex
	ln       net.Listener // nil while down
	conns    map[net.Conn]bool
	behave   Behaviour
	received [][]byte
	wg       sync.WaitGroup
}

// NewMLLPPeer starts a peer on a free local port, answering Accept; the
// test's cleanup stops it.
func NewMLLPPeer(t T) *MLLPPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mllp peer: %v", err)
	}
	p := &MLLPPeer{t: t, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

// Addr is host:port, the destination's address.
func (p *MLLPPeer) Addr() string { return p.addr }

// Behave sets what the peer does with every later message.
func (p *MLLPPeer) Behave(b Behaviour) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.behave = b
}

// Received returns the payloads received, in arrival order.
func (p *MLLPPeer) Received() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.received...)
}

// Down closes the listener and every connection and waits for the peer's
// goroutines.
func (p *MLLPPeer) Down() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Up listens again on the same address.
func (p *MLLPPeer) Up() {
	p.t.Helper()
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return
	}
	// The port was just released: a listener may take a moment to get
	// it back on a busy machine.
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("mllp peer: listening again on %s: %v", p.addr, err)
}

// serve accepts on ln until it is closed.
func (p *MLLPPeer) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.ln != ln { // went down meanwhile
				p.mu.Unlock()
				_ = c.Close()
				return
			}
			p.conns[c] = true
			p.wg.Add(1)
			p.mu.Unlock()
			go func() {
				defer p.wg.Done()
				p.conn(c)
			}()
		}
	}()
}

// conn reads frames from c and answers each as told.
func (p *MLLPPeer) conn(c net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = c.Close()
	}()
	r := mllp.NewReader(c, 0)
	for {
		frame, err := r.ReadFrame()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.received = append(p.received, frame)
		b := p.behave
		p.mu.Unlock()
		if b.Answer == Nothing {
			continue
		}
		reply, err := answer(frame, b.Answer)
		if err != nil {
			p.t.Errorf("mllp peer: %v", err)
			return
		}
		if err := mllp.WriteFrame(c, reply); err != nil || b.CloseAfter {
			return
		}
	}
}

// answer builds the reply to frame.
func answer(frame []byte, a Answer) ([]byte, error) {
	if a == Garbage {
		return append([]byte("THIS IS NO ACK: "), frame...), nil
	}
	m, err := hl7v2.Parse(frame)
	if err != nil {
		return nil, errors.New("the suite sent a message that is not HL7")
	}
	code := map[Answer]string{Accept: hl7v2.AckAccept, Error: hl7v2.AckError, Reject: hl7v2.AckReject}[a]
	ack, err := hl7v2.BuildACK(m, hl7v2.AckSpec{Code: code, ControlID: "PEER" + m.ControlID()})
	if err != nil {
		return nil, err
	}
	return ack.Bytes(), nil
}
