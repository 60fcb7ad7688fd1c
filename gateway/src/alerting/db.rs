//! The alerting database: silences, the notification log and the outbox, in their own SQLite
//! file (`alerting.db` beside the window's database). A separate file because the window has
//! one writer thread that group-commits ingest; SQLite locks a whole file for writing, so
//! notification writes there would queue behind (and delay) ingest commits, and vice versa.
//! Here one connection behind a mutex does everything; each call is one short transaction,
//! made from a blocking thread. WAL with `synchronous=NORMAL`: a commit survives SIGKILL.

use std::collections::BTreeSet;
use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use super::silence::Silence;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS silences (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nflog (
    group_key   TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    integration TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    firing      TEXT NOT NULL,
    resolved    TEXT NOT NULL,
    ts_ms       INTEGER NOT NULL,
    PRIMARY KEY (group_key, receiver, integration, idx)
);
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver    TEXT NOT NULL,
    integration TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    group_key   TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_ms     INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("alerting database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("alerting database: {0}")]
    Json(#[from] serde_json::Error),
    #[error("alerting database: {0}")]
    Task(String),
}

/// Which integration a log entry or an outbox row belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntegrationKey {
    pub receiver: String,
    pub integration: String,
    pub index: usize,
}

/// A notification log entry (Alertmanager's `nflogpb.Entry`): which alerts (by hash) were
/// firing and resolved in the last notification of a group to an integration, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub ts_ms: i64,
}

/// A notification to deliver.
#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub key: IntegrationKey,
    pub group_key: String,
    pub body: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_ms: i64,
}

/// One notification decided by a flush: its log entry and its outbox row, written together.
pub struct Enqueue {
    pub key: IntegrationKey,
    pub group_key: String,
    pub entry: LogEntry,
    /// `None` when the log is updated but nothing is sent (resolved-only, `send_resolved:
    /// false`).
    pub body: Option<String>,
}

pub struct Db {
    conn: Mutex<Connection>,
    /// Checkpoints run on their own connection, off the write path: SQLite's automatic
    /// checkpoint would run inside a commit (and fsync) every 1000 pages, stalling whichever
    /// flush happens to cross the mark.
    checkpointer: Mutex<Connection>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.execute_batch(SCHEMA)?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            conn: Mutex::new(conn),
            checkpointer: Mutex::new(checkpointer),
        })
    }

    pub fn load_silences(&self) -> Result<Vec<Silence>, DbError> {
        let c = self.conn.lock();
        let mut st = c.prepare("SELECT body FROM silences")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }

    pub fn save_silences(&self, sils: &[Silence], delete: &[String]) -> Result<(), DbError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        for s in sils {
            tx.execute(
                "INSERT OR REPLACE INTO silences (id, body) VALUES (?1, ?2)",
                params![s.id, serde_json::to_string(s)?],
            )?;
        }
        for id in delete {
            tx.execute("DELETE FROM silences WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn log_entry(
        &self,
        group_key: &str,
        key: &IntegrationKey,
    ) -> Result<Option<LogEntry>, DbError> {
        let c = self.conn.lock();
        let row = c
            .query_row(
                "SELECT firing, resolved, ts_ms FROM nflog
                 WHERE group_key = ?1 AND receiver = ?2 AND integration = ?3 AND idx = ?4",
                params![group_key, key.receiver, key.integration, key.index as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((f, r, ts_ms)) => Ok(Some(LogEntry {
                firing: serde_json::from_str(&f)?,
                resolved: serde_json::from_str(&r)?,
                ts_ms,
            })),
        }
    }

    /// The whole notification log, for the dispatcher's cache.
    pub fn load_log(
        &self,
    ) -> Result<std::collections::HashMap<(String, IntegrationKey), LogEntry>, DbError> {
        let c = self.conn.lock();
        let mut st = c.prepare(
            "SELECT group_key, receiver, integration, idx, firing, resolved, ts_ms FROM nflog",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                IntegrationKey {
                    receiver: r.get(1)?,
                    integration: r.get(2)?,
                    index: r.get::<_, i64>(3)? as usize,
                },
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (gk, key, f, r, ts_ms) = row?;
            out.insert(
                (gk, key),
                LogEntry {
                    firing: serde_json::from_str(&f)?,
                    resolved: serde_json::from_str(&r)?,
                    ts_ms,
                },
            );
        }
        Ok(out)
    }

    /// Writes log entries and outbox rows in one transaction; returns the rows written. A
    /// new row for a group supersedes the group's older rows that are not being delivered
    /// (`in_flight` says which are), which are deleted and returned as superseded ids.
    pub fn enqueue(&self, batch: &[Enqueue], now_ms: i64) -> Result<Vec<OutboxRow>, DbError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        let mut rows = Vec::new();
        for e in batch {
            tx.execute(
                "INSERT OR REPLACE INTO nflog (group_key, receiver, integration, idx, firing, resolved, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.group_key,
                    e.key.receiver,
                    e.key.integration,
                    e.key.index as i64,
                    serde_json::to_string(&e.entry.firing)?,
                    serde_json::to_string(&e.entry.resolved)?,
                    e.entry.ts_ms
                ],
            )?;
            if let Some(body) = &e.body {
                tx.execute(
                    "INSERT INTO outbox (receiver, integration, idx, group_key, body, created_ms, attempts, next_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?6)",
                    params![
                        e.key.receiver,
                        e.key.integration,
                        e.key.index as i64,
                        e.group_key,
                        body,
                        now_ms
                    ],
                )?;
                rows.push(OutboxRow {
                    id: tx.last_insert_rowid(),
                    key: e.key.clone(),
                    group_key: e.group_key.clone(),
                    body: body.clone(),
                    created_ms: now_ms,
                    attempts: 0,
                    next_ms: now_ms,
                });
            }
        }
        tx.commit()?;
        Ok(rows)
    }

    /// Every undelivered notification, oldest first.
    pub fn pending(&self) -> Result<Vec<OutboxRow>, DbError> {
        let c = self.conn.lock();
        let mut st = c.prepare(
            "SELECT id, receiver, integration, idx, group_key, body, created_ms, attempts, next_ms
             FROM outbox ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                key: IntegrationKey {
                    receiver: r.get(1)?,
                    integration: r.get(2)?,
                    index: r.get::<_, i64>(3)? as usize,
                },
                group_key: r.get(4)?,
                body: r.get(5)?,
                created_ms: r.get(6)?,
                attempts: r.get::<_, i64>(7)? as u32,
                next_ms: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete(&self, ids: &[i64]) -> Result<(), DbError> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        for id in ids {
            tx.execute("DELETE FROM outbox WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn reschedule(&self, id: i64, attempts: u32, next_ms: i64) -> Result<(), DbError> {
        self.conn.lock().execute(
            "UPDATE outbox SET attempts = ?2, next_ms = ?3 WHERE id = ?1",
            params![id, attempts as i64, next_ms],
        )?;
        Ok(())
    }

    /// Copies the WAL back into the database without blocking writers (`PASSIVE`).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.checkpointer
            .lock()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Drops log entries older than `cutoff_ms` (Alertmanager keeps its log for the data
    /// retention, 120h by default).
    pub fn gc_log(&self, cutoff_ms: i64) -> Result<usize, DbError> {
        Ok(self
            .conn
            .lock()
            .execute("DELETE FROM nflog WHERE ts_ms < ?1", params![cutoff_ms])?)
    }
}
