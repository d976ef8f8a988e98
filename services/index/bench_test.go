package index

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// BenchmarkApplySQLite applies whole journeys (raw, parsed, transformed,
// a decision for two destinations, two deliveries: 8 updates a message)
// in batches of 500 (and 4000) updates, and reports updates/s
// and msgs/s. The target is 10,000 msgs/s.
func BenchmarkApplySQLite(b *testing.B) {
	// 500 is the batch the brief names; 4000 shows what a consumer that
	// batches by time (a few ms at 10,000 msgs/s) gains, since the commit's
	// WAL writes dominate a small batch.
	for _, batch := range []int{500, 4000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openStore(b, DriverSQLite, filepath.Join(b.TempDir(), "index.db"))
			benchApply(b, s, batch)
		})
	}
}

// BenchmarkApplyPostgres is the same on PostgreSQL, when
// HL7BUS_TEST_POSTGRES_DSN is set.
func BenchmarkApplyPostgres(b *testing.B) {
	for _, be := range backends() {
		if be.name == DriverPostgres {
			s, _ := be.open(b)
			benchApply(b, s, 500)
		}
	}
}

func benchApply(b *testing.B, s *Store, batch int) {
	p := Projector{Secret: secret}
	ctx := context.Background()
	var pending []Update
	msgs, updates := 0, 0
	next := 0
	fill := func() {
		for len(pending) < batch {
			id := fmt.Sprintf("bench-%09d", next)
			at := t0.Add(time.Duration(next) * time.Millisecond)
			pending = append(pending, journey(p, id, id, at)...)
			pending = append(pending, delivery(p, id, "lis", canonical.OutcomeDelivered, "AA", 1, at.Add(time.Second))...)
			pending = append(pending, delivery(p, id, "ehr", canonical.OutcomeDelivered, "AA", 1, at.Add(time.Second))...)
			next++
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fill()
		// Cut at a message boundary so msgs/s counts whole journeys.
		n := batch - batch%8
		chunk := pending[:n]
		b.StartTimer()
		if err := s.Apply(ctx, chunk); err != nil {
			b.Fatal(err)
		}
		pending = append(pending[:0], pending[n:]...)
		updates += n
		msgs += n / 8
	}
	sec := b.Elapsed().Seconds()
	if sec > 0 {
		b.ReportMetric(float64(updates)/sec, "updates/s")
		b.ReportMetric(float64(msgs)/sec, "msgs/s")
	}
}
