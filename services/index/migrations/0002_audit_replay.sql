-- 0002_audit_replay: the audit trail, dead-letter discards and replays,
-- and the index's own state. Portable SQL like 0001 (SQLite and
-- PostgreSQL 15); times are BIGINT Unix microseconds. No column holds
-- PHI: audit selectors carry patient keys (HMACs), never identifiers, and
-- audit records never carry content (the admin API's contract).

-- One row per record of the audit topic. The admin API lists them newest
-- first, by actor or action and a time range, paging on (at, event_id).
CREATE TABLE IF NOT EXISTS audit_events (
    event_id TEXT    NOT NULL PRIMARY KEY,
    at       BIGINT  NOT NULL DEFAULT 0,
    service  TEXT    NOT NULL DEFAULT '',
    actor    TEXT    NOT NULL DEFAULT '',
    role     TEXT    NOT NULL DEFAULT '',
    auth     TEXT    NOT NULL DEFAULT '',
    action   TEXT    NOT NULL DEFAULT '',
    resource TEXT    NOT NULL DEFAULT '',
    selector TEXT    NOT NULL DEFAULT '',
    count    BIGINT  NOT NULL DEFAULT 0,
    outcome  TEXT    NOT NULL DEFAULT '',
    remote   TEXT    NOT NULL DEFAULT '',
    detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_events_actor ON audit_events (actor, at, event_id);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, at, event_id);
CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events (at, event_id);

-- A discarded dead letter stays on its topic but is no longer listed as
-- waiting. discarded_at = 0 means not discarded. The discard may be read
-- before the dead letter itself (topics are consumed in parallel), so it
-- may create the row, which the dead letter then fills.
ALTER TABLE dead_letters ADD COLUMN discarded_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN discarded_by TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN discard_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (failed_at, id);

-- Every replay job that re-sent a dead letter.
CREATE TABLE IF NOT EXISTS dead_letter_replays (
    dead_letter_id TEXT   NOT NULL,
    job_id         TEXT   NOT NULL,
    at             BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (dead_letter_id, job_id)
);

-- The index's own settings that must outlive a process: the consumer
-- group it reads the topics in (a rebuild starts a fresh one).
CREATE TABLE IF NOT EXISTS index_state (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL DEFAULT ''
);
