//! The dispatcher: alerts are merged into one store by fingerprint (`provider/mem`), routed,
//! and held in aggregation groups, one per (route, group labels), as in Alertmanager 0.25's
//! `dispatch/dispatch.go`:
//!
//! - a new group flushes after `group_wait` (at once if an alert's `startsAt` is already older
//!   than `group_wait`), then every `group_interval`;
//! - a flush mutes inhibited and silenced alerts, and for each integration of the receiver asks
//!   the notification log whether anything changed (`DedupStage.needsUpdate`): new firing
//!   alerts, newly resolved ones (with `send_resolved`), everything resolved, or
//!   `repeat_interval` elapsed;
//! - a decided notification and its log entry are written to the outbox in one transaction
//!   (so a restart neither loses it nor sends it again), then resolved alerts leave the group;
//!   empty groups are removed by a maintenance pass every 30 s.
//!
//! Beyond Alertmanager, both opt-in ([`NotificationSettings`]): `resolve_immediately` flushes a
//! group as soon as all its alerts are resolved, and `min_refire_interval` holds back a
//! re-fire that follows a group's resolved notification too closely.
//!
//! Time comes from a [`Clock`] and timers from `tokio::time`, so tests run with paused time.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::alert::{Alert, LabelSet, label_set_string};
use super::config::NotificationSettings;
use super::db::{Db, Enqueue, IntegrationKey, LogEntry};
use super::inhibit::Inhibitor;
use super::metrics::AlertingMetrics;
use super::outbox::Outbox;
use super::route::{Route, RouteOpts};
use super::silence::Silences;

/// Wall-clock time for alert timestamps. `Anchored` advances with `tokio::time`, so tests with
/// paused time see wall time move exactly as their timers do.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    Anchored(DateTime<Utc>, Instant),
}

impl Clock {
    pub fn anchored(at: DateTime<Utc>) -> Self {
        Clock::Anchored(at, Instant::now())
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Anchored(t, i) => {
                *t + chrono::Duration::from_std(i.elapsed()).unwrap_or_default()
            }
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// What an outbox row carries: enough to rebuild the notifiers' `Data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredNotification {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: LabelSet,
    pub external_url: String,
    pub alerts: Vec<StoredAlert>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: DateTime<Utc>,
    /// Set only for alerts resolved at the flush.
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
}

impl StoredNotification {
    /// The template data the integrations render, alerts in Alertmanager's order.
    pub fn to_data(&self) -> notifiers::Data {
        use notifiers::data::{Alert as NAlert, KV, Status};
        let mut alerts: Vec<NAlert> = self
            .alerts
            .iter()
            .map(|a| {
                NAlert::new(
                    if a.ends_at.is_some() {
                        Status::Resolved
                    } else {
                        Status::Firing
                    },
                    KV(a.labels.clone()),
                    KV(a.annotations.clone()),
                    a.starts_at,
                    a.ends_at,
                    a.generator_url.clone(),
                )
            })
            .collect();
        notifiers::data::sort_alerts(&mut alerts);
        notifiers::Data::new(
            &self.receiver,
            self.group_key.clone(),
            KV(self.group_labels.clone()),
            alerts,
            self.external_url.clone(),
        )
    }
}

/// An integration as the dispatcher needs to know it.
#[derive(Clone, Debug)]
pub struct IntegrationInfo {
    pub key: IntegrationKey,
    pub send_resolved: bool,
}

/// The routing configuration in force.
pub struct Routing {
    pub tree: Route,
    pub receivers: HashMap<String, Vec<IntegrationInfo>>,
    pub inhibitor: Inhibitor,
    pub external_url: String,
}

type GroupId = (usize, u64);

/// An alert as `GET /api/v2/alerts` shows it.
pub struct AlertView {
    pub alert: Alert,
    pub receivers: Vec<String>,
    pub silenced_by: Vec<String>,
    /// Fingerprints of the inhibiting alerts.
    pub inhibited_by: Vec<String>,
}

struct Group {
    route: usize,
    labels: LabelSet,
    key: String,
    alerts: HashMap<u64, Alert>,
    has_flushed: bool,
    next: Instant,
}

struct State {
    routing: Routing,
    /// `flatten()` of the tree, by route index.
    opts: Vec<RouteOpts>,
    alerts: HashMap<u64, Alert>,
    groups: HashMap<GroupId, Group>,
    schedule: BTreeSet<(Instant, GroupId)>,
    log: HashMap<(String, IntegrationKey), LogEntry>,
}

impl State {
    fn reschedule(&mut self, id: GroupId, at: Instant) {
        if let Some(g) = self.groups.get_mut(&id) {
            self.schedule.remove(&(g.next, id));
            g.next = at;
            self.schedule.insert((at, id));
        }
    }
}

pub struct Dispatcher {
    state: Mutex<State>,
    wake: Notify,
    clock: Clock,
    settings: NotificationSettings,
    db: Arc<Db>,
    outbox: Arc<Outbox>,
    silences: Arc<Mutex<Silences>>,
    metrics: AlertingMetrics,
}

/// How often empty groups are removed and old resolved alerts forgotten.
const MAINTENANCE: Duration = Duration::from_secs(30);
/// Resolved alerts stay in the store this long (Alertmanager's GC runs every 30 minutes).
const RESOLVED_KEEP: chrono::Duration = chrono::Duration::minutes(30);
/// Notification log retention (Alertmanager's `--data.retention`).
const LOG_RETENTION_MS: i64 = 120 * 3600 * 1000;

/// Alertmanager's `hashAlert`: a hash of the sorted label pairs, the identity the
/// notification log keeps.
pub fn hash_alert(labels: &LabelSet) -> u64 {
    let mut b = Vec::with_capacity(64);
    for (k, v) in labels {
        b.extend_from_slice(k.as_bytes());
        b.push(0xff);
        b.extend_from_slice(v.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(&b)
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        routing: Routing,
        log: HashMap<(String, IntegrationKey), LogEntry>,
        clock: Clock,
        settings: NotificationSettings,
        db: Arc<Db>,
        outbox: Arc<Outbox>,
        silences: Arc<Mutex<Silences>>,
        metrics: AlertingMetrics,
    ) -> Self {
        let opts = routing
            .tree
            .flatten()
            .iter()
            .map(|r| r.opts.clone())
            .collect();
        Self {
            state: Mutex::new(State {
                routing,
                opts,
                alerts: HashMap::new(),
                groups: HashMap::new(),
                schedule: BTreeSet::new(),
                log,
            }),
            wake: Notify::new(),
            clock,
            settings,
            db,
            outbox,
            silences,
            metrics,
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Takes alerts in (`Alerts.Put` then `processAlert` for every matching route).
    pub fn put(&self, alerts: Vec<Alert>) {
        let now = self.clock.now();
        let now_i = Instant::now();
        let mut st = self.state.lock();
        let mut changed = false;
        for mut alert in alerts {
            let fp = alert.fingerprint();
            let was_firing = st.alerts.get(&fp).is_some_and(|old| !old.resolved_at(now));
            if let Some(old) = st.alerts.get(&fp)
                && old.overlaps(&alert)
            {
                alert = old.merge(&alert);
            }
            if !was_firing && !alert.resolved_at(now) {
                self.metrics.alert_triggered(&alert.labels);
            }
            st.routing.inhibitor.observe(&alert);
            st.alerts.insert(fp, alert.clone());
            let routes: Vec<(usize, LabelSet, String)> = st
                .routing
                .tree
                .matches(&alert.labels)
                .iter()
                .map(|r| (r.index, r.group_labels(&alert.labels), r.key.clone()))
                .collect();
            for (route, labels, route_key) in routes {
                let id = (route, super::alert::fingerprint(&labels));
                let opts = st.opts[route].clone();
                if let std::collections::hash_map::Entry::Vacant(v) = st.groups.entry(id) {
                    let next = now_i + opts.group_wait;
                    let key = format!("{route_key}:{}", label_set_string(&labels));
                    v.insert(Group {
                        route,
                        labels,
                        key,
                        alerts: HashMap::new(),
                        has_flushed: false,
                        next,
                    });
                    st.schedule.insert((next, id));
                    changed = true;
                }
                let Some(g) = st.groups.get_mut(&id) else {
                    continue;
                };
                g.alerts.insert(fp, alert.clone());
                let wait = chrono::Duration::from_std(opts.group_wait).unwrap_or_default();
                let flush_now = (!g.has_flushed && alert.starts_at + wait < now)
                    || (g.has_flushed
                        && self.settings.resolve_immediately
                        && alert.resolved_at(now)
                        && g.alerts.values().all(|a| a.resolved_at(now)));
                if flush_now && g.next > now_i {
                    st.reschedule(id, now_i);
                    changed = true;
                }
            }
        }
        drop(st);
        if changed {
            self.wake.notify_one();
        }
    }

    /// The alerts in the store, for the API: each with its receivers, and what mutes it now.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = self.clock.now();
        let st = self.state.lock();
        let silences = self.silences.lock();
        st.alerts
            .values()
            .map(|a| {
                // One entry per matching route, duplicates included, as Alertmanager lists.
                let receivers: Vec<String> = st
                    .routing
                    .tree
                    .matches(&a.labels)
                    .iter()
                    .map(|r| r.opts.receiver.clone())
                    .collect();
                let silenced = silences.mutes(&a.labels, now);
                let inhibited = st
                    .routing
                    .inhibitor
                    .mutes(&a.labels, now)
                    .map(|fp| vec![format!("{fp:016x}")])
                    .unwrap_or_default();
                AlertView {
                    alert: a.clone(),
                    receivers,
                    silenced_by: silenced,
                    inhibited_by: inhibited,
                }
            })
            .collect()
    }

    /// Runs the group timers until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut maintenance = tokio::time::interval(MAINTENANCE);
        maintenance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let next = self.state.lock().schedule.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep => self.flush_due().await,
                _ = self.wake.notified() => {}
                _ = maintenance.tick() => self.maintain().await,
            }
        }
    }

    /// Flushes every group whose timer has expired.
    pub async fn flush_due(&self) {
        let now_i = Instant::now();
        let now = self.clock.now();
        let mut batch = Vec::new();
        {
            let mut st = self.state.lock();
            let silences = self.silences.lock();
            while let Some(&(t, id)) = st.schedule.first() {
                if t > now_i {
                    break;
                }
                st.schedule.pop_first();
                self.flush(&mut st, &silences, id, now, now_i, &mut batch);
            }
        }
        if batch.is_empty() {
            return;
        }
        self.commit(batch, now).await;
    }

    /// Writes decided notifications and log entries, then hands the rows to delivery.
    async fn commit(&self, batch: Vec<Enqueue>, now: DateTime<Utc>) {
        let db = self.db.clone();
        let now_ms = now.timestamp_millis();
        let entries: Vec<(String, IntegrationKey, LogEntry)> = batch
            .iter()
            .map(|e| (e.group_key.clone(), e.key.clone(), e.entry.clone()))
            .collect();
        match tokio::task::spawn_blocking(move || db.enqueue(&batch, now_ms)).await {
            Ok(Ok(rows)) => {
                {
                    let mut st = self.state.lock();
                    for (gk, key, entry) in entries {
                        st.log.insert((gk, key), entry);
                    }
                }
                self.outbox.submit(rows);
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Writing notifications to the outbox failed; the groups will be flushed again at their next interval.")
            }
            Err(e) => tracing::error!(error = %e, "Outbox write task failed."),
        }
    }

    fn flush(
        &self,
        st: &mut State,
        silences: &Silences,
        id: GroupId,
        now: DateTime<Utc>,
        now_i: Instant,
        batch: &mut Vec<Enqueue>,
    ) {
        let Some(g) = st.groups.get_mut(&id) else {
            return;
        };
        let opts = &st.opts[g.route];
        g.has_flushed = true;
        let mut next = now_i + opts.group_interval;
        // Alerts as notified: firing ones have no end yet (Alertmanager clears `endsAt` so
        // they don't resolve as time moves on).
        let snapshot: Vec<Alert> = g.alerts.values().cloned().collect();
        let shown: Vec<&Alert> = snapshot
            .iter()
            .filter(|a| {
                st.routing.inhibitor.mutes(&a.labels, now).is_none()
                    && silences.mutes(&a.labels, now).is_empty()
            })
            .collect();
        let mut firing = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for a in &shown {
            if a.resolved_at(now) {
                resolved.insert(hash_alert(&a.labels));
            } else {
                firing.insert(hash_alert(&a.labels));
            }
        }
        let repeat = chrono::Duration::from_std(opts.repeat_interval).unwrap_or_default();
        let min_refire =
            chrono::Duration::from_std(self.settings.min_refire_interval).unwrap_or_default();
        let receiver = opts.receiver.clone();
        let integrations = st
            .routing
            .receivers
            .get(&receiver)
            .cloned()
            .unwrap_or_default();
        for integ in integrations {
            let entry = st.log.get(&(g.key.clone(), integ.key.clone()));
            if !needs_update(entry, &firing, &resolved, integ.send_resolved, repeat, now) {
                continue;
            }
            if let Some(e) = entry
                && !min_refire.is_zero()
                && e.firing.is_empty()
                && !firing.is_empty()
            {
                let until =
                    DateTime::<Utc>::from_timestamp_millis(e.ts_ms).unwrap_or(now) + min_refire;
                if until > now {
                    let wait = (until - now).to_std().unwrap_or_default();
                    next = next.min(now_i + wait);
                    self.metrics.refire_held(&integ.key);
                    continue;
                }
            }
            let send: Vec<&&Alert> = shown
                .iter()
                .filter(|a| integ.send_resolved || !a.resolved_at(now))
                .collect();
            let body = if send.is_empty() {
                None
            } else {
                let n = StoredNotification {
                    receiver: receiver.clone(),
                    group_key: g.key.clone(),
                    group_labels: g.labels.clone(),
                    external_url: st.routing.external_url.clone(),
                    alerts: send
                        .iter()
                        .map(|a| StoredAlert {
                            labels: a.labels.clone(),
                            annotations: a.annotations.clone(),
                            starts_at: a.starts_at,
                            ends_at: a.resolved_at(now).then_some(a.ends_at),
                            generator_url: a.generator_url.clone(),
                        })
                        .collect(),
                };
                serde_json::to_string(&n).ok()
            };
            batch.push(Enqueue {
                key: integ.key.clone(),
                group_key: g.key.clone(),
                entry: LogEntry {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    ts_ms: now.timestamp_millis(),
                },
                body,
            });
        }
        // Resolved alerts are done with once notified (`DeleteIfNotModified`).
        for a in snapshot.iter().filter(|a| a.resolved_at(now)) {
            let fp = a.fingerprint();
            if g.alerts
                .get(&fp)
                .is_some_and(|cur| cur.updated_at == a.updated_at)
            {
                g.alerts.remove(&fp);
            }
        }
        g.next = next;
        st.schedule.insert((next, id));
    }

    /// Removes empty groups, old resolved alerts and old log entries.
    async fn maintain(&self) {
        let now = self.clock.now();
        {
            let mut st = self.state.lock();
            let empty: Vec<(Instant, GroupId)> = st
                .groups
                .iter()
                .filter(|(_, g)| g.alerts.is_empty())
                .map(|(id, g)| (g.next, *id))
                .collect();
            for (next, id) in empty {
                st.schedule.remove(&(next, id));
                st.groups.remove(&id);
            }
            st.alerts
                .retain(|_, a| !(a.resolved_at(now) && a.ends_at + RESOLVED_KEEP < now));
            st.routing.inhibitor.gc(now);
            let cutoff = now.timestamp_millis() - LOG_RETENTION_MS;
            st.log.retain(|_, e| e.ts_ms >= cutoff);
            self.metrics.set_groups(st.groups.len(), st.alerts.len());
        }
        let db = self.db.clone();
        let cutoff = now.timestamp_millis() - LOG_RETENTION_MS;
        let done = tokio::task::spawn_blocking(move || {
            db.gc_log(cutoff)?;
            db.checkpoint()
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "Alerting database maintenance failed.");
        }
    }

    /// The groups, for `GET /api/v2/alerts/groups`: (labels, receiver, alerts).
    pub fn groups(&self) -> Vec<(LabelSet, String, Vec<Alert>)> {
        let st = self.state.lock();
        st.groups
            .values()
            .filter(|g| !g.alerts.is_empty())
            .map(|g| {
                (
                    g.labels.clone(),
                    st.opts[g.route].receiver.clone(),
                    g.alerts.values().cloned().collect(),
                )
            })
            .collect()
    }
}

/// `DedupStage.needsUpdate` of Alertmanager 0.25.
pub fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat: chrono::Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.ts_ms < (now - repeat).timestamp_millis()
}

#[cfg(test)]
mod tests;
