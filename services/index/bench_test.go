package index

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
)

// benchBatches are the batch sizes measured: 500 updates, and 2000
// (DefaultBatchSize, what a consumer batching by time reaches at 10,000
// msgs/s within its FlushInterval), since the commit dominates a small
// batch.
var benchBatches = []int{500, 2000}

// BenchmarkApplySQLite applies whole journeys (raw, parsed, transformed,
// a decision for two destinations, two deliveries: 8 updates a message)
// in batches of benchBatches updates, and reports updates/s and msgs/s.
// The target is 10,000 msgs/s.
func BenchmarkApplySQLite(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openStore(b, DriverSQLite, filepath.Join(b.TempDir(), "index.db"))
			benchApply(b, s, batch)
		})
	}
}

// BenchmarkApplyPostgres is the same on PostgreSQL, when
// HL7BUS_TEST_POSTGRES_DSN is set (scripts/postgres.sh run go test
// -bench ...), into the daily partitions Maintain makes.
func BenchmarkApplyPostgres(b *testing.B) {
	for _, be := range backends() {
		if be.name != DriverPostgres {
			continue
		}
		for _, batch := range benchBatches {
			b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
				s, _ := be.open(b)
				if err := s.Maintain(context.Background(), t0, 0); err != nil {
					b.Fatal(err)
				}
				benchApply(b, s, batch)
			})
		}
		// PostgreSQL serializes Apply per message (advisory locks), not per
		// database as SQLite does, so a consumer can apply batches of
		// different messages from several goroutines at once.
		b.Run("batch=2000,writers=2", func(b *testing.B) {
			s, _ := be.open(b)
			if err := s.Maintain(context.Background(), t0, 0); err != nil {
				b.Fatal(err)
			}
			benchApplyParallel(b, s, 2000, 2)
		})
	}
}

// benchApplyParallel applies b.N batches of whole journeys from writers
// goroutines, each with messages of its own, all made before the clock
// starts.
func benchApplyParallel(b *testing.B, s *Store, batch, writers int) {
	p := Projector{Secret: secret}
	perMsg := 8
	n := batch - batch%perMsg
	batches := make([][][]Update, writers)
	for w := range batches {
		next := 0
		for i := 0; i < (b.N+writers-1)/writers; i++ {
			var us []Update
			for len(us) < n {
				at := t0.Add(time.Duration(next) * time.Millisecond)
				id := testULID(at, w*1_000_000_000+next)
				us = append(us, journey(p, id, id, at)...)
				us = append(us, delivery(p, id, "lis", canonical.OutcomeDelivered, "AA", 1, at.Add(time.Second))...)
				us = append(us, delivery(p, id, "ehr", canonical.OutcomeDelivered, "AA", 1, at.Add(time.Second))...)
				next++
			}
			batches[w] = append(batches[w], us)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range batches {
		wg.Add(1)
		go func(bs [][]Update) {
			defer wg.Done()
			for _, us := range bs {
				if err := s.Apply(context.Background(), us); err != nil {
					errs <- err
					return
				}
			}
		}(batches[w])
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	total := 0
	for _, bs := range batches {
		total += len(bs) * n
	}
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(total)/sec, "updates/s")
		b.ReportMetric(float64(total/perMsg)/sec, "msgs/s")
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
			// ULIDs, as ingress makes them: on PostgreSQL they land in
			// the day's partition, not the default.
			at := t0.Add(time.Duration(next) * time.Millisecond)
			id := testULID(at, next)
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
