//! The writer thread: owns the SQLite write connection, applies batches to the head and
//! commits them in groups. See the `store` module doc for the design.
//!
//! A group's samples are applied to the head before its transaction commits (the head is the
//! only place out-of-order and duplicate checks can be made) and undone if the commit fails,
//! so after a failure the head again equals the database. Queries may, for the length of one
//! commit, see samples whose write is not yet acknowledged; they never see one that is lost.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rules_engine::Sample;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{self, encode_entry};
use super::head::{Head, MemSeries, SeriesId, SeriesKey};
use super::recent::{KeptBody, Recent, RecentRecord};
use super::{
    ForwardTarget, MetricMetadata, RetentionStats, Shared, StoreError, StoreMetrics, Target,
    WriteBatch, WriteOutcome,
};
use crate::validate::{LimitsConfig, Reason};

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 3;
/// The schema version that introduced the current record layout ([`codec`]).
const RECORD_FORMAT_SINCE: i64 = 3;
/// Most write requests committed in one transaction.
const MAX_GROUP: usize = 64;
const SIZE_REFRESH: Duration = Duration::from_secs(5);

pub enum Msg {
    Write(
        WriteBatch,
        oneshot::Sender<Result<WriteOutcome, StoreError>>,
    ),
    Retention(i64, oneshot::Sender<Result<RetentionStats, StoreError>>),
    SetCursor(String, i64, oneshot::Sender<Result<(), StoreError>>),
}

/// How to undo one change to the head.
enum Undo {
    /// Samples pushed at the end of `touched[i]`: this many.
    Pushed(usize, usize),
    /// A sample inserted at this timestamp into `touched[i]` (out-of-order window).
    Inserted(usize, i64),
    /// A series created.
    Created(SeriesId),
}

/// A series found or created, or the limit that refused it (reason, series, detail).
type Resolved = Result<Arc<MemSeries>, (Reason, (String, String))>;

pub struct Writer {
    conn: Connection,
    db_path: PathBuf,
    head: Arc<Head>,
    metadata: Arc<RwLock<HashMap<String, MetricMetadata>>>,
    committed: watch::Sender<i64>,
    cursors: Arc<Mutex<HashMap<String, i64>>>,
    highest_ts: Arc<std::sync::atomic::AtomicI64>,
    /// Backlog budget per forward target (bytes; 0 for none).
    budgets: HashMap<String, u64>,
    /// Whether a target is sent request bodies as received: records made entirely of such
    /// bodies then keep them in [`Recent`].
    keep_bodies: bool,
    recent: Arc<Mutex<Recent>>,
    spill: Arc<Mutex<super::spill::Spill>>,
    /// The newest record's `log.seq`. Assigned here rather than left to SQLite's rowid, which
    /// restarts from the largest remaining one once retention emptied the table (and would
    /// then fall behind the forward cursors).
    last_seq: i64,
    limits: Arc<LimitsConfig>,
    metrics: StoreMetrics,
    next_id: SeriesId,
    last_size_check: Instant,
}

impl Writer {
    /// Opens the database, applies the schema and rebuilds the head, dropping samples older
    /// than `cutoff_ms`.
    pub fn open(
        db_path: &Path,
        fsync: bool,
        shared: Shared,
        limits: Arc<LimitsConfig>,
        metrics: StoreMetrics,
        cutoff_ms: i64,
        targets: &[ForwardTarget],
    ) -> Result<Self, StoreError> {
        let conn = Connection::open(db_path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })?;
        // Fewer, larger checkpoints: the WAL absorbs bursts and is folded in the background
        // of the writer's idle time rather than every 4 MB.
        conn.pragma_update(None, "wal_autocheckpoint", 16384)?;
        conn.pragma_update(None, "cache_size", -65536)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion(version));
        }
        // One transaction, so a migration interrupted half-way leaves the old version whole.
        conn.execute_batch("BEGIN")?;
        conn.execute_batch(SCHEMA)?;
        if (1..RECORD_FORMAT_SINCE).contains(&version) {
            migrate_records(&conn)?;
        }
        conn.execute_batch("COMMIT")?;
        let mut w = Self {
            conn,
            db_path: db_path.to_path_buf(),
            head: shared.head,
            metadata: shared.metadata,
            committed: shared.committed,
            cursors: shared.cursors,
            highest_ts: shared.highest_ts,
            budgets: targets
                .iter()
                .map(|t| (t.name.clone(), t.max_backlog_bytes))
                .collect(),
            keep_bodies: targets.iter().any(|t| t.as_received),
            recent: shared.recent,
            spill: shared.spill,
            last_seq: 0,
            limits,
            metrics,
            next_id: 1,
            last_size_check: Instant::now(),
        };
        w.load_cursors(targets)?;
        w.load(cutoff_ms)?;
        w.refresh_size();
        Ok(w)
    }

    /// Loads the cursors of the configured targets. A target seen for the first time starts
    /// at the newest record: it gets what is written from now on, not the whole window.
    /// Cursors of targets no longer configured are deleted, so they hold nothing back.
    fn load_cursors(&mut self, targets: &[ForwardTarget]) -> Result<(), StoreError> {
        let newest: i64 = self.conn.query_row(
            "SELECT max((SELECT COALESCE(MAX(seq), 0) FROM log), \
                        (SELECT COALESCE(MAX(seq), 0) FROM forward_cursor), \
                        (SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'last_log_seq'))",
            [],
            |r| r.get(0),
        )?;
        self.last_seq = newest;
        self.committed.send_replace(newest);
        let tx = self.conn.transaction()?;
        let mut cursors = HashMap::new();
        {
            let mut get = tx.prepare("SELECT seq FROM forward_cursor WHERE name = ?1")?;
            let mut put = tx.prepare("INSERT INTO forward_cursor (name, seq) VALUES (?1, ?2)")?;
            for t in targets {
                let seq: Option<i64> = get.query_row([&t.name], |r| r.get(0)).optional()?;
                let seq = match seq {
                    Some(s) => s,
                    None => {
                        put.execute(params![t.name, newest])?;
                        newest
                    }
                };
                cursors.insert(t.name.clone(), seq);
            }
            let names: Vec<String> = {
                let mut all = tx.prepare("SELECT name FROM forward_cursor")?;
                all.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            for n in names.iter().filter(|n| !cursors.contains_key(*n)) {
                tx.execute("DELETE FROM forward_cursor WHERE name = ?1", [n])?;
                tracing::info!(target_name = %n, "Dropped the cursor of a remote-write target no longer configured.");
            }
        }
        tx.commit()?;
        *self.cursors.lock() = cursors;
        Ok(())
    }

    /// The smallest forward cursor: records after it are still needed.
    fn min_cursor(&self) -> i64 {
        self.cursors
            .lock()
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Moves a cursor forward (never back: the forwarder and the backlog budget both move
    /// it, and the budget's skip must not be undone by a forwarder finishing an older chunk).
    fn set_cursor(&mut self, name: &str, seq: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO forward_cursor (name, seq) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute(params![name, seq])?;
        {
            let mut cursors = self.cursors.lock();
            let c = cursors.entry(name.to_string()).or_insert(seq);
            *c = (*c).max(seq);
        }
        let min = self.min_cursor();
        self.recent.lock().release_through(min);
        let mut spill = self.spill.lock();
        spill.release_through(min);
        self.metrics.spilled_body_bytes.set(spill.bytes() as i64);
        Ok(())
    }

    fn load(&mut self, cutoff_ms: i64) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut max_id = 0;
        {
            let mut stmt = self.conn.prepare("SELECT id, labels FROM series")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let labels = codec::decode_labels(
                    row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?,
                )?;
                let key = SeriesKey::of(&labels);
                self.head.insert(
                    Arc::new(MemSeries::new(id as SeriesId, labels, key.hash)),
                    key,
                );
                max_id = max_id.max(id as SeriesId);
            }
        }
        let stored_next: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'next_series_id'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        self.next_id = (max_id + 1).max(stored_next.unwrap_or(1) as SeriesId);

        let (mut samples, mut orphans) = (0u64, 0u64);
        {
            let mut stmt = self
                .conn
                .prepare("SELECT seq, data FROM log WHERE max_ts >= ?1 OR seq > ?2 ORDER BY seq")?;
            let mut rows = stmt.query([cutoff_ms, self.min_cursor()])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                codec::decode_record(
                    row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?,
                    |id, batch| {
                        let keep = batch.iter().filter(|s| s.t.0 >= cutoff_ms);
                        match self.head.get(id) {
                            Some(series) => {
                                series.set_last_seq(seq);
                                let mut data = series.samples.lock();
                                for s in keep {
                                    samples += 1;
                                    data.upsert(*s);
                                }
                            }
                            None => orphans += keep.count() as u64,
                        }
                    },
                )?;
            }
        }
        if orphans > 0 {
            tracing::warn!(
                orphans,
                "Records referenced series missing from the database; their samples were skipped."
            );
        }
        {
            let mut stmt = self
                .conn
                .prepare("SELECT metric, type, help, unit FROM metadata")?;
            let mut rows = stmt.query([])?;
            let mut md = self.metadata.write();
            while let Some(row) = rows.next()? {
                let kind: String = row.get(1)?;
                md.insert(
                    row.get(0)?,
                    MetricMetadata {
                        kind: metadata_kind(&kind),
                        help: row.get(2)?,
                        unit: row.get(3)?,
                    },
                );
            }
        }
        // Series whose samples all fell out of the retention while promgate was down.
        self.retain(cutoff_ms)?;
        let all = self.head.all();
        let in_memory: usize = all.iter().map(|s| s.samples.lock().len()).sum();
        let newest = all
            .iter()
            .filter_map(|s| s.time_bounds())
            .map(|b| b.1)
            .max();
        self.highest_ts
            .store(newest.unwrap_or(0), std::sync::atomic::Ordering::Release);
        self.metrics.samples_in_memory.set(in_memory as i64);
        tracing::info!(
            series = self.head.len(),
            samples,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Loaded the window from the database."
        );
        Ok(())
    }

    /// Runs until every sender is gone, then lets SQLite checkpoint and close.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut pending: Option<Msg> = None;
        loop {
            let first = match pending.take() {
                Some(m) => m,
                None => match rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                },
            };
            match first {
                Msg::Retention(cutoff, reply) => {
                    let _ = reply.send(self.retain(cutoff));
                }
                Msg::SetCursor(name, seq, reply) => {
                    let _ = reply.send(self.set_cursor(&name, seq));
                }
                Msg::Write(batch, reply) => {
                    let mut group = vec![(batch, reply)];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(Msg::Write(b, r)) => group.push((b, r)),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
            }
            if self.last_size_check.elapsed() >= SIZE_REFRESH {
                self.refresh_size();
            }
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "Final WAL checkpoint failed; the WAL will be replayed at start.");
        }
        tracing::info!("Store writer stopped.");
    }

    fn refresh_size(&mut self) {
        let mut wal = self.db_path.clone().into_os_string();
        wal.push("-wal");
        let bytes: u64 = [self.db_path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        self.metrics.database_bytes.set(bytes as i64);
        self.last_size_check = Instant::now();
    }

    fn commit_group(
        &mut self,
        group: Vec<(
            WriteBatch,
            oneshot::Sender<Result<WriteOutcome, StoreError>>,
        )>,
    ) {
        let started = Instant::now();
        let next_id_before = self.next_id;
        let mut undo = Vec::new();
        let mut touched = Vec::new();
        let mut outcomes = Vec::with_capacity(group.len());
        // Sized for the usual few bytes a sample, so the record rarely grows by copying.
        let samples: usize = group.iter().map(|(b, _)| b.samples.len()).sum();
        let mut record = Vec::with_capacity(samples * 4 + 64);
        let mut ts_range = (i64::MAX, i64::MIN);
        let mut prev_first = 0;
        // The record's request bodies, while every entry so far came from one.
        let mut bodies = self.keep_bodies.then(|| Vec::with_capacity(group.len()));
        // Replies are held until the group is committed or undone, so no caller observes the
        // head between a failure and its undo.
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let mut seq = None;

        let result = (|| -> Result<(), StoreError> {
            self.conn.execute_batch("BEGIN")?;
            for mut batch in batches {
                let body = batch.body.take();
                let first = touched.len();
                // A batch stored whole writes one record entry per non-empty entry.
                let (entries, samples) = batch
                    .entries
                    .iter()
                    .filter(|e| !e.samples.is_empty())
                    .fold((0, 0u64), |(n, s), e| (n + 1, s + e.samples.len() as u64));
                let out = self.apply(
                    batch,
                    &mut undo,
                    &mut touched,
                    &mut record,
                    &mut ts_range,
                    &mut prev_first,
                )?;
                if entries > 0
                    && let Some(kept) = &mut bodies
                {
                    match body {
                        Some(body)
                            if u64::from(body.samples) == samples
                                && out.accepted == samples
                                && out.unchanged == 0
                                && out.rejected.is_empty() =>
                        {
                            let ids = touched[first..].iter().map(|s| s.id).collect();
                            kept.push(KeptBody { body, ids });
                        }
                        _ => bodies = None,
                    }
                }
                outcomes.push(out);
            }
            if !record.is_empty() {
                let s = self.last_seq + 1;
                self.conn
                    .prepare_cached(
                        "INSERT INTO log (seq, min_ts, max_ts, data) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![s, ts_range.0, ts_range.1, record])?;
                seq = Some(s);
                if bodies.as_ref().is_some_and(Vec::is_empty) {
                    bodies = None;
                }
            }
            if self.next_id != next_id_before {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_series_id', ?1)",
                    )?
                    .execute([self.next_id as i64])?;
            }
            self.conn.execute_batch("COMMIT")?;
            Ok(())
        })();

        match result {
            Ok(()) => {
                if let Some(seq) = seq {
                    self.last_seq = seq;
                    // Before `committed` moves, so a forwarder woken by it finds the record.
                    let evicted = self.recent.lock().push(RecentRecord {
                        seq,
                        data: record.into(),
                        bodies: bodies.map(Into::into),
                    });
                    if !evicted.is_empty() {
                        let mut spill = self.spill.lock();
                        spill.append(&evicted);
                        self.metrics.spilled_body_bytes.set(spill.bytes() as i64);
                    }
                    self.highest_ts
                        .fetch_max(ts_range.1, std::sync::atomic::Ordering::AcqRel);
                    self.committed.send_replace(seq);
                }
                self.metrics.commits.inc();
                self.metrics
                    .requests_per_commit
                    .observe(replies.len() as f64);
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                let (mut accepted, mut created) = (0, 0);
                for (reply, out) in replies.into_iter().zip(outcomes) {
                    accepted += out.accepted;
                    created += out.series_created;
                    let _ = reply.send(Ok(out));
                }
                self.metrics.series_created.inc_by(created);
                self.metrics.samples_in_memory.inc_by(accepted as i64);
                self.metrics.active_series.set(self.head.len() as i64);
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                tracing::error!(error = %e, "Commit failed; the group's writes were undone.");
                if let Err(rb) = self.conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %rb, "Rollback failed.");
                }
                self.undo(undo, &touched);
                self.next_id = next_id_before;
                self.metadata_rollback();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::CommitFailed(e.to_string())));
                }
            }
        }
    }

    /// Applies one batch to the head and stages its rows; records how to undo it.
    fn apply(
        &mut self,
        batch: WriteBatch,
        undo: &mut Vec<Undo>,
        touched: &mut Vec<Arc<MemSeries>>,
        record: &mut Vec<u8>,
        ts_range: &mut (i64, i64),
        prev_first: &mut i64,
    ) -> Result<WriteOutcome, StoreError> {
        let mut out = WriteOutcome::default();
        let ooo_window = i64::try_from(self.limits.out_of_order_window.as_millis()).unwrap_or(0);
        let mut accepted: Vec<Sample> = Vec::new();
        for entry in batch.entries {
            let samples = &batch.samples[entry.samples.start as usize..entry.samples.end as usize];
            if samples.is_empty() {
                continue;
            }
            let resolved = match entry.target {
                Target::Known(s) if !s.is_retired() => Ok(s),
                // Retention retired it after the caller resolved it: create it again.
                Target::Known(s) => {
                    let key = SeriesKey::of(&s.labels);
                    self.resolve_new(s.labels.clone(), key, undo, &mut out)?
                }
                Target::New(labels, key) => self.resolve_new(labels, key, undo, &mut out)?,
            };
            let series = match resolved {
                Ok(s) => s,
                Err((reason, desc)) => {
                    out.rejected.add(reason, samples.len() as u64, || desc);
                    continue;
                }
            };
            // The record this group will be (marked here, while the series is at hand; if
            // the commit fails, the next record takes the same number).
            series.set_last_seq(self.last_seq + 1);
            let slot = touched.len();
            touched.push(series);
            let series = &touched[slot];
            accepted.clear();
            {
                let mut data = series.samples.lock();
                // The usual case, every sample newer than the stored ones and ascending: one
                // append, one undo entry, and the record entry written from the batch itself.
                if data.last().is_none_or(|l| l.t < samples[0].t)
                    && samples.windows(2).all(|w| w[0].t < w[1].t)
                {
                    data.extend_ascending(samples);
                    drop(data);
                    pushed(undo, slot, samples.len());
                    ts_range.0 = ts_range.0.min(samples[0].t.0);
                    ts_range.1 = ts_range.1.max(samples[samples.len() - 1].t.0);
                    encode_entry(record, prev_first, series.id, samples);
                    out.accepted += samples.len() as u64;
                    continue;
                }
                for s in samples {
                    let Some(last) = data.last() else {
                        data.push(*s);
                        pushed(undo, slot, 1);
                        accepted.push(*s);
                        continue;
                    };
                    if s.t > last.t {
                        data.push(*s);
                        pushed(undo, slot, 1);
                        accepted.push(*s);
                        continue;
                    }
                    // At or before the newest sample (the newest itself needs no decoding).
                    let stored = if s.t == last.t {
                        Some(last)
                    } else {
                        data.get(s.t.0)
                    };
                    let reason = match stored {
                        // Same timestamp, same value: an idempotent retry, not an error.
                        Some(x) if x.v.to_bits() == s.v.to_bits() => {
                            out.unchanged += 1;
                            continue;
                        }
                        Some(_) => Reason::duplicate_sample,
                        None if ooo_window > 0 && s.t.0 >= last.t.0 - ooo_window => {
                            data.insert(*s);
                            undo.push(Undo::Inserted(slot, s.t.0));
                            accepted.push(*s);
                            continue;
                        }
                        None => Reason::out_of_order,
                    };
                    out.rejected.add(reason, 1, || {
                        let detail = if reason == Reason::duplicate_sample {
                            format!("sample at {} has another value than the stored one", s.t)
                        } else {
                            format!(
                                "sample at {} is older than the newest sample at {}",
                                s.t, last.t
                            )
                        };
                        (series.labels.to_string(), detail)
                    });
                }
            }
            if !accepted.is_empty() {
                // `accepted` is ascending except for out-of-order inserts; the record keeps
                // arrival order, and replay sorts.
                for s in &accepted {
                    ts_range.0 = ts_range.0.min(s.t.0);
                    ts_range.1 = ts_range.1.max(s.t.0);
                }
                encode_entry(record, prev_first, series.id, &accepted);
                out.accepted += accepted.len() as u64;
            }
        }
        for (metric, md) in batch.metadata {
            let changed = self.metadata.read().get(&metric) != Some(&md);
            if changed {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO metadata (metric, type, help, unit) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![metric, md.kind, md.help, md.unit])?;
                self.metadata.write().insert(metric, md);
            }
        }
        for (key, data) in batch.push_groups {
            match data {
                Some(d) => self
                    .conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO push_group (key, data) VALUES (?1, ?2)",
                    )?
                    .execute(params![key, d])?,
                None => self
                    .conn
                    .prepare_cached("DELETE FROM push_group WHERE key = ?1")?
                    .execute(params![key])?,
            };
        }
        Ok(out)
    }

    /// Finds or creates the series for `labels`, enforcing the series limits.
    fn resolve_new(
        &mut self,
        labels: rules_engine::Labels,
        key: SeriesKey,
        undo: &mut Vec<Undo>,
        out: &mut WriteOutcome,
    ) -> Result<Resolved, StoreError> {
        let (total, per_metric, per_job) = match self.head.lookup_or_counts(&key, &labels) {
            Ok(s) => return Ok(Ok(s)),
            Err(counts) => counts,
        };
        let l = &self.limits;
        let over = if l.max_series > 0 && total >= l.max_series {
            Some((
                Reason::series_limit,
                format!("limits.max_series ({}) reached", l.max_series),
            ))
        } else if l.max_series_per_metric > 0 && per_metric >= l.max_series_per_metric {
            Some((
                Reason::series_limit_per_metric,
                format!(
                    "limits.max_series_per_metric ({}) reached",
                    l.max_series_per_metric
                ),
            ))
        } else if l.max_series_per_job > 0
            && labels.get("job").is_some()
            && per_job >= l.max_series_per_job
        {
            Some((
                Reason::series_limit_per_job,
                format!(
                    "limits.max_series_per_job ({}) reached",
                    l.max_series_per_job
                ),
            ))
        } else {
            None
        };
        if let Some((reason, detail)) = over {
            return Ok(Err((reason, (labels.to_string(), detail))));
        }
        let id = self.next_id;
        let mut blob = Vec::new();
        codec::encode_labels(&labels, &mut blob);
        self.conn
            .prepare_cached("INSERT INTO series (id, labels) VALUES (?1, ?2)")?
            .execute(params![id as i64, blob])?;
        self.next_id += 1;
        let series = Arc::new(MemSeries::new(id, labels, key.hash));
        self.head.insert(series.clone(), key);
        undo.push(Undo::Created(id));
        out.series_created += 1;
        Ok(Ok(series))
    }

    fn undo(&mut self, undo: Vec<Undo>, touched: &[Arc<MemSeries>]) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Pushed(i, n) => {
                    let mut data = touched[i].samples.lock();
                    for _ in 0..n {
                        data.pop();
                    }
                }
                Undo::Inserted(i, t) => {
                    touched[i].samples.lock().remove(t);
                }
                Undo::Created(id) => {
                    if let Some(s) = self.head.remove(id) {
                        s.retire();
                    }
                }
            }
        }
    }

    /// After a failed commit, reload metadata from the database so memory matches it.
    fn metadata_rollback(&mut self) {
        let loaded: Result<Vec<(String, MetricMetadata)>, rusqlite::Error> = (|| {
            let mut stmt = self
                .conn
                .prepare("SELECT metric, type, help, unit FROM metadata")?;
            let rows = stmt.query_map([], |r| {
                let kind: String = r.get(1)?;
                Ok((
                    r.get(0)?,
                    MetricMetadata {
                        kind: metadata_kind(&kind),
                        help: r.get(2)?,
                        unit: r.get(3)?,
                    },
                ))
            })?;
            rows.collect()
        })();
        if let Ok(v) = loaded {
            *self.metadata.write() = v.into_iter().collect();
        }
    }

    /// Deletes samples and records older than `cutoff_ms`; retires emptied series.
    ///
    /// Records a forward target has not sent yet are kept (within its backlog budget), and so
    /// are the series they name, so the forwarder can still label their samples.
    fn retain(&mut self, cutoff_ms: i64) -> Result<RetentionStats, StoreError> {
        let mut stats = RetentionStats {
            backlog_dropped: self.enforce_backlog_budgets()?,
            ..RetentionStats::default()
        };
        let min_cursor = self.min_cursor();
        let mut retired = Vec::new();
        for s in self.head.all() {
            let mut d = s.samples.lock();
            stats.samples_deleted += d.drop_before(cutoff_ms) as u64;
            if d.is_empty() && s.last_seq() <= min_cursor {
                retired.push(s.id);
            }
        }
        let tx = self.conn.transaction()?;
        // The sequence survives the table emptying (see `last_seq`).
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_log_seq', ?1)",
            [self.last_seq],
        )?;
        stats.records_deleted = tx.execute(
            "DELETE FROM log WHERE max_ts < ?1 AND seq <= ?2",
            [cutoff_ms, min_cursor],
        )? as u64;
        {
            let mut del = tx.prepare_cached("DELETE FROM series WHERE id = ?1")?;
            for id in &retired {
                del.execute([*id as i64])?;
            }
        }
        tx.commit()?;
        for id in retired {
            if let Some(s) = self.head.remove(id) {
                s.retire();
                stats.series_retired += 1;
            }
        }
        self.metrics.series_retired.inc_by(stats.series_retired);
        self.metrics
            .retention_deleted_samples
            .inc_by(stats.samples_deleted);
        self.metrics
            .samples_in_memory
            .dec_by(stats.samples_deleted as i64);
        self.metrics.active_series.set(self.head.len() as i64);
        Ok(stats)
    }
}

impl Writer {
    /// Moves the cursor of each target whose unsent records exceed its budget past the
    /// oldest of them. Returns the samples skipped per target.
    fn enforce_backlog_budgets(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut dropped = Vec::new();
        let budgets: Vec<(String, u64)> = self
            .budgets
            .iter()
            .filter(|(_, b)| **b > 0)
            .map(|(n, b)| (n.clone(), *b))
            .collect();
        for (name, budget) in budgets {
            let Some(cursor) = self.cursors.lock().get(&name).copied() else {
                continue;
            };
            let backlog: i64 = self.conn.query_row(
                "SELECT COALESCE(SUM(length(data)), 0) FROM log WHERE seq > ?1",
                [cursor],
                |r| r.get(0),
            )?;
            let mut excess = backlog - budget as i64;
            if excess <= 0 {
                continue;
            }
            let (mut new_cursor, mut samples) = (cursor, 0u64);
            {
                let mut stmt = self
                    .conn
                    .prepare("SELECT seq, data FROM log WHERE seq > ?1 ORDER BY seq")?;
                let mut rows = stmt.query([cursor])?;
                while excess > 0 {
                    let Some(row) = rows.next()? else { break };
                    let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                    excess -= data.len() as i64;
                    codec::decode_record(data, |_, s| samples += s.len() as u64)?;
                    new_cursor = row.get(0)?;
                }
            }
            self.set_cursor(&name, new_cursor)?;
            tracing::warn!(
                target_name = %name,
                samples,
                budget_bytes = budget,
                "Remote-write backlog over its budget: the oldest unsent samples were dropped."
            );
            dropped.push((name, samples));
        }
        Ok(dropped)
    }
}

/// Rewrites every record of a database older than [`RECORD_FORMAT_SINCE`] in the current
/// layout: the log holds a few hours, so this is a bounded, one-time cost at the first start.
fn migrate_records(conn: &Connection) -> Result<(), StoreError> {
    let (mut after, mut rows) = (i64::MIN, 0u64);
    let mut read =
        conn.prepare("SELECT seq, data FROM log WHERE seq > ?1 ORDER BY seq LIMIT 1024")?;
    let mut write = conn.prepare("UPDATE log SET data = ?2 WHERE seq = ?1")?;
    loop {
        let batch: Vec<(i64, Vec<u8>)> = read
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let Some(&(last, _)) = batch.last() else {
            break;
        };
        for (seq, old) in batch {
            let mut data = Vec::with_capacity(old.len());
            let mut prev_first = 0;
            codec::decode_record_v2(&old, |id, s| {
                encode_entry(&mut data, &mut prev_first, id, s);
            })?;
            write.execute(params![seq, data])?;
            rows += 1;
        }
        after = last;
    }
    if rows > 0 {
        tracing::info!(
            records = rows,
            "Rewrote the sample log in the current record layout."
        );
    }
    Ok(())
}

/// Records a sample pushed onto `touched[slot]`, counting consecutive ones in one entry.
fn pushed(undo: &mut Vec<Undo>, slot: usize, count: usize) {
    match undo.last_mut() {
        Some(Undo::Pushed(i, n)) if *i == slot => *n += count,
        _ => undo.push(Undo::Pushed(slot, count)),
    }
}

fn metadata_kind(s: &str) -> &'static str {
    use crate::ingest::decode::MetadataType as T;
    [
        T::Unknown,
        T::Counter,
        T::Gauge,
        T::Histogram,
        T::GaugeHistogram,
        T::Summary,
        T::Info,
        T::StateSet,
    ]
    .iter()
    .map(|t| t.as_str())
    .find(|k| *k == s)
    .unwrap_or("unknown")
}
