//! Forwarding: every sample promgate committed goes on to each `remote_write` target, in
//! order, surviving receiver outages and promgate restarts.
//!
//! The queue is the store's record log itself: a record (one committed group of writes) is
//! the unit, and each target keeps a cursor, the last record its receiver acknowledged,
//! persisted through the store's writer. A forwarder reads the records after its cursor,
//! labels their samples (external labels added), sends them as remote write 1.0 requests of
//! at most `max_samples_per_send` samples, and moves the cursor once every request of a record
//! was acknowledged. Nothing acknowledged to a sender is lost: a restart resumes at the cursor
//! (at-least-once: the last requests before a crash may be sent again, which receivers accept
//! as identical duplicates). Retention keeps unsent records within each target's
//! `max_backlog_bytes`; beyond it the oldest are skipped, counted and logged.
//!
//! Records are sent oldest first, so after an outage the backlog drains before fresh data.
//! That keeps every series in timestamp order, which receivers such as Prometheus and Mimir
//! require; fresh data waits behind the backlog for as long as the drain takes (the drain runs
//! at full speed, see BENCHMARKS.md).
//!
//! The sender follows the remote-write spec (and vmagent's loop): 2xx is success, Mimir's 202
//! included; 5xx, timeouts and network errors are retried with exponential backoff and jitter,
//! honouring `Retry-After`; 429 is retried only with `retry_on_http_429` (Prometheus 2.42's
//! default drops it); other 4xx are dropped and counted, with the receiver's message logged
//! (throttled).

pub mod config;
mod encode;
pub mod relabel;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rules_engine::Sample;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::codec::decode_record;
use config::RemoteWriteConfig;

/// Records read from the log per pass.
const READ_BATCH: usize = 256;
/// Minimum time between two logs of the same receiver error.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    remote_name: String,
    url: String,
}

/// Forwarding metrics, named as Prometheus 2.42 names them so the usual "remote write
/// behind" alerts work unchanged.
#[derive(Clone, Default)]
pub struct ForwardMetrics {
    samples: Family<QueueLabels, Counter>,
    failed: Family<QueueLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    dropped: Family<QueueLabels, Counter>,
    bytes: Family<QueueLabels, Counter>,
    highest_sent: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    shards: Family<QueueLabels, Gauge>,
    pending_records: Family<QueueLabels, Gauge>,
    highest_ts: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ForwardMetrics {
    /// Registers at the registry's root: these names carry no `promgate_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("prometheus_remote_storage");
        r.register(
            "samples",
            "Samples sent to remote storage and acknowledged",
            m.samples.clone(),
        );
        r.register(
            "samples_failed",
            "Samples that failed on send with a non-recoverable error",
            m.failed.clone(),
        );
        r.register(
            "samples_retried",
            "Samples that failed on send and were retried",
            m.retried.clone(),
        );
        r.register(
            "samples_dropped",
            "Samples dropped before being sent (backlog over its budget, series gone)",
            m.dropped.clone(),
        );
        r.register("bytes", "Compressed bytes sent", m.bytes.clone());
        r.register(
            "queue_highest_sent_timestamp_seconds",
            "Timestamp of the newest sample a receiver acknowledged",
            m.highest_sent.clone(),
        );
        r.register("shards", "Concurrent senders", m.shards.clone());
        r.register(
            "pending_records",
            "Committed records not yet acknowledged by the receiver",
            m.pending_records.clone(),
        );
        r.register(
            "highest_timestamp_in_seconds",
            "Timestamp of the newest sample committed to the store",
            m.highest_ts.clone(),
        );
        m
    }

    /// Counts samples skipped because a target's backlog passed its budget.
    pub fn count_backlog_dropped(&self, cfgs: &[RemoteWriteConfig], name: &str, samples: u64) {
        if let Some(c) = cfgs.iter().find(|c| c.remote_name() == name) {
            self.dropped.get_or_create(&labels_of(c)).inc_by(samples);
        }
    }
}

fn labels_of(cfg: &RemoteWriteConfig) -> QueueLabels {
    QueueLabels {
        remote_name: cfg.remote_name(),
        url: cfg.sanitized_url(),
    }
}

/// A target's state for the status endpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub url: String,
    pub cursor: i64,
    pub committed: i64,
    pub last_error: Option<String>,
    pub last_success_unix_ms: Option<i64>,
}

/// Status of every target, shared with the API.
pub type StatusBoard = Arc<Mutex<Vec<TargetStatus>>>;

/// How one request ended.
enum Sent {
    Acked,
    Dropped,
    Interrupted,
}

/// One target's forwarder.
pub struct Forwarder {
    cfg: RemoteWriteConfig,
    queue: QueueLabels,
    external: Vec<(String, String)>,
    store: Arc<Store>,
    client: reqwest::Client,
    metrics: ForwardMetrics,
    board: StatusBoard,
    slot: usize,
    last_log: Option<Instant>,
    /// Encoded label blocks by series id (see `encode`), after relabeling; `None` for a
    /// series `write_relabel_configs` drops.
    label_cache: hashbrown::HashMap<u64, Option<Box<[u8]>>>,
    snappy: snap::raw::Encoder,
}

impl Forwarder {
    pub fn new(
        cfg: RemoteWriteConfig,
        external: &std::collections::BTreeMap<String, String>,
        store: Arc<Store>,
        metrics: ForwardMetrics,
        board: StatusBoard,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(cfg.remote_timeout)
            .user_agent(concat!("promgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("remote_write {}: {e}", cfg.sanitized_url()))?;
        let queue = labels_of(&cfg);
        let slot = {
            let mut b = board.lock();
            b.push(TargetStatus {
                name: queue.remote_name.clone(),
                url: queue.url.clone(),
                ..TargetStatus::default()
            });
            b.len() - 1
        };
        metrics.shards.get_or_create(&queue).set(1);
        Ok(Self {
            external: external
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cfg,
            queue,
            store,
            client,
            metrics,
            board,
            slot,
            last_log: None,
            label_cache: hashbrown::HashMap::new(),
            snappy: snap::raw::Encoder::new(),
        })
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let name = self.queue.remote_name.clone();
        let mut cursor = self.store.cursor(&name).unwrap_or(0);
        let mut committed = self.store.committed();
        let reader = match self.store.open_reader() {
            Ok(c) => Arc::new(Mutex::new(c)),
            Err(e) => {
                tracing::error!(remote = %name, error = %e, "Cannot read the record log; forwarding is off for this target.");
                return;
            }
        };
        tracing::info!(remote = %name, url = %self.queue.url, cursor, "Forwarding.");
        loop {
            let newest = *committed.borrow_and_update();
            self.metrics
                .highest_ts
                .set(self.store.highest_timestamp() as f64 / 1000.0);
            self.metrics
                .pending_records
                .get_or_create(&self.queue)
                .set(newest - cursor);
            {
                let mut b = self.board.lock();
                b[self.slot].cursor = cursor;
                b[self.slot].committed = newest;
            }
            if newest <= cursor {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = committed.changed() => if changed.is_err() { return },
                }
                continue;
            }
            let rows = {
                let reader = reader.clone();
                tokio::task::spawn_blocking(move || read_records(&reader.lock(), cursor)).await
            };
            let rows = match rows
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(remote = %name, error = %e, "Reading the record log failed; retrying.");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            match self.forward_rows(&rows, &shutdown).await {
                Some(last) => {
                    cursor = last;
                    if let Err(e) = self.store.set_cursor(&name, cursor).await {
                        tracing::error!(remote = %name, error = %e, "Saving the forward cursor failed.");
                    }
                }
                None => return,
            }
        }
    }

    /// Adds samples of series `id` to `req` under its cached label block; false when the
    /// series no longer exists or relabeling drops it.
    fn push_series(
        &mut self,
        req: &mut encode::RequestBuilder,
        id: u64,
        samples: &[Sample],
    ) -> bool {
        if !self.label_cache.contains_key(&id) {
            let Some(series) = self.store.head().get(id) else {
                return false;
            };
            // Series come and go; a cache far larger than the head is mostly dead entries.
            if self.label_cache.len() > 2 * self.store.head().len() + 1024 {
                self.label_cache.clear();
            }
            let pairs = encode::with_external(&series.labels, &self.external);
            let block = relabel::process(pairs, &self.cfg.write_relabel_configs)
                .map(|p| encode::label_block(&p).into_boxed_slice());
            self.label_cache.insert(id, block);
        }
        match self.label_cache.get(&id) {
            Some(Some(block)) => {
                req.push(block, samples);
                true
            }
            _ => false,
        }
    }

    /// Sends the rows' samples; returns the last row's seq, or `None` when interrupted.
    async fn forward_rows(
        &mut self,
        rows: &[(i64, Vec<u8>)],
        shutdown: &CancellationToken,
    ) -> Option<i64> {
        let max = self.cfg.queue_config.max_samples_per_send.max(1);
        let mut req = encode::RequestBuilder::default();
        let mut flat: Vec<Sample> = Vec::new();
        let mut entries: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
        let mut missing = 0u64;
        for (_, data) in rows {
            flat.clear();
            entries.clear();
            let decoded = decode_record(data, |id, s| {
                let start = flat.len();
                flat.extend_from_slice(s);
                entries.push((id, start..flat.len()));
            });
            if let Err(e) = decoded {
                tracing::error!(remote = %self.queue.remote_name, error = %e, "Skipping a corrupt record.");
                continue;
            }
            for (id, range) in entries.drain(..) {
                // Split a series' samples over requests at `max` samples each.
                let mut rest = &flat[range];
                while !rest.is_empty() {
                    let take = rest.len().min(max - req.samples());
                    if !self.push_series(&mut req, id, &rest[..take]) {
                        missing += rest.len() as u64;
                        break;
                    }
                    rest = &rest[take..];
                    if req.samples() >= max
                        && let Sent::Interrupted = self.send(req.take(), shutdown).await
                    {
                        return None;
                    }
                }
            }
        }
        if req.samples() > 0
            && let Sent::Interrupted = self.send(req.take(), shutdown).await
        {
            return None;
        }
        if missing > 0 {
            self.metrics
                .dropped
                .get_or_create(&self.queue)
                .inc_by(missing);
            tracing::warn!(remote = %self.queue.remote_name, samples = missing, "Samples of series no longer in the store were not forwarded.");
        }
        rows.last().map(|(seq, _)| *seq)
    }

    /// Sends one request with the spec's retry rules.
    async fn send(&mut self, request: (Vec<u8>, usize, i64), shutdown: &CancellationToken) -> Sent {
        let (raw, samples, newest) = request;
        let samples = samples as u64;
        let body = match self.snappy.compress_vec(&raw) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "Snappy compression failed; request dropped.");
                self.metrics
                    .failed
                    .get_or_create(&self.queue)
                    .inc_by(samples);
                return Sent::Dropped;
            }
        };
        let q = self.cfg.queue_config.clone();
        let mut backoff = q.min_backoff;
        loop {
            let wait = match self.attempt(body.clone()).await {
                Ok(()) => {
                    self.metrics
                        .samples
                        .get_or_create(&self.queue)
                        .inc_by(samples);
                    self.metrics
                        .bytes
                        .get_or_create(&self.queue)
                        .inc_by(body.len() as u64);
                    self.metrics
                        .highest_sent
                        .get_or_create(&self.queue)
                        .set(newest as f64 / 1000.0);
                    let mut b = self.board.lock();
                    b[self.slot].last_success_unix_ms = Some(crate::serve::now_ms());
                    b[self.slot].last_error = None;
                    return Sent::Acked;
                }
                Err(Failure::Permanent(msg)) => {
                    self.metrics
                        .failed
                        .get_or_create(&self.queue)
                        .inc_by(samples);
                    self.note_error(&msg, samples, false);
                    return Sent::Dropped;
                }
                Err(Failure::Retry(msg, retry_after)) => {
                    self.metrics
                        .retried
                        .get_or_create(&self.queue)
                        .inc_by(samples);
                    self.note_error(&msg, samples, true);
                    let jittered = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                    retry_after.unwrap_or(jittered)
                }
            };
            backoff = (backoff * 2).min(q.max_backoff);
            tokio::select! {
                _ = shutdown.cancelled() => return Sent::Interrupted,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn note_error(&mut self, msg: &str, samples: u64, retrying: bool) {
        self.board.lock()[self.slot].last_error = Some(msg.to_string());
        if self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            self.last_log = Some(Instant::now());
            if retrying {
                tracing::warn!(remote = %self.queue.remote_name, url = %self.queue.url, samples, error = %msg, "Remote write failed; retrying.");
            } else {
                tracing::error!(remote = %self.queue.remote_name, url = %self.queue.url, samples, error = %msg, "Remote write refused; samples dropped.");
            }
        }
    }

    async fn attempt(&self, body: Bytes) -> Result<(), Failure> {
        let mut req = self
            .client
            .post(&self.cfg.url)
            .header("Content-Type", proto::headers::CONTENT_TYPE_V1)
            .header("Content-Encoding", proto::headers::ENCODING_SNAPPY)
            .header(proto::headers::VERSION, "0.1.0");
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &self.cfg.basic_auth {
            let password = secret(b.password.as_deref(), b.password_file.as_deref())
                .map_err(Failure::Permanent)?;
            req = req.basic_auth(&b.username, password);
        }
        if let Some(a) = &self.cfg.authorization {
            let creds = secret(a.credentials.as_deref(), a.credentials_file.as_deref())
                .map_err(Failure::Permanent)?
                .unwrap_or_default();
            req = req.header("Authorization", format!("{} {creds}", a.kind));
        }
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => return Err(Failure::Retry(without_url(&e), None)),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        let msg = format!(
            "HTTP {status}: {}",
            text.trim().chars().take(512).collect::<String>()
        );
        if status.is_server_error()
            || (status.as_u16() == 429 && self.cfg.queue_config.retry_on_http_429)
        {
            Err(Failure::Retry(msg, retry_after))
        } else {
            Err(Failure::Permanent(msg))
        }
    }
}

enum Failure {
    Retry(String, Option<Duration>),
    Permanent(String),
}

/// A secret given inline or in a file (read at each use, so rotation needs no reload).
fn secret(inline: Option<&str>, file: Option<&str>) -> Result<Option<String>, String> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.to_string())),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| format!("reading credentials file {f}: {e}")),
        (None, None) => Ok(None),
    }
}

/// reqwest's error text without the URL (which may carry credentials).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_string(),
    }
}

/// Up to [`READ_BATCH`] records after `cursor`.
fn read_records(
    conn: &rusqlite::Connection,
    cursor: i64,
) -> Result<Vec<(i64, Vec<u8>)>, rusqlite::Error> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, data FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map([cursor, READ_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
