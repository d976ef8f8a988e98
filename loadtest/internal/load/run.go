package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hl7bus/hl7bus/libs/hl7v2"
	"github.com/hl7bus/hl7bus/libs/mllp"
)

// Config describes one run.
type Config struct {
	Name        string
	Target      string        // the exchange's MLLP address
	Receiver    string        // where this tool's receiver listens
	Rate        float64       // messages per second in all; 0 runs closed-loop (as fast as ACKs come)
	Connections int           // MLLP connections to the target
	Duration    time.Duration // how long to send
	Patients    int           // size of the patient population
	Drain       time.Duration // how long to wait for deliveries after sending
	AckTimeout  time.Duration
	// ReceiverDelay makes the receiver slow (a slow destination).
	ReceiverDelay time.Duration
	Corpus        *Corpus
}

// sentLog remembers when each message was sent and which were ACKed.
type sentLog struct{ m sync.Map }

type sentInfo struct {
	at    time.Time
	acked atomic.Bool
}

func (s *sentLog) sentAt(ctl string) (time.Time, bool) {
	v, ok := s.m.Load(ctl)
	if !ok {
		return time.Time{}, false
	}
	return v.(*sentInfo).at, true
}

// Run sends load for cfg.Duration, waits for deliveries, and reports.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Connections <= 0 || cfg.Patients <= 0 || cfg.Duration <= 0 || cfg.Corpus == nil {
		return nil, fmt.Errorf("load: connections, patients, duration and corpus are required")
	}
	if cfg.Patients < cfg.Connections {
		cfg.Patients = cfg.Connections // every connection needs patients of its own
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	run := fmt.Sprintf("L%d", time.Now().UnixNano()%1e12)
	sent := &sentLog{}
	recv, err := NewReceiver(cfg.Receiver, run, sent, cfg.ReceiverDelay)
	if err != nil {
		return nil, fmt.Errorf("load: receiver: %w", err)
	}
	defer recv.Close()

	seconds := int(cfg.Duration/time.Second) + 2
	tl := newTimeline(seconds)
	ackLat := newHistogram()
	var nSent, nAcked, nRejected, nErrors atomic.Int64
	var next atomic.Int64 // template index
	start := time.Now().Add(100 * time.Millisecond)
	end := start.Add(cfg.Duration)

	var wg sync.WaitGroup
	for c := 0; c < cfg.Connections; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := mllp.NewClient(cfg.Target, mllp.WithAckTimeout(cfg.AckTimeout), mllp.WithBackoff(10*time.Millisecond, time.Second))
			defer cl.Close()
			// This connection's patients, each with its own sequence: a
			// patient's messages go out in order on one connection, so
			// their arrival order can be checked.
			var mine []int
			for p := c; p < cfg.Patients; p += cfg.Connections {
				mine = append(mine, p)
			}
			seq := make([]int, len(mine))
			var interval time.Duration
			if cfg.Rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(cfg.Connections) / cfg.Rate)
			}
			offset := time.Duration(c) * interval / time.Duration(cfg.Connections)
			for i := 0; ; i++ {
				scheduled := time.Now()
				if interval > 0 {
					scheduled = start.Add(offset + time.Duration(i)*interval)
					if wait := time.Until(scheduled); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
				}
				if !scheduled.Before(end) || ctx.Err() != nil {
					return
				}
				k := i % len(mine)
				seq[k]++
				ctl := ControlID(run, mine[k], seq[k])
				msg, err := cfg.Corpus.Make(int(next.Add(1)), run, mine[k], seq[k])
				if err != nil {
					nErrors.Add(1)
					continue
				}
				info := &sentInfo{at: time.Now()}
				sent.m.Store(ctl, info)
				nSent.Add(1)
				tl.sent(scheduled.Sub(start))
				reply, err := cl.Send(ctx, msg)
				now := time.Now()
				if err != nil {
					nErrors.Add(1)
					continue
				}
				if ack, err := hl7v2.ParseACK(reply); err != nil || !ack.Accepted() {
					nRejected.Add(1)
					continue
				}
				info.acked.Store(true)
				nAcked.Add(1)
				// Open loop: latency counts from the scheduled time, so a
				// stall also delays (and charges) the messages queued behind it.
				lat := now.Sub(scheduled)
				ackLat.record(lat)
				tl.acked(scheduled.Sub(start), lat)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)

	// Wait for every ACKed message to be delivered (or the drain to end).
	deadline := time.Now().Add(cfg.Drain)
	for recv.delivered() < int(nAcked.Load()) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	r := &Report{Name: cfg.Name, Mode: "open", TargetRate: cfg.Rate, Connections: cfg.Connections, Patients: cfg.Patients,
		DurationS: cfg.Duration.Seconds(), Sent: nSent.Load(), Acked: nAcked.Load(), Rejected: nRejected.Load(), Errors: nErrors.Load(),
		AckLatency: ackLat.percentiles(), Timeline: tl.points()}
	if cfg.Rate == 0 {
		r.Mode = "closed"
	}
	r.AchievedRate = float64(r.Acked) / sendTime.Seconds()
	recv.mu.Lock()
	sent.m.Range(func(k, v any) bool {
		if v.(*sentInfo).acked.Load() && recv.seen[k.(string)] == 0 {
			r.Lost++
		}
		return true
	})
	for _, n := range recv.seen {
		r.Delivered++
		r.Duplicates += int64(n - 1)
	}
	r.OrderViolations = int64(recv.violations)
	recv.mu.Unlock()
	r.E2ELatency = recv.e2e.percentiles()
	return r, nil
}
