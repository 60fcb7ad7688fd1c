//! The durable window: SQLite (WAL) as the record, the in-memory [`head::Head`] as the index
//! and the read path.
//!
//! Every accepted sample is written once, inside the commit that acknowledges it, as part of a
//! compact per-group record (`log` table); new series get a row in `series`. A request is
//! answered only after its group's transaction committed, so a crash or SIGKILL after a 2xx
//! loses nothing: at start the head is rebuilt from `series` and the records. One writer
//! thread owns the write connection and commits groups of queued requests together (group
//! commit), which is what lets one SQLite writer keep up with many senders: the cost of a
//! commit is paid once per group, not per sample or per request.

pub mod chunk;
pub mod codec;
pub mod head;
pub mod recent;
pub mod spill;
mod writer;

use std::ops::Range;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use promql_parser::label::Matcher;
use rules_engine::storage::{Appender, Queryable, Series, StorageError, TimeRange};
use rules_engine::{Labels, Sample};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::StorageConfig;
use crate::validate::{LimitsConfig, Rejections};
use head::{Head, MemSeries};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database content: {0}")]
    Corrupt(#[from] codec::CorruptBlob),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database schema version {0} is newer than this promgate understands (1)")]
    SchemaVersion(i64),
    #[error("the store is shut down")]
    Closed,
    #[error("commit failed: {0}")]
    CommitFailed(String),
}

/// The series a batch entry writes to.
#[derive(Debug)]
pub enum Target {
    /// Resolved by the caller against the head.
    Known(Arc<MemSeries>),
    /// Not in the head when the caller looked: created by the writer (after the series
    /// limits) unless an earlier write created it meanwhile. The key is the caller's, so the
    /// writer does not compute it again.
    New(Labels, head::SeriesKey),
}

/// One series' samples in a [`WriteBatch`].
#[derive(Debug)]
pub struct Entry {
    pub target: Target,
    pub samples: Range<u32>,
}

/// Metadata a sender declared for a metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMetadata {
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// Bytes of the newest records (and their request bodies) kept in memory for the forwarders:
/// at 10-45 bytes a sample, a few million samples of lag.
#[cfg(not(test))]
const RECENT_BYTES: usize = 64 << 20;
/// Small in unit tests, so that they reach what lies past it.
#[cfg(test)]
const RECENT_BYTES: usize = 64 << 10;

/// A validated write, applied atomically.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub entries: Vec<Entry>,
    pub samples: Vec<Sample>,
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Pushed groups' states written (or, with `None`, deleted) in the same transaction as
    /// the samples: `push_group` rows keyed by encoded grouping key (see `crate::push`).
    pub push_groups: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The request body this batch was decoded from, for targets that take bodies as
    /// received (see [`ForwardTarget::as_received`]). Kept only if the whole batch is stored.
    pub body: Option<ReceivedBody>,
}

/// A remote-write 1.0 request body as it arrived (snappy-compressed protobuf), holding only
/// labels and samples, all of which passed validation: once the store has accepted every one
/// of its samples, it is exactly what a target without relabeling or external labels would
/// be sent, so such a target is sent the body itself instead of a re-encoding.
#[derive(Debug, Clone)]
pub struct ReceivedBody {
    pub data: bytes::Bytes,
    /// Samples in it.
    pub samples: u32,
    /// Its newest sample's timestamp (ms).
    pub newest: i64,
}

/// What the writer did with a batch.
#[derive(Debug, Default)]
pub struct WriteOutcome {
    /// Samples stored.
    pub accepted: u64,
    /// Samples identical to stored ones (a retry): not stored again, not an error.
    pub unchanged: u64,
    pub series_created: u64,
    pub rejected: Rejections,
}

/// The store's self-metrics.
#[derive(Clone)]
pub struct StoreMetrics {
    pub commits: Counter,
    pub commit_failures: Counter,
    pub commit_seconds: Histogram,
    pub requests_per_commit: Histogram,
    pub active_series: Gauge,
    pub series_created: Counter,
    pub series_retired: Counter,
    pub samples_in_memory: Gauge,
    pub retention_deleted_samples: Counter,
    pub database_bytes: Gauge,
    pub spilled_body_bytes: Gauge,
}

impl StoreMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            requests_per_commit: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            active_series: Gauge::default(),
            series_created: Counter::default(),
            series_retired: Counter::default(),
            samples_in_memory: Gauge::default(),
            retention_deleted_samples: Counter::default(),
            database_bytes: Gauge::default(),
            spilled_body_bytes: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("store");
        r.register(
            "commits",
            "Transactions committed by the writer",
            m.commits.clone(),
        );
        r.register(
            "commit_failures",
            "Transactions that failed; their requests were answered 503 and undone",
            m.commit_failures.clone(),
        );
        r.register(
            "commit_duration_seconds",
            "Time to apply and commit one group of writes",
            m.commit_seconds.clone(),
        );
        r.register(
            "requests_per_commit",
            "Write requests committed together in one transaction",
            m.requests_per_commit.clone(),
        );
        r.register(
            "active_series",
            "Series in the window",
            m.active_series.clone(),
        );
        r.register("series_created", "Series created", m.series_created.clone());
        r.register(
            "series_retired",
            "Series removed because retention deleted all their samples",
            m.series_retired.clone(),
        );
        r.register(
            "samples_in_memory",
            "Samples held in the window",
            m.samples_in_memory.clone(),
        );
        r.register(
            "retention_deleted_samples",
            "Samples deleted by retention",
            m.retention_deleted_samples.clone(),
        );
        r.register(
            "database_size_bytes",
            "Size of the SQLite database and its WAL",
            m.database_bytes.clone(),
        );
        r.register(
            "spilled_body_bytes",
            "Request bodies on disk for a forwarder behind the in-memory tail (not durable)",
            m.spilled_body_bytes.clone(),
        );
        m
    }
}

/// Counts from one retention pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionStats {
    pub samples_deleted: u64,
    pub series_retired: u64,
    pub records_deleted: u64,
    /// Per forward target: samples skipped because its backlog passed `max_backlog_bytes`.
    pub backlog_dropped: Vec<(String, u64)>,
}

/// A remote-write target as the store sees it: a cursor to keep, a backlog budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub name: String,
    /// Most bytes of unsent records kept for it; 0 for no bound.
    pub max_backlog_bytes: u64,
    /// Whether it may be sent request bodies as received (remote write 1.0, no external
    /// labels): the store then keeps those bodies with the newest records (in memory, then
    /// [`spill`]).
    pub as_received: bool,
}

/// State the writer shares with readers.
pub(crate) struct Shared {
    pub head: Arc<Head>,
    pub metadata: Arc<RwLock<std::collections::HashMap<String, MetricMetadata>>>,
    /// The newest committed record's `log.seq`.
    pub committed: watch::Sender<i64>,
    /// Per forward target, the last acknowledged `log.seq`.
    pub cursors: Arc<Mutex<std::collections::HashMap<String, i64>>>,
    /// The newest sample timestamp committed (ms).
    pub highest_ts: Arc<std::sync::atomic::AtomicI64>,
    pub recent: Arc<Mutex<recent::Recent>>,
    pub spill: Arc<Mutex<spill::Spill>>,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    head: Arc<Head>,
    metadata: Arc<RwLock<std::collections::HashMap<String, MetricMetadata>>>,
    committed: watch::Receiver<i64>,
    cursors: Arc<Mutex<std::collections::HashMap<String, i64>>>,
    highest_ts: Arc<std::sync::atomic::AtomicI64>,
    recent: Arc<Mutex<recent::Recent>>,
    spill: Arc<Mutex<spill::Spill>>,
    db_path: std::path::PathBuf,
    keeps_bodies: bool,
    tx: Mutex<Option<mpsc::Sender<writer::Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// Opens (or creates) the database under `cfg.path`, rebuilds the head from it and starts
    /// the writer thread. Blocking: call from a blocking context.
    pub fn open(
        cfg: &StorageConfig,
        limits: Arc<LimitsConfig>,
        metrics: StoreMetrics,
        now_ms: i64,
        targets: &[ForwardTarget],
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&cfg.path).map_err(|source| StoreError::DataDir {
            path: cfg.path.display().to_string(),
            source,
        })?;
        let db_path = cfg.path.join("promgate.db");
        let head = Arc::new(Head::default());
        let metadata = Arc::new(RwLock::new(std::collections::HashMap::new()));
        let retention_ms = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX);
        let (committed_tx, committed) = watch::channel(0);
        let cursors = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let highest_ts = Arc::new(std::sync::atomic::AtomicI64::new(0));
        // Only forwarders read records back.
        let recent = Arc::new(Mutex::new(recent::Recent::new(if targets.is_empty() {
            0
        } else {
            RECENT_BYTES
        })));
        // Bodies evicted from the tail unsent take at most the largest backlog budget of the
        // targets that are sent bodies (0: bounded by the disk only, as the backlog).
        let spill_budget = targets
            .iter()
            .filter(|t| t.as_received)
            .map(|t| match t.max_backlog_bytes {
                0 => u64::MAX,
                b => b,
            })
            .max()
            .unwrap_or(0);
        let spill_dir = cfg.path.join("bodies");
        let spill =
            spill::Spill::open(&spill_dir, spill_budget).map_err(|source| StoreError::DataDir {
                path: spill_dir.display().to_string(),
                source,
            })?;
        let spill = Arc::new(Mutex::new(spill));
        let shared = Shared {
            head: head.clone(),
            metadata: metadata.clone(),
            committed: committed_tx,
            cursors: cursors.clone(),
            highest_ts: highest_ts.clone(),
            recent: recent.clone(),
            spill: spill.clone(),
        };
        let w = writer::Writer::open(
            &db_path,
            cfg.fsync,
            shared,
            limits,
            metrics,
            now_ms.saturating_sub(retention_ms),
            targets,
        )?;
        let (tx, rx) = mpsc::channel(256);
        let thread = std::thread::Builder::new()
            .name("promgate-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| StoreError::DataDir {
                path: db_path.display().to_string(),
                source,
            })?;
        Ok(Self {
            head,
            metadata,
            committed,
            cursors,
            highest_ts,
            recent,
            spill,
            db_path,
            keeps_bodies: targets.iter().any(|t| t.as_received),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Watches the newest committed record's sequence number.
    pub fn committed(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    /// The newest sample timestamp committed (ms since the epoch; 0 before any).
    pub fn highest_timestamp(&self) -> i64 {
        self.highest_ts.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether ingest should hand request bodies to the store ([`WriteBatch::body`]).
    pub fn keeps_bodies(&self) -> bool {
        self.keeps_bodies
    }

    /// Up to `max` records after `after` from memory, if all of them are there (see
    /// [`recent`]).
    pub fn recent_after(
        &self,
        after: i64,
        max: usize,
        out: &mut Vec<recent::RecentRecord>,
    ) -> bool {
        self.recent.lock().after(after, max, out)
    }

    /// The request bodies of record `seq`, if they were kept on disk ([`spill`]), and of the
    /// records after it read in the same go (about `max_bytes` in all), in seq order.
    pub fn spilled_bodies(
        &self,
        seq: i64,
        max_bytes: usize,
    ) -> Vec<(i64, Arc<[recent::KeptBody]>)> {
        let run = self.spill.lock().locate_run(seq, max_bytes);
        run.map(|r| spill::read_run(&r)).unwrap_or_default()
    }

    /// A forward target's cursor: the last record its receiver acknowledged.
    pub fn cursor(&self, name: &str) -> Option<i64> {
        self.cursors.lock().get(name).copied()
    }

    /// Moves a forward target's cursor (durably, through the writer).
    pub async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(writer::Msg::SetCursor(name.to_string(), seq, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// A read-only connection for readers of the records (the forwarder).
    pub fn open_reader(&self) -> Result<rusqlite::Connection, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(conn)
    }

    /// Declared metadata per metric family.
    pub fn metadata(&self) -> Vec<(String, MetricMetadata)> {
        let mut v: Vec<_> = self
            .metadata
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn sender(&self) -> Result<mpsc::Sender<writer::Msg>, StoreError> {
        self.tx.lock().clone().ok_or(StoreError::Closed)
    }

    /// Applies a batch; resolves once it is committed (durable) or failed (undone).
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(writer::Msg::Write(batch, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a batch and returns where its outcome will arrive, so a caller can order
    /// its writes (under its own lock) without holding that lock until the commit.
    pub async fn submit(
        &self,
        batch: WriteBatch,
    ) -> Result<oneshot::Receiver<Result<WriteOutcome, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(writer::Msg::Write(batch, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Every pushed group's stored state (`push_group` rows), read at start.
    pub fn load_push_groups(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let conn = self.open_reader()?;
        let mut stmt = conn.prepare("SELECT data FROM push_group")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// [`Store::write`] for blocking callers (rule evaluation threads).
    pub fn write_blocking(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .blocking_send(writer::Msg::Write(batch, reply))
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Deletes samples older than `cutoff_ms` and retires series left without samples.
    pub async fn apply_retention(&self, cutoff_ms: i64) -> Result<RetentionStats, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.sender()?
            .send(writer::Msg::Retention(cutoff_ms, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops accepting writes, lets the writer finish what is queued, and closes the database.
    /// Blocking.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(t) = self.thread.lock().take()
            && t.join().is_err()
        {
            tracing::error!("The store writer thread panicked.");
        }
    }

    /// The series `matchers` select, with their samples in `range`.
    pub fn select_series(&self, matchers: &[Matcher], range: TimeRange) -> Vec<Series> {
        self.head
            .select(matchers)
            .into_iter()
            .filter_map(|s| {
                let samples = s.samples_in(range.start.0, range.end.0);
                (!samples.is_empty()).then(|| Series {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect()
    }
}

impl Queryable for Store {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        Ok(self.select_series(matchers, range))
    }

    fn series(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .head
            .select(matchers)
            .into_iter()
            .filter(|s| s.has_samples_in(range.start.0, range.end.0))
            .map(|s| s.labels.clone())
            .collect())
    }
}

impl Appender for Store {
    fn append(&self, series: Vec<Series>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        for s in series {
            let start = batch.samples.len() as u32;
            batch.samples.extend_from_slice(&s.samples);
            batch.entries.push(Entry {
                target: {
                    let key = head::SeriesKey::of(&s.labels);
                    Target::New(s.labels, key)
                },
                samples: start..batch.samples.len() as u32,
            });
        }
        let out = self
            .write_blocking(batch)
            .map_err(|e| StorageError::Unavailable(Box::new(e)))?;
        if out.rejected.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Refused(out.rejected.message()))
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
