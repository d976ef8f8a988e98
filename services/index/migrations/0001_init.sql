-- 0001_init: the message index. Portable SQL: it runs unchanged on SQLite
-- (modernc.org/sqlite) and PostgreSQL 15. Times are BIGINT microseconds
-- since the Unix epoch, UTC, so both backends sort and compare them the
-- same way. No column holds PHI: patients appear only as keyed HMACs
-- (patient.go).
--
-- The one PostgreSQL difference: a table ending in `) /*partitioned*/;` is
-- range-partitioned by message_id there (daily partitions, bounds = the
-- ULID of midnight UTC, plus a DEFAULT partition; dialect.go expands the
-- marker, partition.go creates and drops the partitions). On SQLite the
-- marker is a comment. Every key of these tables starts with message_id, so
-- it includes the partition key, as PostgreSQL requires, and the upserts
-- stay the same on both.

CREATE TABLE IF NOT EXISTS messages (
    message_id        TEXT    NOT NULL PRIMARY KEY,
    parent_message_id TEXT    NOT NULL DEFAULT '',
    control_id        TEXT    NOT NULL DEFAULT '',
    interface         TEXT    NOT NULL DEFAULT '',
    sending_facility  TEXT    NOT NULL DEFAULT '',
    message_type      TEXT    NOT NULL DEFAULT '',
    received_at       BIGINT  NOT NULL DEFAULT 0,
    status            TEXT    NOT NULL DEFAULT '',
    stage_status      TEXT    NOT NULL DEFAULT '',
    cycle_at          BIGINT  NOT NULL DEFAULT 0,
    patient_key       TEXT    NOT NULL DEFAULT '',
    trace_id          TEXT    NOT NULL DEFAULT '',
    config_version    TEXT    NOT NULL DEFAULT '',
    updated_at        BIGINT  NOT NULL DEFAULT 0
) /*partitioned*/;

-- Searches order by (received_at DESC, message_id DESC) and page by that
-- key, so every filter index ends with it.
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_control ON messages (control_id, received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_interface ON messages (interface, received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_facility ON messages (sending_facility, received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_type ON messages (message_type, received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, received_at, message_id);
CREATE INDEX IF NOT EXISTS messages_parent ON messages (parent_message_id);

-- Search by patient goes through this table (messages.patient_key is the
-- first identifier's key, for display, and has no index of its own).
-- Every patient identifier of a message, keyed twice: with its assigning
-- authority and without, so a search by a bare patient ID finds it too.
CREATE TABLE IF NOT EXISTS message_patients (
    message_id  TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    PRIMARY KEY (message_id, patient_key)
) /*partitioned*/;
CREATE INDEX IF NOT EXISTS message_patients_key ON message_patients (patient_key, message_id);

CREATE TABLE IF NOT EXISTS destinations (
    message_id   TEXT   NOT NULL,
    destination  TEXT   NOT NULL,
    status       TEXT   NOT NULL DEFAULT '',
    cycle_at     BIGINT NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT   NOT NULL DEFAULT '',
    updated_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, destination)
) /*partitioned*/;
CREATE INDEX IF NOT EXISTS destinations_status ON destinations (destination, status);

-- One row per Kafka record that concerns a message: where to read the
-- content back from when an authorized user asks.
CREATE TABLE IF NOT EXISTS record_pointers (
    message_id       TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    record_partition INTEGER NOT NULL,
    record_offset    BIGINT  NOT NULL,
    at               BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, topic, record_partition, record_offset)
) /*partitioned*/;

-- Not partitioned: a dead letter's ID is its dlq record's place, not a
-- ULID, and there are few; retention deletes them by failed_at in batches.
CREATE TABLE IF NOT EXISTS dead_letters (
    id               TEXT   NOT NULL PRIMARY KEY,
    message_id       TEXT   NOT NULL DEFAULT '',
    control_id       TEXT   NOT NULL DEFAULT '',
    stage            TEXT   NOT NULL,
    destination      TEXT   NOT NULL DEFAULT '',
    error_class      TEXT   NOT NULL DEFAULT '',
    reason           TEXT   NOT NULL DEFAULT '',
    failed_at        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_stage ON dead_letters (stage, id);
CREATE INDEX IF NOT EXISTS dead_letters_message ON dead_letters (message_id);
