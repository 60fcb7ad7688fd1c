//! Rule evaluation on a schedule, over the store: each group runs on its own task, at ticks
//! aligned to its interval and offset by a hash of (file, group) as Prometheus does, so groups
//! spread over the interval and a restart keeps the same phase. A tick that comes while the
//! previous evaluation still runs is skipped and counted, never replayed. Evaluation itself
//! (`rules_engine::rules::group::Group::eval_one`) runs on a blocking thread; recorded samples
//! and `ALERTS`/`ALERTS_FOR_STATE` go through the store like any write, so they are durable and
//! forwarded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rules_engine::promql::{Engine, EvalLimits, Stop};
use rules_engine::rules::alerting::AlertContext;
use rules_engine::rules::group::Group;
use rules_engine::rules::{RuleGroup, load_rule_file};
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// A group as the scheduler runs it, shared with the API.
pub struct ScheduledGroup {
    pub group: Group,
    /// The interval it runs at (its own, else the global one).
    pub interval: Duration,
    /// Seconds each rule's last evaluation took.
    pub rule_durations: Vec<f64>,
    /// Seconds the whole last evaluation took, and when it ran (ms).
    pub last_duration: f64,
    pub last_eval: Option<i64>,
    /// Whether alert state is already in place (carried over on reload, or restored from
    /// `ALERTS_FOR_STATE` at the first evaluation).
    pub restored: bool,
}

/// The scheduled groups, in file order, for `/api/v1/rules` and `/api/v1/alerts`.
pub type Groups = Vec<Arc<Mutex<ScheduledGroup>>>;

/// Loads every rule file; returns all errors, each naming file, group and rule.
pub fn load(files: &[std::path::PathBuf]) -> Result<Vec<RuleGroup>, Vec<String>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match load_rule_file(f) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for g in &groups {
        if !seen.insert((g.file.clone(), g.name.clone())) {
            errors.push(format!(
                "{}: groupname: \"{}\" is repeated in the same file",
                g.file, g.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GroupLabel {
    rule_group: String,
}

/// Rule evaluation self-metrics.
#[derive(Clone, Default)]
pub struct RuleMetrics {
    evaluations: Family<GroupLabel, Counter>,
    failures: Family<GroupLabel, Counter>,
    missed: Family<GroupLabel, Counter>,
    last_duration: Family<GroupLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    last_eval: Family<GroupLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl RuleMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("rule_group");
        r.register(
            "evaluations",
            "Evaluations of rule groups",
            m.evaluations.clone(),
        );
        r.register(
            "evaluation_failures",
            "Rule evaluations that failed, per group",
            m.failures.clone(),
        );
        r.register(
            "iterations_missed",
            "Ticks skipped because the previous evaluation was still running",
            m.missed.clone(),
        );
        r.register(
            "last_duration_seconds",
            "Duration of the group's last evaluation",
            m.last_duration.clone(),
        );
        r.register(
            "last_evaluation_timestamp_seconds",
            "When the group was last evaluated",
            m.last_eval.clone(),
        );
        m
    }
}

/// Milliseconds of the tick at or before `now` for a group with this interval and offset.
fn aligned(now: i64, interval: i64, offset: i64) -> i64 {
    (now - offset).div_euclid(interval) * interval + offset
}

/// A group's offset inside its interval (ms), as Prometheus computes it
/// (`rules.Group.EvalTimestamp`): the hash of the label set `{file, name}` (XXH64 over
/// `file\xff<file>\xffname\xff<name>\xff`) modulo the interval in nanoseconds. The same
/// file path and group name give the same phase as a Prometheus evaluating the same file, so
/// both evaluate at the same timestamps.
fn offset_of(group: &RuleGroup, interval: i64) -> i64 {
    let mut key = Vec::with_capacity(group.file.len() + group.name.len() + 12);
    for (name, value) in [("file", &group.file), ("name", &group.name)] {
        key.extend_from_slice(name.as_bytes());
        key.push(0xff);
        key.extend_from_slice(value.as_bytes());
        key.push(0xff);
    }
    let interval_ns = u64::try_from(interval).unwrap_or(1).max(1) * 1_000_000;
    ((xxhash_rust::xxh64::xxh64(&key, 0) % interval_ns) / 1_000_000) as i64
}

/// A running group: its task and what it was started from.
struct Running {
    key: (String, String),
    fingerprint: String,
    group: Arc<Mutex<ScheduledGroup>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts, reloads and stops the rule groups.
pub struct RuleManager {
    global_interval: Duration,
    ctx: AlertContext,
    store: Arc<Store>,
    metrics: RuleMetrics,
    shutdown: CancellationToken,
    running: Mutex<Vec<Running>>,
    /// Where alerts go after each evaluation (none when alerting is off).
    alerts: Option<AlertHook>,
}

/// Alert delivery and the per-alert send state for the rule alerts.
pub type AlertHook = (
    Arc<crate::alerting::Alerting>,
    Arc<crate::alerting::intake::RuleAlerts>,
);

impl RuleManager {
    pub fn new(
        global_interval: Duration,
        ctx: AlertContext,
        store: Arc<Store>,
        metrics: RuleMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            global_interval,
            ctx,
            store,
            metrics,
            shutdown,
            running: Mutex::new(Vec::new()),
            alerts: None,
        }
    }

    /// Sends the groups' alerts to `alerting` after every evaluation.
    pub fn with_alerting(mut self, alerting: Arc<crate::alerting::Alerting>) -> Self {
        self.alerts = Some((alerting, Arc::new(Default::default())));
        self
    }

    /// The groups as they run now.
    pub fn groups(&self) -> Groups {
        self.running
            .lock()
            .iter()
            .map(|r| r.group.clone())
            .collect()
    }

    /// Runs `specs`: a group whose definition is unchanged keeps running as it is; a changed
    /// group restarts with the state of its rules carried over; groups no longer defined stop.
    /// Returns (kept, started, stopped).
    pub fn apply(&self, specs: Vec<RuleGroup>) -> (usize, usize, usize) {
        let mut old: Vec<Running> = std::mem::take(&mut *self.running.lock());
        let mut next = Vec::with_capacity(specs.len());
        let (mut kept, mut started) = (0, 0);
        for spec in specs {
            let key = (spec.file.clone(), spec.name.clone());
            let fingerprint = Group::fingerprint(&spec);
            let pos = old.iter().position(|r| r.key == key);
            match pos.map(|p| old.remove(p)) {
                Some(r) if r.fingerprint == fingerprint => {
                    next.push(r);
                    kept += 1;
                }
                previous => {
                    let mut group = Group::new(spec);
                    if let Some(prev) = previous {
                        prev.cancel.cancel();
                        group.copy_state_from(&prev.group.lock().group);
                    }
                    next.push(self.start(key, fingerprint, group));
                    started += 1;
                }
            }
        }
        let stopped = old.len();
        for r in old {
            r.cancel.cancel();
        }
        *self.running.lock() = next;
        (kept, started, stopped)
    }

    fn start(&self, key: (String, String), fingerprint: String, group: Group) -> Running {
        let interval = if group.spec.interval_ms > 0 {
            Duration::from_millis(group.spec.interval_ms as u64)
        } else {
            self.global_interval
        };
        let n = group.spec.rules.len();
        let restored = group.states.iter().any(|s| s.last_eval.is_some());
        let g = Arc::new(Mutex::new(ScheduledGroup {
            group,
            interval,
            rule_durations: vec![0.0; n],
            last_duration: 0.0,
            last_eval: None,
            restored,
        }));
        let cancel = self.shutdown.child_token();
        let task = tokio::spawn(run(
            g.clone(),
            self.ctx.clone(),
            self.store.clone(),
            self.metrics.clone(),
            self.alerts.clone(),
            cancel.clone(),
        ));
        Running {
            key,
            fingerprint,
            group: g,
            cancel,
            task,
        }
    }

    /// Stops every group and waits for evaluations under way to finish.
    pub async fn stop(&self) {
        let running: Vec<Running> = std::mem::take(&mut *self.running.lock());
        for r in &running {
            r.cancel.cancel();
        }
        for r in running {
            let _ = r.task.await;
        }
    }
}

async fn run(
    g: Arc<Mutex<ScheduledGroup>>,
    ctx: AlertContext,
    store: Arc<Store>,
    metrics: RuleMetrics,
    alerts: Option<AlertHook>,
    shutdown: CancellationToken,
) {
    let (interval, offset, label) = {
        let sg = g.lock();
        let iv = sg.interval.as_millis().max(1) as i64;
        (
            iv,
            offset_of(&sg.group.spec, iv),
            GroupLabel {
                rule_group: format!("{};{}", sg.group.spec.file, sg.group.spec.name),
            },
        )
    };
    let ctx = Arc::new(ctx);
    let mut last_ts: Option<i64> = None;
    loop {
        let now = crate::serve::now_ms();
        let next = aligned(now, interval, offset) + interval;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)) => {}
        }
        let ts = aligned(crate::serve::now_ms(), interval, offset);
        if let Some(prev) = last_ts {
            let missed = (ts - prev) / interval - 1;
            if missed > 0 {
                metrics.missed.get_or_create(&label).inc_by(missed as u64);
                tracing::warn!(group = %label.rule_group, missed, "Rule group evaluation fell behind; missed ticks were skipped.");
            }
            if ts <= prev {
                continue;
            }
        }
        last_ts = Some(ts);
        let (g2, store2, ctx2, alerts2) = (g.clone(), store.clone(), ctx.clone(), alerts.clone());
        let budget = Duration::from_millis(interval as u64);
        let span = tracing::info_span!("rule_group", group = %label.rule_group, scheduled_ts = ts);
        let failures = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let started = Instant::now();
            let engine = Engine::new(EvalLimits {
                default_subquery_step: budget,
                ..EvalLimits::default()
            })
            .with_stop_check(Arc::new(move || {
                (started.elapsed() > budget).then_some(Stop::Timeout)
            }));
            let mut sg = g2.lock();
            if !sg.restored {
                restore_alerts(&mut sg.group, &store2, ts);
                sg.restored = true;
            }
            let mut failures = 0u64;
            for i in 0..sg.group.spec.rules.len() {
                let t0 = Instant::now();
                if let Err(e) = sg.group.eval_one(i, &engine, &*store2, &*store2, ts, &ctx2) {
                    failures += 1;
                    tracing::warn!(rule = sg.group.spec.rules[i].name(), error = %e, "Rule evaluation failed.");
                }
                sg.rule_durations[i] = t0.elapsed().as_secs_f64();
            }
            sg.last_duration = started.elapsed().as_secs_f64();
            sg.last_eval = Some(ts);
            if let Some((alerting, sent)) = &alerts2 {
                sent.after_eval(
                    alerting,
                    &sg.group,
                    sg.interval,
                    ts,
                    &ctx2.external_labels,
                    &ctx2.external_url,
                );
            }
            (failures, sg.last_duration)
        })
        .await;
        match failures {
            Ok((failures, duration)) => {
                metrics.evaluations.get_or_create(&label).inc();
                metrics.failures.get_or_create(&label).inc_by(failures);
                metrics.last_duration.get_or_create(&label).set(duration);
                metrics
                    .last_eval
                    .get_or_create(&label)
                    .set(ts as f64 / 1000.0);
            }
            Err(e) => {
                tracing::error!(group = %label.rule_group, error = %e, "Rule group evaluation panicked.")
            }
        }
    }
}

/// How far back a restart may be for alerts to keep their state (Prometheus's
/// `--rules.alert.for-outage-tolerance`).
const OUTAGE_TOLERANCE_MS: i64 = 3_600_000;

/// Seeds each alerting rule's alerts from its `ALERTS_FOR_STATE` series in the store, so an
/// alert that was pending or firing before a restart keeps its original `activeAt` (and fires
/// at the first evaluation if `for` has elapsed since). Unlike Prometheus, which restores only
/// rules whose `for` exceeds a 10-minute grace period, every rule with a `for` is restored:
/// promgate's store keeps `ALERTS_FOR_STATE` durably, so the state is known.
fn restore_alerts(group: &mut Group, store: &Store, ts: i64) {
    use promql_parser::label::{MatchOp, Matcher};
    use rules_engine::model::{METRIC_NAME, is_stale_nan};
    use rules_engine::rules::Rule;
    use rules_engine::storage::TimeRange;

    let range = TimeRange::new(ts - OUTAGE_TOLERANCE_MS, ts);
    for (rule, state) in group.spec.rules.iter().zip(group.states.iter_mut()) {
        let Rule::Alerting(a) = rule else { continue };
        if a.for_ms == 0 {
            continue;
        }
        let matchers = [
            Matcher::new(MatchOp::Equal, METRIC_NAME, "ALERTS_FOR_STATE"),
            Matcher::new(MatchOp::Equal, "alertname", &a.alert),
        ];
        let mut restored = 0;
        for series in store.select_series(&matchers, range) {
            let Some(last) = series.samples.last() else {
                continue;
            };
            if is_stale_nan(last.v) {
                continue;
            }
            state.alerts.restore(
                series.labels.without_metric_name(),
                (last.v * 1000.0) as i64,
            );
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(alert = %a.alert, restored, "Restored alert state from ALERTS_FOR_STATE.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_align_to_interval_and_offset() {
        assert_eq!(aligned(125_000, 60_000, 7_000), 67_000);
        assert_eq!(aligned(127_000, 60_000, 7_000), 127_000);
        assert_eq!(aligned(5_000, 60_000, 7_000), -53_000);
        let g = RuleGroup {
            name: "a".into(),
            file: "f.yml".into(),
            interval_ms: 0,
            limit: 0,
            rules: vec![],
        };
        let o = offset_of(&g, 60_000);
        assert!((0..60_000).contains(&o));
        assert_eq!(o, offset_of(&g, 60_000), "stable across restarts");
    }
}
