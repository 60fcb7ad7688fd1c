//! Alert delivery self-metrics (`promgate_notifications_*`, `promgate_alerts_*`), per receiver
//! and integration.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::alert::LabelSet;
use super::db::IntegrationKey;

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct IntegrationLabels {
    receiver: String,
    integration: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    receiver: String,
    integration: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    alertname: String,
    severity: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone)]
pub struct AlertingMetrics {
    sent: Family<IntegrationLabels, Counter>,
    failed: Family<ReasonLabels, Counter>,
    retries: Family<IntegrationLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    latency: Family<IntegrationLabels, Histogram>,
    queue: Family<IntegrationLabels, Gauge>,
    held: Family<IntegrationLabels, Counter>,
    triggered: Family<AlertLabels, Counter>,
    received: Family<SourceLabels, Counter>,
    invalid: Counter,
    groups: Gauge,
    alerts: Gauge,
    downstream_sent: Counter,
    downstream_errors: Counter,
    downstream_dropped: Counter,
}

impl Default for AlertingMetrics {
    fn default() -> Self {
        Self {
            sent: Family::default(),
            failed: Family::default(),
            retries: Family::default(),
            dropped: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 18))
            }),
            queue: Family::default(),
            held: Family::default(),
            triggered: Family::default(),
            received: Family::default(),
            invalid: Counter::default(),
            groups: Gauge::default(),
            alerts: Gauge::default(),
            downstream_sent: Counter::default(),
            downstream_errors: Counter::default(),
            downstream_dropped: Counter::default(),
        }
    }
}

fn il(k: &IntegrationKey) -> IntegrationLabels {
    IntegrationLabels {
        receiver: k.receiver.clone(),
        integration: format!("{}[{}]", k.integration, k.index),
    }
}

fn rl(k: &IntegrationKey, reason: &str) -> ReasonLabels {
    ReasonLabels {
        receiver: k.receiver.clone(),
        integration: format!("{}[{}]", k.integration, k.index),
        reason: reason.to_string(),
    }
}

impl AlertingMetrics {
    /// Registers under the `promgate` registry.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "notifications",
            "Notifications delivered, per receiver and integration",
            m.sent.clone(),
        );
        r.register(
            "notifications_failed",
            "Failed delivery attempts, by reason",
            m.failed.clone(),
        );
        r.register(
            "notification_retries",
            "Delivery attempts scheduled again after a retryable failure",
            m.retries.clone(),
        );
        r.register(
            "notifications_dropped",
            "Notifications given up: give_up (too old), permanent (non-retryable error), superseded (a newer one for the group replaced it)",
            m.dropped.clone(),
        );
        r.register(
            "notification_latency_seconds",
            "Time from a notification being written to the outbox to its delivery",
            m.latency.clone(),
        );
        r.register(
            "notification_queue_depth",
            "Notifications waiting in the outbox",
            m.queue.clone(),
        );
        r.register(
            "notifications_refire_held",
            "Re-fires held back by min_refire_interval",
            m.held.clone(),
        );
        r.register(
            "alerts_triggered",
            "Alerts that started firing, by alertname and severity",
            m.triggered.clone(),
        );
        r.register(
            "alerts_received",
            "Alerts taken in, by source (rules, api)",
            m.received.clone(),
        );
        r.register(
            "alerts_invalid",
            "Alerts refused by POST /api/v2/alerts",
            m.invalid.clone(),
        );
        r.register(
            "alert_groups",
            "Aggregation groups held by the dispatcher",
            m.groups.clone(),
        );
        r.register("alerts", "Alerts held by the dispatcher", m.alerts.clone());
        r.register(
            "alertmanager_alerts_sent",
            "Alerts sent to downstream Alertmanagers",
            m.downstream_sent.clone(),
        );
        r.register(
            "alertmanager_errors",
            "Failed sends to downstream Alertmanagers",
            m.downstream_errors.clone(),
        );
        r.register(
            "alertmanager_alerts_dropped",
            "Alerts dropped because the downstream queue was full",
            m.downstream_dropped.clone(),
        );
        m
    }

    pub fn sent(&self, k: &IntegrationKey, latency_s: f64) {
        self.sent.get_or_create(&il(k)).inc();
        self.latency.get_or_create(&il(k)).observe(latency_s);
    }
    pub fn failed(&self, k: &IntegrationKey, reason: &str) {
        self.failed.get_or_create(&rl(k, reason)).inc();
    }
    pub fn retry(&self, k: &IntegrationKey) {
        self.retries.get_or_create(&il(k)).inc();
    }
    pub fn dropped(&self, k: &IntegrationKey, reason: &str) {
        self.dropped.get_or_create(&rl(k, reason)).inc();
    }
    pub fn queue(&self, k: &IntegrationKey, depth: usize) {
        self.queue.get_or_create(&il(k)).set(depth as i64);
    }
    pub fn refire_held(&self, k: &IntegrationKey) {
        self.held.get_or_create(&il(k)).inc();
    }
    pub fn alert_triggered(&self, labels: &LabelSet) {
        let get = |n: &str| labels.get(n).cloned().unwrap_or_default();
        self.triggered
            .get_or_create(&AlertLabels {
                alertname: get("alertname"),
                severity: get("severity"),
            })
            .inc();
    }
    pub fn received(&self, source: &str, n: usize) {
        self.received
            .get_or_create(&SourceLabels {
                source: source.to_string(),
            })
            .inc_by(n as u64);
    }
    pub fn invalid(&self, n: usize) {
        self.invalid.inc_by(n as u64);
    }
    pub fn set_groups(&self, groups: usize, alerts: usize) {
        self.groups.set(groups as i64);
        self.alerts.set(alerts as i64);
    }
    pub fn downstream(&self, sent: usize, error: bool) {
        if error {
            self.downstream_errors.inc();
        } else {
            self.downstream_sent.inc_by(sent as u64);
        }
    }
    pub fn downstream_dropped(&self, n: usize) {
        self.downstream_dropped.inc_by(n as u64);
    }
}
