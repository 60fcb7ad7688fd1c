//! Forwarding: every sample promgate committed goes on to each `remote_write` target, in
//! order per series, surviving receiver outages and promgate restarts.
//!
//! **The queue is the store's record log itself**: a record (one committed group of writes,
//! samples of ingest, recording rules and `ALERTS`/`ALERTS_FOR_STATE` alike) is the unit, and
//! each target keeps a cursor, the last record its receiver acknowledged, persisted through
//! the store's writer. A forwarder reads the records after its cursor in chunks, labels their
//! samples (external labels merged in, then `write_relabel_configs`, both once per series and
//! cached by series id), encodes remote write 1.0 or 2.0 requests of at most
//! `max_samples_per_send` samples, and moves the cursor once every request of a chunk was
//! answered (saved at most every 200 ms while data flows, when the queue goes idle, and at
//! shutdown, since each save is a commit). Nothing acknowledged to a sender is lost: a
//! restart resumes at the saved cursor (at-least-once: what was sent after it is sent again,
//! which receivers accept as identical duplicates).
//!
//! **Shards.** A chunk's series are hashed to shards, each shard sending its requests in
//! order, the shards concurrently; the next chunk starts when every shard is done, so a
//! series' samples always leave in timestamp order, on one connection at a time, whatever the
//! shard count. The shard count follows the queue: a chunk holds everything committed after
//! the cursor, up to `max_shards` requests' worth, and gets one shard per full request
//! (between `min_shards` and `max_shards`). When the forwarder keeps up, chunks are small and
//! one shard sends them as they commit; when it falls behind (an outage, a burst), chunks
//! fill up and up to `max_shards` requests are in flight. The next chunk is read and encoded
//! while the current one is being sent. Records come from the store's in-memory tail of
//! recent records ([`crate::store::recent`]) while the forwarder keeps up, else from SQLite.
//!
//! **Bodies as received.** A target that speaks remote write 1.0 and adds no external labels
//! would be sent exactly what a 1.0 sender sent promgate, whenever promgate stored every
//! sample of the request and the target's relabel rules leave each of its series unchanged. For such targets the store keeps those
//! request bodies with their record, in memory, and the forwarder sends them as they are: no
//! decoding of the record, no labeling, no encoding, no compression. The bodies of a chunk go
//! on lanes ([`lanes`]) such that bodies sharing a series are sent one after the other, so
//! each series still leaves in order on one connection at a time. Records without bodies (rule
//! outputs, pushes, partly refused requests, or anything read back from SQLite after a
//! restart) are re-encoded; a chunk never mixes the two. The bodies are not written to
//! SQLite: the record is the durable copy, and writing them there cost the writer as much as
//! re-encoding costs the forwarder. Bodies of records that leave the memory tail unsent go to
//! plain files ([`crate::store::spill`]), so a backlog drains as received too.
//!
//! **Backlog against fresh data.** Records go oldest first, because receivers such as
//! Prometheus and Mimir reject a sample older than one they already have for the series: a
//! "fresh first" lane would turn the backlog into rejected samples. So after an outage fresh
//! data waits behind the backlog, and promgate keeps that wait short and bounded instead:
//! the drain runs at full width (`max_shards` concurrent requests, see BENCHMARKS.md for the
//! rate), and the backlog is capped by `queue_config.max_backlog_bytes`, beyond which the
//! oldest records are dropped, counted (`prometheus_remote_storage_samples_dropped_total`) and
//! logged. The worst delay of a fresh sample is therefore the budget divided by the drain
//! rate, and the freshest data is what survives a long outage.
//!
//! The sender's rules (retries, backoff, `Retry-After`, 429, 4xx) are in [`send`].

pub mod config;
mod encode;
mod encode_v2;
mod lanes;
mod merge;
pub mod relabel;
mod send;

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rules_engine::Sample;
use tokio_util::sync::CancellationToken;

use crate::store::codec::decode_record;
use crate::store::recent::{KeptBody, RecentRecord};
use crate::store::{Store, StoreError};
use config::{RemoteWriteConfig, Wire};
use send::{Request, Sender, Sent};

/// Most records read into one chunk.
const READ_BATCH: usize = 1024;
/// Bytes of records read from the database for one chunk, past which it stops reading.
const READ_BYTES: usize = 32 << 20;
/// Record bytes read per sample a chunk may hold: a record takes 2 to 10 bytes a sample, so a
/// chunk is read about whole without reading many records that it will not take (and will
/// read again for the next chunk).
const READ_BYTES_PER_SAMPLE: usize = 8;
/// Most samples in one chunk, whatever the queue settings (bounds memory).
const CHUNK_SAMPLES_CAP: usize = 500_000;
/// Longest the saved cursor lags the acknowledged one while data flows (a crash resends at
/// most this much, which receivers take as duplicates).
const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    pub remote_name: String,
    pub url: String,
}

/// Forwarding metrics, named as Prometheus 2.42 names them so the usual "remote write
/// behind" alerts work unchanged.
#[derive(Clone)]
pub struct ForwardMetrics {
    samples: Family<QueueLabels, Counter>,
    /// Per attempt to send a request, as Prometheus's `sent_batch_duration_seconds`.
    sent_batch_duration: Family<QueueLabels, Histogram>,
    failed: Family<QueueLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    dropped: Family<QueueLabels, Counter>,
    bytes: Family<QueueLabels, Counter>,
    highest_sent: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    shards: Family<QueueLabels, Gauge>,
    shards_max: Family<QueueLabels, Gauge>,
    shards_min: Family<QueueLabels, Gauge>,
    pending_records: Family<QueueLabels, Gauge>,
    pending_samples: Family<QueueLabels, Gauge>,
    highest_ts: Gauge<f64, std::sync::atomic::AtomicU64>,
    as_received: Family<QueueLabels, Counter>,
}

impl ForwardMetrics {
    /// Registers at the registry's root: these names carry no `promgate_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            samples: Family::default(),
            // Prometheus's buckets: the default ones, then up to 5 minutes.
            sent_batch_duration: Family::new_with_constructor(|| {
                Histogram::new(
                    [
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]
                    .into_iter()
                    .chain([25.0, 60.0, 120.0, 300.0]),
                )
            }),
            failed: Family::default(),
            retried: Family::default(),
            dropped: Family::default(),
            bytes: Family::default(),
            highest_sent: Family::default(),
            shards: Family::default(),
            shards_max: Family::default(),
            shards_min: Family::default(),
            pending_records: Family::default(),
            pending_samples: Family::default(),
            highest_ts: Gauge::default(),
            as_received: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("prometheus_remote_storage");
        r.register(
            "sent_batch_duration_seconds",
            "Duration of send calls to the remote storage",
            m.sent_batch_duration.clone(),
        );
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
            "Samples dropped before being sent (relabeling, backlog over its budget, series gone)",
            m.dropped.clone(),
        );
        r.register("bytes", "Compressed bytes sent", m.bytes.clone());
        r.register(
            "queue_highest_sent_timestamp_seconds",
            "Timestamp of the newest sample a receiver acknowledged",
            m.highest_sent.clone(),
        );
        r.register(
            "shards",
            "Shards sending the current chunk of the queue",
            m.shards.clone(),
        );
        r.register(
            "shards_max",
            "Most shards the queue may use",
            m.shards_max.clone(),
        );
        r.register(
            "shards_min",
            "Fewest shards the queue uses",
            m.shards_min.clone(),
        );
        r.register(
            "samples_pending",
            "Samples of the chunk being sent not yet acknowledged, dropped or failed (as Prometheus's queued samples)",
            m.pending_samples.clone(),
        );
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
        registry.sub_registry_with_prefix("promgate_forward").register(
            "requests_as_received",
            "Request bodies sent as they were received (remote write 1.0 bodies stored whole, to targets without external labels whose relabel rules change none of their series; consecutive ones may share a request)",
            m.as_received.clone(),
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
    /// `prometheus.WriteRequest` or `io.prometheus.write.v2.Request`.
    pub protobuf_message: String,
    /// The last record the receiver acknowledged.
    pub cursor: i64,
    /// The newest committed record.
    pub committed: i64,
    /// Shards sending the current chunk.
    pub shards: usize,
    pub last_error: Option<String>,
    pub last_success_unix_ms: Option<i64>,
}

/// Status of every target, shared with the API.
pub type StatusBoard = Arc<Mutex<Vec<TargetStatus>>>;

/// A series as sent: its encoded labels, after external labels and relabeling.
enum Encoded {
    /// Remote write 1.0: the `TimeSeries.labels` field bytes.
    V1(Box<[u8]>),
    /// Remote write 2.0: interned symbol ids, name and value alternating.
    V2(Box<[u32]>),
}

/// Requests of one chunk of the record log, grouped by shard.
struct Chunk {
    /// The chunk's last record.
    last_seq: i64,
    shards: Vec<Vec<Request>>,
    /// How many bodies as received it holds (several may share one request); 0 when its
    /// requests were encoded from records.
    bodies: usize,
    /// Samples of series that `write_relabel_configs` dropped.
    relabel_dropped: u64,
    /// Samples of series no longer in the store.
    missing: u64,
}

/// Reads chunks of the record log and encodes them; runs on a blocking thread, owned by one
/// call at a time (moved in and out of `spawn_blocking`).
struct ChunkBuilder {
    cfg: Arc<RemoteWriteConfig>,
    /// Which bodies this target is sent as received.
    bodies: BodyFilter,
    external: Vec<(String, String)>,
    store: Arc<Store>,
    reader: rusqlite::Connection,
    cache: hashbrown::HashMap<u64, Option<Encoded>>,
    interner: encode_v2::Interner,
    v1: encode::RequestBuilder,
    v2: encode_v2::RequestBuilder,
    snappy: snap::raw::Encoder,
    /// Scratch buffers of `finish`.
    raw: Vec<u8>,
    compressed: Vec<u8>,
    flat: Vec<Sample>,
    entries: Vec<(u64, Range<usize>)>,
    by_shard: Vec<ShardBuf>,
    /// Scratch: the records of the chunk being built.
    records: Vec<RecentRecord>,
    /// Where a chunk of bodies sent as received is placed.
    lanes: lanes::Lanes<Request>,
}

/// A shard's entries (ranges into its samples) and samples.
type Part<'a> = (&'a [(u64, Range<usize>)], &'a [Sample]);

/// One shard's part of a chunk: its entries (ranges into `samples`) and samples.
#[derive(Default)]
struct ShardBuf {
    entries: Vec<(u64, Range<usize>)>,
    samples: Vec<Sample>,
}

impl ShardBuf {
    fn clear(&mut self) {
        self.entries.clear();
        self.samples.clear();
    }
}

/// Which request bodies kept by the store a target is sent as they arrived.
struct BodyFilter {
    /// The target takes bodies at all ([`RemoteWriteConfig::as_received`]).
    enabled: bool,
    /// Per series, whether `write_relabel_configs` leave it as it is (only with rules).
    unchanged: hashbrown::HashMap<u64, bool>,
}

impl BodyFilter {
    /// Whether a record's bodies go as received: each fits one request, and the relabel
    /// rules (if any) leave every series in them as it is (a rule dropping some series, say,
    /// leaves most bodies untouched).
    fn sendable(
        &mut self,
        bodies: &[KeptBody],
        per_send: usize,
        cfg: &RemoteWriteConfig,
        head: &crate::store::head::Head,
    ) -> bool {
        if !self.enabled || !bodies.iter().all(|k| k.body.samples as usize <= per_send) {
            return false;
        }
        let rules = &cfg.write_relabel_configs;
        if rules.is_empty() {
            return true;
        }
        bodies.iter().flat_map(|k| k.ids.iter()).all(|&id| {
            *self.unchanged.entry(id).or_insert_with(|| {
                head.get(id).is_some_and(|series| {
                    let pairs = encode::with_external(&series.labels, &[]);
                    relabel::process(pairs.clone(), rules).is_some_and(|p| p == pairs)
                })
            })
        })
    }
}

/// Which shard sends a series: a multiplicative hash of its id (ids are dense integers).
fn shard_of(id: u64, shards: usize) -> usize {
    ((id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
}

impl ChunkBuilder {
    fn max_chunk_samples(&self) -> usize {
        let q = &self.cfg.queue_config;
        (q.capacity.max(q.max_samples_per_send) * q.max_shards).clamp(1, CHUNK_SAMPLES_CAP)
    }

    /// Reads records after `after` from the database, about what one chunk takes: at most
    /// [`READ_BATCH`] records, bodies up to the chunk's samples, data up to
    /// [`READ_BYTES_PER_SAMPLE`] a sample (and [`READ_BYTES`]). A record whose request bodies
    /// were kept on disk ([`crate::store::spill`]) comes with them instead of its data, when
    /// this target is sent bodies.
    fn read_records(&mut self, after: i64, out: &mut Vec<RecentRecord>) -> Result<(), StoreError> {
        let per_send = self.cfg.queue_config.max_samples_per_send.max(1);
        let limit = self.max_chunk_samples();
        let max_bytes = READ_BYTES.min(limit.saturating_mul(READ_BYTES_PER_SAMPLE));
        let mut stmt = self
            .reader
            .prepare_cached("SELECT seq, data FROM log WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let mut rows = stmt.query([after, READ_BATCH as i64])?;
        let (mut bytes, mut body_samples) = (0, 0);
        // Bodies of the records from the current one on, read from disk in runs.
        let mut spilled = std::collections::VecDeque::new();
        while bytes < max_bytes
            && body_samples < limit
            && let Some(row) = rows.next()?
        {
            let seq = row.get(0)?;
            while spilled.front().is_some_and(|(s, _)| *s < seq) {
                spilled.pop_front();
            }
            if self.bodies.enabled && spilled.is_empty() {
                spilled = self.store.spilled_bodies(seq, max_bytes).into();
            }
            let bodies = spilled
                .front()
                .filter(|(s, _)| *s == seq)
                .map(|(_, b)| b.clone())
                .filter(|b| {
                    self.bodies
                        .sendable(b, per_send, &self.cfg, self.store.head())
                });
            if let Some(bodies) = bodies {
                body_samples += bodies
                    .iter()
                    .map(|k| k.body.samples as usize)
                    .sum::<usize>();
                out.push(RecentRecord {
                    seq,
                    data: Bytes::new(),
                    bodies: Some(bodies),
                });
                continue;
            }
            // Read only now: SQLite fetches a blob's overflow pages when it is asked for.
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            bytes += data.len();
            out.push(RecentRecord {
                seq,
                data: Bytes::copy_from_slice(data),
                bodies: None,
            });
        }
        Ok(())
    }

    /// The records after `after`, encoded; `None` when there are none.
    fn build(&mut self, after: i64) -> Result<Option<Chunk>, StoreError> {
        // Series come and go; a cache far larger than the head is mostly dead entries. Cleared
        // only here, between requests, since 2.0 requests hold interned ids.
        if self.cache.len() + self.bodies.unchanged.len() > 2 * self.store.head().len() + 1024 {
            self.cache.clear();
            self.bodies.unchanged.clear();
            self.interner.clear();
            self.v2.reset_symbols();
        }
        let limit = self.max_chunk_samples();
        let per_send = self.cfg.queue_config.max_samples_per_send.max(1);
        let max_shards = self.cfg.queue_config.max_shards;
        self.flat.clear();
        self.entries.clear();
        let mut last_seq = after;
        // Records come from memory while the forwarder keeps up, else from the database.
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        if !self.store.recent_after(after, READ_BATCH, &mut records) {
            self.read_records(after, &mut records)?;
        }
        // A chunk is either records re-encoded, or records sent as the bodies they came from
        // (placed on `self.lanes`).
        let mut received = false;
        let mut received_samples = 0usize;
        for (n, record) in records.iter().enumerate() {
            let bodies = record.bodies.as_deref().filter(|b| {
                self.bodies
                    .sendable(b, per_send, &self.cfg, self.store.head())
            });
            if n > 0 && bodies.is_some() != received {
                break;
            }
            last_seq = record.seq;
            if let Some(bodies) = bodies {
                received = true;
                for KeptBody { body, ids } in bodies {
                    received_samples += body.samples as usize;
                    let request = Request {
                        body: body.data.clone(),
                        samples: u64::from(body.samples),
                        newest: body.newest,
                    };
                    self.lanes.place(ids, request.samples, request);
                }
                if received_samples >= limit {
                    break;
                }
                continue;
            }
            let (flat, entries) = (&mut self.flat, &mut self.entries);
            let mark = (flat.len(), entries.len());
            let decoded = decode_record(&record.data, |id, s| {
                let start = flat.len();
                flat.extend_from_slice(s);
                entries.push((id, start..flat.len()));
            });
            if let Err(e) = decoded {
                self.flat.truncate(mark.0);
                self.entries.truncate(mark.1);
                tracing::error!(remote = %self.cfg.remote_name(), seq = record.seq, error = %e, "Skipping a corrupt record.");
            }
            if self.flat.len() >= limit {
                break;
            }
        }
        records.clear();
        self.records = records;
        if last_seq == after {
            return Ok(None);
        }
        if received {
            let shards = self.lanes.take();
            return Ok(Some(Chunk {
                last_seq,
                bodies: shards.iter().map(Vec::len).sum(),
                shards: shards
                    .into_iter()
                    .map(|lane| merge::merge(lane, per_send))
                    .collect(),
                relabel_dropped: 0,
                missing: 0,
            }));
        }
        let shards = self
            .flat
            .len()
            .div_ceil(per_send)
            .clamp(self.cfg.queue_config.min_shards.max(1), max_shards.max(1));
        let mut chunk = Chunk {
            last_seq,
            shards: Vec::with_capacity(shards),
            bodies: 0,
            relabel_dropped: 0,
            missing: 0,
        };
        // Each shard's entries and samples are copied out together in one sequential pass,
        // so building a shard's requests reads memory in order (indexes into the chunk-wide
        // arrays would miss the cache on every entry once there are many shards).
        let entries_all = std::mem::take(&mut self.entries);
        let flat_all = std::mem::take(&mut self.flat);
        let mut bufs = std::mem::take(&mut self.by_shard);
        let parts: Vec<Part<'_>> = if shards == 1 {
            vec![(&entries_all, &flat_all)]
        } else {
            if bufs.len() < shards {
                bufs.resize_with(shards, ShardBuf::default);
            }
            bufs.iter_mut().for_each(ShardBuf::clear);
            for (id, range) in &entries_all {
                let b = &mut bufs[shard_of(*id, shards)];
                let start = b.samples.len();
                b.samples.extend_from_slice(&flat_all[range.clone()]);
                b.entries.push((*id, start..b.samples.len()));
            }
            bufs.iter()
                .take(shards)
                .map(|b| (b.entries.as_slice(), b.samples.as_slice()))
                .collect()
        };
        let wire = self.cfg.wire();
        for (entries, flat) in parts {
            let mut requests = Vec::new();
            for (id, range) in entries {
                let (id, range) = (*id, range.clone());
                // One lookup per entry; a series seen for the first time is labeled here.
                let slot =
                    match self.cache.entry(id) {
                        hashbrown::hash_map::Entry::Occupied(e) => e.into_mut(),
                        hashbrown::hash_map::Entry::Vacant(v) => {
                            let Some(series) = self.store.head().get(id) else {
                                chunk.missing += range.len() as u64;
                                continue;
                            };
                            let pairs = encode::with_external(&series.labels, &self.external);
                            let encoded = relabel::process(pairs, &self.cfg.write_relabel_configs)
                                .map(|p| match wire {
                                    Wire::V1 => {
                                        Encoded::V1(encode::label_block(&p).into_boxed_slice())
                                    }
                                    Wire::V2 => Encoded::V2(self.interner.refs(&p)),
                                });
                            v.insert(encoded)
                        }
                    };
                let Some(encoded) = slot else {
                    chunk.relabel_dropped += range.len() as u64;
                    continue;
                };
                let mut rest = range;
                while !rest.is_empty() {
                    let pending = match wire {
                        Wire::V1 => self.v1.samples(),
                        Wire::V2 => self.v2.samples(),
                    };
                    let take = rest.start..(rest.start + per_send - pending).min(rest.end);
                    let samples = &flat[take.clone()];
                    let full = match encoded {
                        Encoded::V1(block) => {
                            self.v1.push(block, samples);
                            self.v1.samples() >= per_send
                        }
                        Encoded::V2(refs) => {
                            self.v2.push(refs, samples);
                            self.v2.samples() >= per_send
                        }
                    };
                    rest.start = take.end;
                    if full {
                        requests.push(finish(
                            wire,
                            &mut self.v1,
                            &mut self.v2,
                            &self.interner,
                            &mut self.snappy,
                            &mut self.raw,
                            &mut self.compressed,
                        ));
                    }
                }
            }
            let pending = match wire {
                Wire::V1 => self.v1.samples(),
                Wire::V2 => self.v2.samples(),
            };
            if pending > 0 {
                requests.push(finish(
                    wire,
                    &mut self.v1,
                    &mut self.v2,
                    &self.interner,
                    &mut self.snappy,
                    &mut self.raw,
                    &mut self.compressed,
                ));
            }
            chunk.shards.push(requests);
        }
        self.entries = entries_all;
        self.flat = flat_all;
        self.by_shard = bufs;
        Ok(Some(chunk))
    }
}

/// The request being built, compressed; the builder starts the next one. `raw` and
/// `compressed` are scratch buffers kept across requests, so building a request allocates
/// only its final body.
fn finish(
    wire: Wire,
    v1: &mut encode::RequestBuilder,
    v2: &mut encode_v2::RequestBuilder,
    interner: &encode_v2::Interner,
    snappy: &mut snap::raw::Encoder,
    raw: &mut Vec<u8>,
    compressed: &mut Vec<u8>,
) -> Request {
    let (input, samples, newest) = match wire {
        Wire::V1 => v1.encoded(),
        Wire::V2 => {
            let (n, newest) = v2.encode_into(interner, raw);
            (raw.as_slice(), n, newest)
        }
    };
    let need = snap::raw::max_compress_len(input.len());
    if compressed.len() < need {
        compressed.resize(need, 0);
    }
    let body = match snappy.compress(input, compressed) {
        Ok(n) => Bytes::copy_from_slice(&compressed[..n]),
        // Only for inputs over snappy's 4 GiB bound, which max_samples_per_send excludes.
        Err(e) => {
            tracing::error!(error = %e, "Snappy compression failed.");
            Bytes::new()
        }
    };
    if wire == Wire::V1 {
        v1.clear();
    }
    Request {
        body,
        samples: samples as u64,
        newest,
    }
}

type Built = (ChunkBuilder, Result<Option<Chunk>, StoreError>);

/// Builds the chunk after `after` on a blocking thread, with the builder from `home`.
fn spawn_build(home: &mut Option<ChunkBuilder>, after: i64) -> tokio::task::JoinHandle<Built> {
    let mut builder = home
        .take()
        .expect("the chunk builder is home between builds");
    tokio::task::spawn_blocking(move || {
        let chunk = builder.build(after);
        (builder, chunk)
    })
}

/// One target's forwarder.
pub struct Forwarder {
    cfg: Arc<RemoteWriteConfig>,
    sender: Arc<Sender>,
    store: Arc<Store>,
    metrics: ForwardMetrics,
    board: StatusBoard,
    slot: usize,
    /// Taken by `run` (a mutex only so that `Forwarder` is `Sync`).
    builder: Mutex<Option<ChunkBuilder>>,
}

impl Forwarder {
    pub fn new(
        cfg: RemoteWriteConfig,
        external: &std::collections::BTreeMap<String, String>,
        store: Arc<Store>,
        metrics: ForwardMetrics,
        board: StatusBoard,
    ) -> Result<Self, String> {
        let cfg = Arc::new(cfg);
        let queue = labels_of(&cfg);
        let slot = {
            let mut b = board.lock();
            b.push(TargetStatus {
                name: queue.remote_name.clone(),
                url: queue.url.clone(),
                protobuf_message: cfg.protobuf_message.clone(),
                ..TargetStatus::default()
            });
            b.len() - 1
        };
        let sender = Arc::new(Sender::new(
            cfg.clone(),
            queue.clone(),
            metrics.clone(),
            board.clone(),
            slot,
        )?);
        let reader = store
            .open_reader()
            .map_err(|e| format!("remote_write {}: {e}", cfg.sanitized_url()))?;
        metrics.shards.get_or_create(&queue).set(0);
        metrics
            .shards_max
            .get_or_create(&queue)
            .set(cfg.queue_config.max_shards as i64);
        metrics
            .shards_min
            .get_or_create(&queue)
            .set(cfg.queue_config.min_shards as i64);
        let builder = ChunkBuilder {
            bodies: BodyFilter {
                enabled: cfg.as_received(external),
                unchanged: hashbrown::HashMap::new(),
            },
            cfg: cfg.clone(),
            external: external
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            store: store.clone(),
            reader,
            cache: hashbrown::HashMap::new(),
            interner: encode_v2::Interner::default(),
            v1: encode::RequestBuilder::default(),
            v2: encode_v2::RequestBuilder::default(),
            snappy: snap::raw::Encoder::new(),
            raw: Vec::new(),
            compressed: Vec::new(),
            flat: Vec::new(),
            entries: Vec::new(),
            by_shard: Vec::new(),
            records: Vec::new(),
            lanes: lanes::Lanes::new(cfg.queue_config.max_shards),
        };
        Ok(Self {
            cfg,
            sender,
            store,
            metrics,
            board,
            slot,
            builder: Mutex::new(Some(builder)),
        })
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let queue = self.sender.queue.clone();
        let name = queue.remote_name.clone();
        let mut cursor = self.store.cursor(&name).unwrap_or(0);
        let mut committed = self.store.committed();
        tracing::info!(remote = %name, url = %queue.url, cursor, protobuf_message = %self.cfg.protobuf_message, "Forwarding.");
        let mut read_pos = cursor;
        // The cursor as last saved: saving costs a commit, so it is saved at most every
        // CURSOR_SAVE_EVERY while data flows, when the queue goes idle, and at shutdown.
        let mut saved = cursor;
        let mut last_save = Instant::now();
        // Home of the chunk builder between builds (kept out of `self`, which is shared
        // across awaits and must stay `Sync`).
        let mut home = self.builder.lock().take();
        let mut next: Option<tokio::task::JoinHandle<_>> = None;
        loop {
            let newest = *committed.borrow_and_update();
            // Retention moves the cursor past records dropped for the backlog budget.
            if let Some(c) = self.store.cursor(&name)
                && c > cursor
            {
                cursor = c;
                saved = saved.max(c);
                read_pos = read_pos.max(c);
            }
            self.publish(cursor, newest);
            let handle = match next.take() {
                Some(h) => h,
                None if newest <= read_pos => {
                    if saved != cursor {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            changed = committed.changed() => if changed.is_err() { break },
                            _ = tokio::time::sleep(CURSOR_SAVE_EVERY) => {
                                self.save_cursor(cursor, &mut saved, &mut last_save).await;
                            }
                        }
                    } else {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            changed = committed.changed() => if changed.is_err() { break },
                        }
                    }
                    continue;
                }
                None => spawn_build(&mut home, read_pos),
            };
            let Ok((builder, built)) = handle.await else {
                tracing::error!(remote = %name, "The record reader panicked; forwarding stops for this target.");
                break;
            };
            home = Some(builder);
            let chunk = match built {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(remote = %name, error = %e, "Reading the record log failed; retrying.");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            read_pos = chunk.last_seq;
            // Read and encode the next chunk while this one is sent.
            if *committed.borrow() > read_pos {
                next = Some(spawn_build(&mut home, read_pos));
            }
            if !self.send_chunk(chunk, &shutdown).await {
                break;
            }
            cursor = read_pos;
            if last_save.elapsed() >= CURSOR_SAVE_EVERY {
                self.save_cursor(cursor, &mut saved, &mut last_save).await;
            }
        }
        // What the receiver acknowledged is kept; a chunk cut short is sent again next time.
        if saved != cursor {
            self.save_cursor(cursor, &mut saved, &mut last_save).await;
        }
    }

    async fn save_cursor(&self, cursor: i64, saved: &mut i64, last_save: &mut Instant) {
        let name = &self.sender.queue.remote_name;
        match self.store.set_cursor(name, cursor).await {
            Ok(()) => *saved = cursor,
            Err(e) => {
                tracing::error!(remote = %name, error = %e, "Saving the forward cursor failed.")
            }
        }
        *last_save = Instant::now();
    }

    fn publish(&self, cursor: i64, newest: i64) {
        let queue = &self.sender.queue;
        self.metrics
            .highest_ts
            .set(self.store.highest_timestamp() as f64 / 1000.0);
        self.metrics
            .pending_records
            .get_or_create(queue)
            .set(newest - cursor);
        let mut b = self.board.lock();
        b[self.slot].cursor = cursor;
        b[self.slot].committed = newest;
    }

    /// Sends every shard of `chunk` concurrently; false when shutdown interrupted it.
    async fn send_chunk(&self, chunk: Chunk, shutdown: &CancellationToken) -> bool {
        let queue = &self.sender.queue;
        let shards = chunk.shards.iter().filter(|r| !r.is_empty()).count();
        self.metrics.shards.get_or_create(queue).set(shards as i64);
        self.board.lock()[self.slot].shards = shards;
        let samples: u64 = chunk.shards.iter().flatten().map(|r| r.samples).sum();
        self.metrics
            .pending_samples
            .get_or_create(queue)
            .set(samples as i64);
        if chunk.bodies > 0 {
            self.metrics
                .as_received
                .get_or_create(queue)
                .inc_by(chunk.bodies as u64);
        }
        let dropped = chunk.relabel_dropped + chunk.missing;
        if dropped > 0 {
            self.metrics.dropped.get_or_create(queue).inc_by(dropped);
        }
        if chunk.missing > 0 {
            tracing::warn!(remote = %queue.remote_name, samples = chunk.missing, "Samples of series no longer in the store were not forwarded.");
        }
        let mut work = chunk.shards.into_iter().filter(|r| !r.is_empty());
        if shards <= 1 {
            return match work.next() {
                Some(requests) => {
                    self.sender.send_all(requests, shutdown).await != Sent::Interrupted
                }
                None => true,
            };
        }
        let mut set = tokio::task::JoinSet::new();
        for requests in work {
            let (sender, token) = (self.sender.clone(), shutdown.clone());
            set.spawn(async move { sender.send_all(requests, &token).await });
        }
        let mut complete = true;
        while let Some(done) = set.join_next().await {
            match done {
                Ok(Sent::Interrupted) => complete = false,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(remote = %queue.remote_name, error = %e, "A shard failed.");
                    complete = false;
                }
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests;
