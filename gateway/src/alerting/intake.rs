//! Alerts from promgate's own rules, sent the way Prometheus 2.42's rule manager and notifier
//! send them (`rules/alerting.go` `sendAlerts`, `cmd/prometheus/main.go` `sendAlerts`,
//! `notifier/notifier.go`): after each group evaluation, every firing alert not sent within
//! `resend_delay`, and every alert resolved since it was last sent (resolved alerts are kept,
//! and re-sent, for 15 minutes); `startsAt` is when it fired, `endsAt` the resolve time or
//! `now + 4 × max(resend_delay, group interval)` for a firing alert; external labels are added
//! where the alert lacks them. They go into promgate's dispatcher and, through a bounded queue,
//! to the downstream Alertmanagers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use notifiers::alertmanager::{AlertmanagerClient, PostableAlert};
use notifiers::data::KV;
use parking_lot::Mutex;
use rules_engine::rules::Rule;
use rules_engine::rules::alerting::AlertState;
use rules_engine::rules::group::Group;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Alerting;
use super::alert::{Alert, LabelSet};
use super::metrics::AlertingMetrics;

/// Batches waiting for the downstream Alertmanagers (Prometheus's notifier queue holds 10,000
/// alerts; a batch here is one group evaluation's alerts).
const DOWNSTREAM_QUEUE: usize = 1000;

/// The sender to downstream Alertmanagers.
#[derive(Clone)]
pub struct Downstream {
    tx: Option<mpsc::Sender<Vec<PostableAlert>>>,
    metrics: AlertingMetrics,
}

impl Downstream {
    pub fn start(
        clients: Vec<AlertmanagerClient>,
        metrics: AlertingMetrics,
        shutdown: CancellationToken,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if clients.is_empty() {
            return (Self { tx: None, metrics }, None);
        }
        let (tx, mut rx) = mpsc::channel::<Vec<PostableAlert>>(DOWNSTREAM_QUEUE);
        let clients = Arc::new(clients);
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    b = rx.recv() => match b { Some(b) => b, None => return },
                };
                // Each Alertmanager set in turn, as Prometheus's notifier sends to all.
                for c in clients.iter() {
                    match c.send(&batch).await {
                        Ok(()) => m.downstream(batch.len(), false),
                        Err(e) => {
                            m.downstream(batch.len(), true);
                            tracing::warn!(alertmanagers = ?c.urls(), error = %e, count = batch.len(), "Sending alerts to Alertmanager failed.");
                        }
                    }
                }
            }
        });
        (
            Self {
                tx: Some(tx),
                metrics,
            },
            Some(task),
        )
    }

    pub fn send(&self, alerts: Vec<PostableAlert>) {
        let Some(tx) = &self.tx else { return };
        let n = alerts.len();
        if tx.try_send(alerts).is_err() {
            self.metrics.downstream_dropped(n);
            tracing::warn!(count = n, "Alertmanager queue full; alerts dropped.");
        }
    }
}

/// When each rule alert was last sent, by (group, alert labels).
#[derive(Default)]
pub struct RuleAlerts {
    last_sent: Mutex<HashMap<(String, u64), i64>>,
}

impl RuleAlerts {
    /// Sends what an evaluation of `group` at `ts` (ms) calls for to the dispatcher and the
    /// downstream Alertmanagers.
    pub fn after_eval(
        &self,
        alerting: &Alerting,
        group: &Group,
        interval: Duration,
        ts: i64,
        external_labels: &rules_engine::Labels,
        external_url: &str,
    ) {
        let (out, postable) = self.due(
            group,
            interval,
            alerting.settings.resend_delay,
            ts,
            external_labels,
            external_url,
            alerting.clock.now(),
        );
        if out.is_empty() {
            return;
        }
        alerting.metrics.received("rules", out.len());
        if let Some(d) = &alerting.dispatcher {
            d.put(out);
        }
        alerting.downstream.send(postable);
    }

    /// The alerts of `group` due for sending after its evaluation at `ts` (ms), as the
    /// dispatcher and as Alertmanager's API take them; records them as sent.
    #[allow(clippy::too_many_arguments)]
    pub fn due(
        &self,
        group: &Group,
        interval: Duration,
        resend_delay: Duration,
        ts: i64,
        external_labels: &rules_engine::Labels,
        external_url: &str,
        now: DateTime<Utc>,
    ) -> (Vec<Alert>, Vec<PostableAlert>) {
        let resend = resend_delay.as_millis() as i64;
        let delta = resend.max(interval.as_millis() as i64);
        let gid = format!("{};{}", group.spec.file, group.spec.name);
        let mut last = self.last_sent.lock();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let mut postable = Vec::new();
        for (rule, state) in group.spec.rules.iter().zip(group.states.iter()) {
            let Rule::Alerting(r) = rule else { continue };
            let generator_url = format!(
                "{}/graph?g0.expr={}&g0.tab=1",
                external_url.trim_end_matches('/'),
                query_escape(&r.expr.to_string())
            );
            for a in state.alerts.all_alerts() {
                if a.state == AlertState::Pending {
                    continue;
                }
                let mut labels: LabelSet = a
                    .labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect();
                for l in external_labels.iter() {
                    labels
                        .entry(l.name.to_string())
                        .or_insert_with(|| l.value.to_string());
                }
                let key = (gid.clone(), super::alert::fingerprint(&labels));
                seen.push(key.clone());
                // `needsSending`: resolved since the last send, or not sent for resend_delay.
                let needs = match (a.resolved_at, last.get(&key).copied()) {
                    (_, None) => true,
                    (Some(r), Some(s)) if r > s => true,
                    (_, Some(s)) => s + resend < ts,
                };
                if !needs {
                    continue;
                }
                last.insert(key, ts);
                let ms = |t: i64| DateTime::<Utc>::from_timestamp_millis(t).unwrap_or_default();
                let starts_at = ms(a.fired_at.unwrap_or(a.active_at));
                let ends_at = ms(a.resolved_at.unwrap_or(ts + 4 * delta));
                let annotations: LabelSet = a
                    .annotations
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect();
                postable.push(PostableAlert {
                    labels: KV(labels.clone()),
                    annotations: KV(annotations.clone()),
                    starts_at: Some(starts_at),
                    ends_at: Some(ends_at),
                    generator_url: generator_url.clone(),
                });
                out.push(Alert {
                    labels,
                    annotations,
                    starts_at,
                    ends_at,
                    generator_url: generator_url.clone(),
                    updated_at: now,
                    timeout: false,
                });
            }
        }
        last.retain(|k, _| k.0 != gid || seen.contains(k));
        (out, postable)
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules_engine::model::{Labels, Sample};
    use rules_engine::promql::{Engine, EvalLimits};
    use rules_engine::rules::alerting::AlertContext;
    use rules_engine::rules::file::parse_rule_file;
    use rules_engine::storage::MemStorage;

    /// Prometheus's send rules over a real evaluation: firing alerts once per resend delay
    /// with `endsAt` 4 × max(resend, interval) ahead, resolved ones at once and then with every
    /// resend while kept (15 minutes), pending ones never.
    #[test]
    fn sends_like_prometheus() {
        let groups = parse_rule_file(
            "groups:\n  - name: g\n    rules:\n      - alert: High\n        expr: x > 1\n        for: 30s\n",
            "f.yml",
        )
        .expect("rules");
        let mut group = Group::new(groups.into_iter().next().expect("group"));
        let store = MemStorage::new();
        let engine = Engine::new(EvalLimits::default());
        let ctx = AlertContext::default();
        let ext = Labels::from_pairs([("cluster", "eu")]).expect("labels");
        let series = Labels::from_pairs([("__name__", "x"), ("job", "j")]).expect("labels");
        let sent = RuleAlerts::default();
        let minute = Duration::from_secs(60);
        let step = 15_000;
        let mut log = Vec::new();
        for i in 0..80i64 {
            let ts = 1_000_000 + i * step;
            // Above the threshold for the first 20 steps (5 minutes), then below.
            store.add(
                series.clone(),
                [Sample {
                    t: rules_engine::Timestamp(ts),
                    v: if i < 20 { 5.0 } else { 0.0 },
                }],
            );
            for (j, _) in group.spec.rules.clone().iter().enumerate() {
                group
                    .eval_one(j, &engine, &store, &store, ts, &ctx)
                    .expect("eval");
            }
            let (alerts, postable) = sent.due(
                &group,
                Duration::from_secs(15),
                minute,
                ts,
                &ext,
                "http://pg",
                Utc::now(),
            );
            assert_eq!(alerts.len(), postable.len());
            for a in alerts {
                assert_eq!(a.labels.get("cluster").map(String::as_str), Some("eu"));
                log.push((
                    i,
                    a.ends_at.timestamp_millis() - ts,
                    a.starts_at.timestamp_millis(),
                ));
            }
        }
        let steps: Vec<i64> = log.iter().map(|(i, ..)| *i).collect();
        // Fires at step 2 (30s `for`), re-sent after more than a minute (step 7, 12, 17),
        // resolved at step 20, then re-sent every resend delay until dropped after 15m.
        assert_eq!(&steps[..5], &[2, 7, 12, 17, 20], "{log:?}");
        assert!(log[..4].iter().all(|(_, d, _)| *d == 240_000), "{log:?}");
        assert!(
            log.iter().all(|(_, _, s)| *s == 1_030_000),
            "startsAt is when it fired"
        );
        assert_eq!(log[4].1, 0, "resolved: endsAt is the resolve time");
        assert!(steps.len() > 10 && steps.len() < 25, "{steps:?}");
        assert!(*steps.last().expect("last") <= 20 + 61, "{steps:?}");
    }

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(
            super::query_escape("rate(x[5m]) > 0.5"),
            "rate%28x%5B5m%5D%29+%3E+0.5"
        );
    }
}
