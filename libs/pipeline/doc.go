// Package pipeline is the stage runtime of hl7bus: what turns a handler
// into a stage that consumes a topic, handles each record and publishes
// the results, with failure handling around it. libs/kafka builds the
// clients it runs on; stages (services/parse, transform, route, and the
// ones to come) bring only their handler and their topics.
//
// # The handler
//
// A Handler is a plain function from one decoded input record to its
// outputs (Output: topic, optional key, record):
//
//	func(ctx context.Context, in *canonical.Parsed) ([]pipeline.Output, error)
//
// It returns Permanent (or PermanentClass) for an input it can never
// handle, and any other error for a cause that may pass. Typed turns it
// into the RecordHandler the drivers run: it decodes the input with
// Decode, takes the message's identity (Ident) from the decoded record,
// and encodes the outputs, under the input's key unless an output names
// its own. A RecordHandler works on Kafka records; stage code need not.
//
// # Failure classes
//
// There is one classifier, IsPermanent (ShouldRetry is its negation):
//
//   - transient (any unmarked error: registry or broker unavailable, a
//     record Timeout): retried, never dead-lettered, however long it
//     lasts. The partition is held; the stage reports stalled and not ready
//     after its StallAfter (hl7bus_stage_stalled 1, /readyz 503).
//   - permanent (Permanent, class "permanent"; PermanentClass for another
//     class such as "rejected_at_ingress"): the record is dead-lettered at
//     once and the partition moves on.
//   - panic (ClassPanic): the handler panicked; dead-lettered like a
//     permanent failure, its type and stack logged, its value never.
//
// A failure of part of an input's work (one destination's copy in route,
// one surveillance program's) is no failure of the input: the handler
// returns Output{DeadLetter: &Scoped{Destination, Program, Reason}} beside
// its other outputs, and DeadLetters writes the input's full dead letter
// (class permanent, Destination/Program set) to dlq.<stage> in the same
// transaction, so a replay re-runs only what failed. It counts in
// hl7bus_dlq_writes_total like any dead letter. Only Transact takes
// Outputs (AtLeastOnce's jobs end in an Outcome); should a scoped dead
// letter reach Transact unbuilt, it stops with an error rather than drop
// it.
//
// Error texts are logged, set as span status and copied into decisions, so
// they carry no message content. An error that knows the value its failure
// is about (mapping.RuleError: the code a table lacks) gives it as
// Detailed.DeadLetterDetail, and a scoped dead letter as Scoped.Detail:
// only the dead-letter record's reason carries it (DeadLetterReason), the
// one place content may be, since that record holds the whole message.
//
// # Middleware
//
// Each concern is a Middleware in a file of its own, composed by the
// driver with Chain, outermost first:
//
//	Trace          trace.go      process span per record, outputs continue its trace
//	Measure        metrics.go    hl7bus_stage_processing_seconds (all tries)
//	DeadLetters    deadletter.go permanent failure -> dead letter to dlq.<stage>; scoped dead letters built
//	limits         transact.go   outputs over the record limit -> permanent
//	Retry          retry.go      transient: RetryPolicy.Attempts tries in place
//	Recover        recover.go    panic -> permanent, class panic
//	Timeout        timeout.go    each try bounded; a timeout is transient
//	the handler
//
// Retry sits inside DeadLetters so a dead letter records its attempts, and
// outside Recover and Timeout so each try is guarded and bounded alone.
// When Retry's attempts are spent on a transient failure the driver
// aborts the batch and tries it again after Backoff, with the same policy.
//
// # Drivers
//
// Transact is the transactional driver (parse, transform, route and the
// stages to come): each fetch is one Kafka transaction holding its
// outputs, its dead letters and the consumed offsets, so each input yields
// its outputs exactly once. Run sets one up from a Stage: it creates the
// topics, registers the output and dead-letter schemas and opens the
// session.
//
// AtLeastOnce is the at-least-once driver (egress: commit after the
// outcome), for a stage whose effect is outside Kafka. It consumes a
// topic in a group; records of different keys run in parallel, up to
// Parallel at once, each key's records one at a time in offset order; a
// partition is committed only up to its lowest unfinished record. The
// stage supplies Process, one try of one record, which answers Done,
// RetryLater (only its key waits), Hold (its downstream is unreachable:
// everything waits behind one probe), Aborted or Fatal; Job.State keeps
// the stage's data across tries. Revoked partitions finish their records
// in process and commit; records waiting for a retry are left to the next
// owner. DESIGN.md states its goroutines and the scheduler's invariants.
//
// # For egress and other callers
//
// The pieces are exported so that every stage fails alike: RetryPolicy
// (defaults in one place: 200 ms doubling to 5 s, ±20 % jitter, 3 tries in
// place) and Backoff (egress paces its retries with it, from
// destinations[].retry); DeadLetter, DeadLetterOf and DeadLetterRecord
// build the dead letter (schemas/dlq.avsc: the record untouched plus
// stage, class, reason, source topic/partition/offset, attempts, times);
// NewMetrics gives the collectors every stage counts in, among them
// hl7bus_dlq_writes_total{stage} (Metrics.DeadLettered) and
// hl7bus_stage_records_total{stage,outcome}.
//
// # A new stage
//
// Write its handler over its input record, then run it:
//
//	pipeline.Run(ctx, kc, serde, log, pipeline.Stage{
//		Name: "deid", Instance: inst, Input: kc.Topic("transformed"),
//		Outputs: map[string]string{kc.Topic("deidentified"): schemas.Transformed},
//		Handle:  pipeline.Typed(serde, s.Handle),
//	})
//
// Nothing else in this package changes: retries, dead letters, panics,
// timeouts, spans, metrics and readiness come with it.
package pipeline
