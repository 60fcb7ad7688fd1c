-- promgate's SQLite window, schema version 3 (PRAGMA user_version). Every statement is
-- idempotent, so applying it to an older database migrates its tables; version 3 changed the
-- layout of log.data, which store::writer::migrate_records rewrites.
-- series: one row per active series, labels encoded by store::codec::encode_labels.
CREATE TABLE IF NOT EXISTS series (
    id     INTEGER PRIMARY KEY,
    labels BLOB NOT NULL
);
-- log: one row per committed group of writes, samples encoded by store::codec::encode_entry.
-- Rows whose newest sample is older than the retention are deleted.
CREATE TABLE IF NOT EXISTS log (
    seq    INTEGER PRIMARY KEY,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    data   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_max_ts ON log (max_ts);
-- metadata: the type, help and unit senders declared per metric family.
CREATE TABLE IF NOT EXISTS metadata (
    metric TEXT PRIMARY KEY,
    type   TEXT NOT NULL,
    help   TEXT NOT NULL,
    unit   TEXT NOT NULL
) WITHOUT ROWID;
-- forward_cursor: per remote-write target, the last record (log.seq) its receiver
-- acknowledged. Records after the smallest cursor are kept past the retention.
CREATE TABLE IF NOT EXISTS forward_cursor (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
) WITHOUT ROWID;
-- meta: store bookkeeping (next_series_id, so ids are never reused).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- push_group: each Pushgateway-style group's current state (crate::push::persist), written in
-- the transaction that stores its samples. Added without a version bump: older binaries
-- ignore the table.
CREATE TABLE IF NOT EXISTS push_group (
    key  BLOB PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 3;
