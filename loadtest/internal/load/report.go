package load

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Report is the outcome of a run; its JSON form is what `hl7load run
// --json` writes.
type Report struct {
	Name            string      `json:"name,omitempty"`
	Mode            string      `json:"mode"`
	TargetRate      float64     `json:"target_rate"`
	Connections     int         `json:"connections"`
	Patients        int         `json:"patients"`
	DurationS       float64     `json:"duration_s"`
	Sent            int64       `json:"sent"`
	Acked           int64       `json:"acked"`
	Rejected        int64       `json:"rejected"`
	Errors          int64       `json:"errors"`
	Delivered       int64       `json:"delivered"`
	Lost            int64       `json:"lost"`
	Duplicates      int64       `json:"duplicates"`
	OrderViolations int64       `json:"order_violations"`
	AchievedRate    float64     `json:"achieved_rate"`
	AckLatency      Percentiles `json:"ack_latency_ms"`
	E2ELatency      Percentiles `json:"e2e_latency_ms"`
	Timeline        []Point     `json:"timeline"`
}

// Point is one second of the run.
type Point struct {
	Second   int     `json:"second"`
	Sent     int64   `json:"sent"`
	Acked    int64   `json:"acked"`
	MaxAckMS float64 `json:"max_ack_ms"`
}

// Text writes the report for people.
func (r *Report) Text(w io.Writer) {
	fmt.Fprintf(w, "%s run %s: %.0f msg/s target over %d connections for %.0fs, %d patients\n", r.Mode, r.Name, r.TargetRate, r.Connections, r.DurationS, r.Patients)
	fmt.Fprintf(w, "  sent %d, acked %d (%.0f msg/s), rejected %d, errors %d\n", r.Sent, r.Acked, r.AchievedRate, r.Rejected, r.Errors)
	fmt.Fprintf(w, "  delivered %d, lost %d, duplicates %d, order violations %d\n", r.Delivered, r.Lost, r.Duplicates, r.OrderViolations)
	pr := func(name string, p Percentiles) {
		fmt.Fprintf(w, "  %-12s p50 %7.2f  p90 %7.2f  p99 %7.2f  p99.9 %7.2f  max %7.2f ms (%d samples)\n", name, p.P50, p.P90, p.P99, p.P999, p.Max, p.Count)
	}
	pr("ACK", r.AckLatency)
	pr("end-to-end", r.E2ELatency)
}

// timeline counts per second of scheduled time.
type timeline struct {
	mu  sync.Mutex
	pts []Point
}

func newTimeline(seconds int) *timeline {
	t := &timeline{pts: make([]Point, seconds)}
	for i := range t.pts {
		t.pts[i].Second = i
	}
	return t
}

func (t *timeline) at(d time.Duration) *Point {
	i := int(d / time.Second)
	if i < 0 {
		i = 0
	}
	if i >= len(t.pts) {
		i = len(t.pts) - 1
	}
	return &t.pts[i]
}

func (t *timeline) sent(d time.Duration) {
	t.mu.Lock()
	t.at(d).Sent++
	t.mu.Unlock()
}

func (t *timeline) acked(d time.Duration, lat time.Duration) {
	t.mu.Lock()
	p := t.at(d)
	p.Acked++
	if ms := float64(lat.Microseconds()) / 1000; ms > p.MaxAckMS {
		p.MaxAckMS = ms
	}
	t.mu.Unlock()
}

func (t *timeline) points() []Point {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Point(nil), t.pts...)
}
