package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hl7bus/hl7bus/libs/canonical"
	"github.com/hl7bus/hl7bus/libs/kafka"
	"github.com/hl7bus/hl7bus/libs/logattr"
	"github.com/hl7bus/hl7bus/libs/telemetry"
	"github.com/hl7bus/hl7bus/schemas"
)

// Stage describes a consume -> handle -> produce stage.
type Stage struct {
	// Name is the stage name: parse, transform, route.
	Name string
	// Instance distinguishes instances of the stage; with Name it forms
	// the transactional ID, which must be unique among live instances and
	// stable across restarts of the same instance (so a restarted instance
	// fences its predecessor's open transaction).
	Instance string
	// Input is the topic consumed.
	Input string
	// Outputs maps each topic written to the schema of its records.
	Outputs map[string]string
	// Handle handles one input record: Typed(serde, handler) for a
	// Handler of the stage's input record.
	Handle RecordHandler
	// Retry is the retry policy; zero fields take the defaults (see
	// RetryPolicy).
	Retry RetryPolicy
	// Timeout bounds each try of a record (DefaultRecordTimeout when
	// zero).
	Timeout time.Duration
	// Telemetry receives metrics, spans and readiness (optional).
	Telemetry *telemetry.Telemetry
	// StallAfter is how long the stage may hold fetched records without
	// committing before it reports itself not ready
	// (DefaultStallAfter when zero).
	StallAfter time.Duration
}

// Run runs stage with the transactional driver until ctx ends: it creates
// the stage's topics (input, outputs, dlq.<stage>), registers the schemas
// of what it writes, opens the transaction session and runs Transact, then
// closes the session.
func Run(ctx context.Context, kc kafka.Config, serde *canonical.Serde, log *slog.Logger, st Stage) error {
	log = log.With(logattr.Stage(st.Name))
	kc = kc.WithDefaults()
	if kc.Instance == "" {
		// The instance that names the transactional ID also names the
		// static group member, so both fence the same predecessor.
		kc.Instance = st.Instance
	}
	tel := st.Telemetry
	if tel == nil {
		tel = telemetry.Nop()
	}
	tel.Health.Register(st.Name)
	defer tel.Health.Set(st.Name, false)
	dlq := kc.DLQTopic(st.Name)
	admin, err := kafka.NewAdmin(kc, log)
	if err != nil {
		return fmt.Errorf("%s: admin client: %w", st.Name, err)
	}
	topics := []string{st.Input, dlq}
	for t := range st.Outputs {
		topics = append(topics, t)
	}
	err = kafka.EnsureTopics(ctx, admin, kc, topics...)
	admin.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", st.Name, err)
	}
	if _, err := serde.Register(ctx, dlq, schemas.DeadLetter); err != nil {
		return fmt.Errorf("%s: %w", st.Name, err)
	}
	for t, s := range st.Outputs {
		if _, err := serde.Register(ctx, t, s); err != nil {
			return fmt.Errorf("%s: %w", st.Name, err)
		}
	}
	group := kc.TopicPrefix + st.Name
	inst := kafka.Instrument(tel, st.Name)
	sess, err := kafka.NewTransactSession(kc, log, group, group+"-"+st.Instance, []string{st.Input}, inst.Opts()...)
	if err != nil {
		return fmt.Errorf("%s: transaction session: %w", st.Name, err)
	}
	defer sess.Close()
	log.Info("stage running", logattr.Input(st.Input), logattr.Group(group))
	tel.Health.Set(st.Name, true)
	loop := &Transact{Stage: st.Name, Session: sess, DLQTopic: dlq, Serde: serde, Handle: st.Handle, Log: log,
		MaxRecordBytes: kc.MaxRecordBytes, Retry: st.Retry, Timeout: st.Timeout, StallAfter: st.StallAfter,
		Telemetry: tel, Tracer: inst.Tracer}
	err = loop.Run(ctx)
	log.Info("stage stopped")
	return err
}
