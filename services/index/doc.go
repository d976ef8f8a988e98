// Package index is the message index of issue 11: a searchable record of
// every message the exchange handled, built from the topics and holding no
// PHI.
//
// Per message it keeps the IDs, interface, sending facility, message type,
// received time, trace ID, configuration version, the overall status and
// one status per destination, pointers (topic, partition, offset) to every
// record about it, and its dead letters. Patients appear only as keyed
// HMACs (PatientKey); content is read back from Kafka by pointer when an
// authorized user asks, never copied here.
//
// The pieces:
//
//   - Projector (project.go) turns decoded canonical records into Updates:
//     pure functions, so the index can be rebuilt by reading the topics
//     again.
//   - Store (store.go, search.go) applies batches of Updates in one
//     transaction and serves Search, Message and DeadLetters.
//   - The status precedence (status.go) makes Apply order-independent
//     within a replay cycle: a late record never moves a status backwards.
//   - One schema (migrations/, embedded) for both backends, applied by
//     Migrate; the few dialect differences live in dialect.go.
//
// Backends: SQLite through the pure-Go modernc.org/sqlite (the embedded
// default, a file in the data directory, WAL mode) and PostgreSQL through
// pgx's database/sql driver (production). The tests run every store case on
// both; the PostgreSQL cases skip unless HL7BUS_TEST_POSTGRES_DSN names a
// database the tests may create schemas in (the interop run sets it).
//
// Nothing here is wired into the exchange yet: the consumer (hl7bus index)
// and the admin API are later work; see DESIGN.md.
package index
