//! Pushgateway-compatible push (Pushgateway 1.5 semantics) feeding the same pipeline as remote
//! write, plus the two extensions Pushgateway refuses: a TTL per group and counter aggregation
//! across pushes (both opt-in per group in the `push` config section).
//!
//! A push is parsed (`text`, `protobuf`, framing in `body`), checked and applied to a copy of
//! its group (`groups`), turned into series for the window with staleness markers for the
//! series it ends (`series`), validated like a remote write (`ingest::remote_write::prepare`)
//! and committed with the group's new state (`persist`) in one store transaction; the answer
//! waits for that commit. Groups are rendered for `GET /metrics` and `GET /api/v1/metrics` by
//! `render`. Changes are planned and queued in order under one lock (the writer then commits
//! them in that order), but the commit is awaited outside it, so concurrent pushes still share
//! group commits.

pub mod body;
pub mod config;
pub mod family;
pub mod grouping;
pub mod groups;
pub mod handler;
pub mod persist;
pub mod protobuf;
pub mod render;
pub mod series;
pub mod text;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as MetricFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{Store, StoreError, WriteBatch, WriteOutcome};
use crate::validate::{LimitsConfig, Rejections};
use config::{Behaviour, CompiledRule, PushConfig};
use grouping::GroupingKey;
use groups::{Group, Groups};

/// Why a push was refused (the `reason` of `promgate_push_rejected_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RejectReason {
    bad_path,
    body_too_large,
    unsupported_encoding,
    invalid_body,
    parse_error,
    too_many_samples,
    timestamps,
    inconsistent,
    invalid_series,
    unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Method {
    put,
    post,
    delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: RejectReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: Method,
}

/// Push self-metrics.
#[derive(Clone, Default)]
pub struct PushMetrics {
    accepted: MetricFamily<MethodLabel, Counter>,
    rejected: MetricFamily<ReasonLabel, Counter>,
    groups: Gauge,
    expired: Counter,
    samples: Counter,
}

impl PushMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("promgate_push");
        r.register(
            "accepted",
            "Pushes applied and committed, by method",
            m.accepted.clone(),
        );
        r.register("rejected", "Pushes refused, by reason", m.rejected.clone());
        r.register("groups", "Pushed groups held", m.groups.clone());
        r.register(
            "groups_expired",
            "Groups deleted because their TTL passed without a push",
            m.expired.clone(),
        );
        r.register(
            "samples",
            "Samples (staleness markers included) written to the window for pushed groups",
            m.samples.clone(),
        );
        m
    }

    pub fn reject(&self, reason: RejectReason) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// Wall-clock time in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// What a push turned into: the answer's kind.
#[derive(Debug)]
pub enum Applied {
    /// Committed.
    Done,
    /// Refused by a check; the failure time was committed. The text is the answer's.
    Refused(RejectReason, String),
}

/// A parsed PUT (`replace`) or POST into group `key`, with the push's own options.
pub struct PushRequest {
    pub key: GroupingKey,
    pub families: Vec<family::Family>,
    pub replace: bool,
    pub overrides: config::Overrides,
}

/// Push errors that are not the sender's fault.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("store unavailable, retry: {0}")]
    Store(#[from] StoreError),
    #[error("promgate is starting: the store is not open yet")]
    NotReady,
}

/// The pushed groups and what changes them.
pub struct PushState {
    pub config: PushConfig,
    rules: Vec<CompiledRule>,
    groups: Mutex<Groups>,
    /// Held while a change is planned and queued to the writer, so changes commit in the
    /// order they were planned.
    order: tokio::sync::Mutex<()>,
    pub metrics: PushMetrics,
}

/// A planned change to one group.
struct Change {
    key: GroupingKey,
    old: Option<Group>,
    new: Option<Group>,
    /// Once `new` is installed: its `last_write_ms`, which identifies that state of the
    /// group (every change of a group writes at a later millisecond).
    installed: Option<i64>,
}

impl PushState {
    pub fn new(config: PushConfig, registry: &mut Registry) -> Self {
        // `Config::validate` has refused bad patterns already.
        let rules = config.compile().unwrap_or_default();
        Self {
            config,
            rules,
            groups: Mutex::new(Groups::default()),
            order: tokio::sync::Mutex::new(()),
            metrics: PushMetrics::register(registry),
        }
    }

    /// What applies to a group: the first matching rule, under the group's own overrides.
    pub fn behaviour(&self, key: &GroupingKey, overrides: config::Overrides) -> Behaviour {
        overrides.apply(config::behaviour(&self.rules, key))
    }

    /// Loads the groups stored in `store`. Blocking.
    pub fn load(&self, store: &Store) -> Result<usize, StoreError> {
        let rows = store.load_push_groups()?;
        let mut groups = self.groups.lock();
        let mut corrupt = 0;
        for row in rows {
            match persist::decode(&row) {
                Ok(g) => {
                    let key = g.key.clone();
                    groups.set(&key, Some(g));
                }
                Err(e) => {
                    corrupt += 1;
                    tracing::error!(error = %e, "A stored push group does not decode; skipped.");
                }
            }
        }
        self.metrics.groups.set(groups.len() as i64);
        if corrupt > 0 {
            tracing::warn!(corrupt, "Some push groups could not be restored.");
        }
        Ok(groups.len())
    }

    /// Reads the groups (for rendering).
    pub fn with_groups<T>(&self, f: impl FnOnce(&Groups) -> T) -> T {
        f(&self.groups.lock())
    }

    /// A PUT or POST of parsed families.
    pub async fn push(
        &self,
        store: &Store,
        limits: &LimitsConfig,
        retention_ms: i64,
        request: PushRequest,
    ) -> Result<Applied, PushError> {
        let PushRequest {
            key,
            families,
            replace,
            overrides,
        } = request;
        let order = self.order.lock().await;
        let now = now_ns();
        let (change, refused, batch) = {
            let mut groups = self.groups.lock();
            let old = groups.take(&key);
            let overrides = old
                .as_ref()
                .map_or(overrides, |o| o.overrides.then(overrides));
            let behaviour = self.behaviour(&key, overrides);
            let planned = groups
                .plan_push(old.as_ref(), &key, families, replace, behaviour, now)
                .map(|mut g| {
                    g.overrides = overrides;
                    g
                });
            let (mut change, mut refused) = match planned {
                Ok(g) => (
                    Change {
                        key: key.clone(),
                        old,
                        new: Some(g),
                        installed: None,
                    },
                    None,
                ),
                Err(e) => {
                    let reason = if e.0.contains("timestamps") {
                        RejectReason::timestamps
                    } else {
                        RejectReason::inconsistent
                    };
                    (
                        Change {
                            key: key.clone(),
                            new: Some(Groups::plan_failure(old.as_ref(), &key, now)),
                            old,
                            installed: None,
                        },
                        Some((reason, e.to_string())),
                    )
                }
            };
            let mut batch = build_batch(store, limits, retention_ms, &mut change, now);
            if refused.is_none() && !batch.1.is_empty() {
                // Series the window refuses (limits, names): the push is refused whole.
                refused = Some((
                    RejectReason::invalid_series,
                    format!("pushed metrics are invalid: {}", batch.1.message()),
                ));
                change.new = Some(Groups::plan_failure(change.old.as_ref(), &key, now));
                batch = build_batch(store, limits, retention_ms, &mut change, now);
            }
            change.installed = change.new.as_ref().map(|g| g.last_write_ms);
            groups.set(&key, change.new.take());
            self.metrics.groups.set(groups.len() as i64);
            (change, refused, batch.0)
        };
        let samples = batch.samples.len() as u64;
        let pending = store.submit(batch).await;
        drop(order);
        let outcome = match pending {
            Ok(rx) => rx.await.map_err(|_| StoreError::Closed).and_then(|r| r),
            Err(e) => Err(e),
        };
        let out = self.finish(change, outcome, samples)?;
        Ok(match refused {
            None if out.rejected.is_empty() => Applied::Done,
            // Limits only the writer can check (series limits) refused some samples: the group
            // is stored, and the sender is told what the window did not take.
            None => Applied::Refused(
                RejectReason::invalid_series,
                format!(
                    "the group was stored, but the window refused {} of its samples: {}",
                    out.rejected.total(),
                    out.rejected.message()
                ),
            ),
            Some((reason, msg)) => Applied::Refused(reason, msg),
        })
    }

    /// DELETE of group `key` (a group that does not exist is no error, as in Pushgateway).
    pub async fn delete(
        &self,
        store: &Store,
        limits: &LimitsConfig,
        retention_ms: i64,
        keys: Option<Vec<GroupingKey>>,
    ) -> Result<(), PushError> {
        let order = self.order.lock().await;
        let now = now_ns();
        let (changes, batch) = {
            let mut groups = self.groups.lock();
            let keys = keys.unwrap_or_else(|| groups.iter().map(|g| g.key.clone()).collect());
            let mut changes = Vec::new();
            let mut batch = WriteBatch::default();
            for key in keys {
                let Some(old) = groups.get(&key).cloned() else {
                    continue;
                };
                let mut change = Change {
                    key: key.clone(),
                    old: Some(old),
                    new: None,
                    installed: None,
                };
                let (b, _) = build_batch(store, limits, retention_ms, &mut change, now);
                merge(&mut batch, b);
                groups.set(&key, None);
                changes.push(change);
            }
            self.metrics.groups.set(groups.len() as i64);
            (changes, batch)
        };
        if changes.is_empty() {
            return Ok(());
        }
        let samples = batch.samples.len() as u64;
        let pending = store.submit(batch).await;
        drop(order);
        let outcome = match pending {
            Ok(rx) => rx.await.map_err(|_| StoreError::Closed).and_then(|r| r),
            Err(e) => Err(e),
        };
        let mut result = Ok(());
        for (i, c) in changes.into_iter().enumerate() {
            let o = match &outcome {
                Ok(_) => Ok(WriteOutcome::default()),
                Err(e) => Err(StoreError::CommitFailed(e.to_string())),
            };
            if let Err(e) = self.finish(c, o, if i == 0 { samples } else { 0 }) {
                result = Err(e);
            }
        }
        result
    }

    /// Deletes the groups whose TTL passed at `now`; returns how many.
    pub async fn expire(&self, store: &Store, limits: &LimitsConfig, retention_ms: i64) -> usize {
        let now = now_ns();
        let expired: Vec<GroupingKey> = self.with_groups(|groups| {
            groups
                .iter()
                .filter(|g| {
                    self.behaviour(&g.key, g.overrides)
                        .ttl_ms
                        .is_some_and(|ttl| {
                            let last = g.push_ns.max(g.push_set_ns);
                            now - last > ttl.saturating_mul(1_000_000)
                        })
                })
                .map(|g| g.key.clone())
                .collect()
        });
        if expired.is_empty() {
            return 0;
        }
        let n = expired.len();
        match self
            .delete(store, limits, retention_ms, Some(expired))
            .await
        {
            Ok(()) => {
                self.metrics.expired.inc_by(n as u64);
                tracing::info!(groups = n, "Push groups expired (TTL).");
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "Expiring push groups failed; retried at the next check.");
                0
            }
        }
    }

    /// Writes every group's current values again (see `republish_interval`).
    pub async fn republish(&self, store: &Store, limits: &LimitsConfig, retention_ms: i64) {
        let order = self.order.lock().await;
        let now = now_ns();
        let batch = {
            let mut groups = self.groups.lock();
            let keys: Vec<GroupingKey> = groups.iter().map(|g| g.key.clone()).collect();
            let mut batch = WriteBatch::default();
            for key in keys {
                let Some(g) = groups.get(&key).cloned() else {
                    continue;
                };
                let mut change = Change {
                    key: key.clone(),
                    old: None,
                    new: Some(g),
                    installed: None,
                };
                let (b, _) = build_batch(store, limits, retention_ms, &mut change, now);
                merge(&mut batch, b);
                groups.set(&key, change.new);
            }
            batch
        };
        if batch.samples.is_empty() {
            return;
        }
        let samples = batch.samples.len() as u64;
        let pending = store.submit(batch).await;
        drop(order);
        match pending {
            Ok(rx) => match rx.await {
                Ok(Ok(_)) => {
                    self.metrics.samples.inc_by(samples);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "Republishing push groups failed."),
                Err(_) => {}
            },
            Err(e) => tracing::warn!(error = %e, "Republishing push groups failed."),
        }
    }

    /// After the commit: counts, or on failure puts the group back as it was (unless a later
    /// change replaced it meanwhile, which then carries the state forward).
    fn finish(
        &self,
        change: Change,
        outcome: Result<WriteOutcome, StoreError>,
        samples: u64,
    ) -> Result<WriteOutcome, PushError> {
        match outcome {
            Ok(out) => {
                self.metrics.samples.inc_by(samples);
                Ok(out)
            }
            Err(e) => {
                let mut groups = self.groups.lock();
                let unchanged = match (groups.get(&change.key), change.installed) {
                    (Some(g), Some(v)) => g.last_write_ms == v,
                    (None, None) => true,
                    _ => false,
                };
                if unchanged {
                    groups.set(&change.key, change.old);
                    self.metrics.groups.set(groups.len() as i64);
                }
                Err(PushError::Store(e))
            }
        }
    }

    pub fn count_accepted(&self, method: Method) {
        self.metrics
            .accepted
            .get_or_create(&MethodLabel { method })
            .inc();
    }
}

/// The store batch for a change: the new group's series and markers for those it ended,
/// validated like a remote write, with the group's row. Stamps the change with a time after
/// the group's previous write (two changes within one millisecond stay in order).
fn build_batch(
    store: &Store,
    limits: &LimitsConfig,
    retention_ms: i64,
    change: &mut Change,
    now: i64,
) -> (WriteBatch, Rejections) {
    let last = change
        .old
        .as_ref()
        .map_or(0, |g| g.last_write_ms)
        .max(change.new.as_ref().map_or(0, |g| g.last_write_ms));
    let t_ms = (now / 1_000_000).max(last + 1);
    if let Some(g) = &mut change.new {
        g.last_write_ms = t_ms;
    }
    let ended = series::ended(change.old.as_ref(), change.new.as_ref());
    let arena = series::Arena::new(change.new.as_ref());
    let decoded = series::decoded(change.new.as_ref(), &arena, &ended, t_ms);
    let prepared =
        crate::ingest::remote_write::prepare(&decoded, store.head(), limits, t_ms, retention_ms);
    let mut batch = prepared.batch;
    let row = change.new.as_ref().map(persist::encode);
    batch
        .push_groups
        .push((persist::encode_key(&change.key), row));
    (batch, prepared.rejected)
}

/// Appends `b` to `a` (entries' sample ranges shifted).
fn merge(a: &mut WriteBatch, b: WriteBatch) {
    let base = a.samples.len() as u32;
    a.samples.extend(b.samples);
    a.entries.extend(b.entries.into_iter().map(|mut e| {
        e.samples = e.samples.start + base..e.samples.end + base;
        e
    }));
    a.metadata.extend(b.metadata);
    a.push_groups.extend(b.push_groups);
}

/// Runs the TTL checks and the republishing until `shutdown`.
pub async fn maintenance_loop(
    state: Arc<crate::app::AppState>,
    store: Arc<Store>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let push = state.push.clone();
    let retention_ms = state.config.storage.retention.as_millis() as i64;
    let has_ttl = push.config.request_options || push.config.groups.iter().any(|g| g.ttl.is_some());
    let mut ttl_tick = tokio::time::interval(std::time::Duration::from_millis(500));
    ttl_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let every = push.config.republish_interval;
    let mut republish = tokio::time::interval(if every.is_zero() {
        std::time::Duration::from_secs(3600)
    } else {
        every
    });
    republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    republish.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ttl_tick.tick(), if has_ttl => {
                push.expire(&store, &state.limits, retention_ms).await;
            }
            _ = republish.tick(), if !every.is_zero() => {
                push.republish(&store, &state.limits, retention_ms).await;
            }
        }
    }
}
