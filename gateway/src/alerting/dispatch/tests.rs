//! The dispatcher with paused time: a recording integration stands in for the receiver (the
//! real receivers are exercised end to end in `tests/tests/alert_delivery.rs`); the expected
//! timings are Alertmanager 0.25's.

use std::future::Future;
use std::pin::Pin;

use chrono::TimeZone;
use tokio::time::sleep;

use super::*;
use crate::alerting::config::{InhibitRuleConfig, RouteConfig};
use crate::alerting::db::IntegrationKey;
use crate::alerting::inhibit::Inhibitor;
use crate::alerting::outbox::Outbox;
use crate::alerting::silence::{Silence, SilenceMatcher};

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(Duration, notifiers::Data)>>,
    start: Mutex<Option<Instant>>,
    /// Attempts answered with a retryable failure before deliveries succeed.
    fail: std::sync::atomic::AtomicUsize,
    attempts: std::sync::atomic::AtomicUsize,
}

impl notifiers::Notifier for Recorder {
    fn notify<'a>(
        &'a self,
        data: &'a notifiers::Data,
    ) -> Pin<Box<dyn Future<Output = Result<(), notifiers::NotifyError>> + Send + 'a>> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            self.attempts.fetch_add(1, SeqCst);
            if self
                .fail
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(notifiers::NotifyError::retryable("http_5xx", "503"));
            }
            let t0 = self.start.lock().unwrap_or_else(Instant::now);
            self.sent.lock().push((t0.elapsed(), data.clone()));
            Ok(())
        })
    }
}

struct Harness {
    d: Arc<Dispatcher>,
    rec: HashMap<String, Arc<Recorder>>,
    silences: Arc<Mutex<Silences>>,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
}

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).single().expect("time")
}

fn setup(route: &str, inhibit: &str, settings: NotificationSettings) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Arc::new(Db::open(&dir.path().join("alerting.db")).expect("db"));
    let cfg: RouteConfig = serde_norway::from_str(route).expect("route");
    let inhibit: Vec<InhibitRuleConfig> = serde_norway::from_str(inhibit).expect("inhibit");
    let tree = Route::new(&cfg);
    let clock = Clock::anchored(t0());
    let mut rec = HashMap::new();
    let mut integrations = Vec::new();
    let mut receivers: HashMap<String, Vec<IntegrationInfo>> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    tree.walk(&mut |r| names.push(r.opts.receiver.clone()));
    names.sort();
    names.dedup();
    for name in names {
        let r = Arc::new(Recorder::default());
        *r.start.lock() = Some(Instant::now());
        let key = IntegrationKey {
            receiver: name.clone(),
            integration: "webhook".into(),
            index: 0,
        };
        let send_resolved = !name.starts_with("quiet");
        integrations.push((
            key.clone(),
            notifiers::Integration {
                name: "webhook",
                index: 0,
                send_resolved,
                notifier: r.clone(),
            },
        ));
        receivers
            .entry(name.clone())
            .or_default()
            .push(IntegrationInfo { key, send_resolved });
        rec.insert(name, r);
    }
    let metrics = AlertingMetrics::default();
    let outbox = Arc::new(Outbox::new(
        integrations,
        db.clone(),
        settings.clone(),
        clock,
        metrics.clone(),
    ));
    let stop = CancellationToken::new();
    outbox.start(stop.clone());
    let silences = Arc::new(Mutex::new(Silences::default()));
    let d = Arc::new(Dispatcher::new(
        Routing {
            tree,
            receivers,
            inhibitor: Inhibitor::new(&inhibit),
            external_url: "http://promgate".into(),
        },
        HashMap::new(),
        clock,
        settings,
        db,
        outbox,
        silences.clone(),
        metrics,
    ));
    tokio::spawn(d.clone().run(stop.clone()));
    Harness {
        d,
        rec,
        silences,
        _dir: dir,
        stop,
    }
}

impl Harness {
    fn now(&self) -> DateTime<Utc> {
        self.d.clock().now()
    }

    /// A firing alert (ends in 5 minutes, as a Prometheus resend would say) or, with
    /// `resolved`, one that ended now.
    fn put(&self, labels: &[(&str, &str)], resolved: bool) {
        let now = self.now();
        let labels: LabelSet = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.d.put(vec![Alert {
            labels,
            annotations: LabelSet::new(),
            starts_at: now,
            ends_at: if resolved {
                now
            } else {
                now + chrono::Duration::minutes(5)
            },
            generator_url: String::new(),
            updated_at: now,
            timeout: false,
        }]);
    }

    /// (seconds since start, status, alertnames with their status) per notification.
    fn sent(&self, receiver: &str) -> Vec<(u64, String, Vec<String>)> {
        self.rec[receiver]
            .sent
            .lock()
            .iter()
            .map(|(t, d)| {
                (
                    t.as_secs(),
                    d.status.to_string(),
                    d.alerts
                        .iter()
                        .map(|a| {
                            format!("{}:{}", a.labels.get("alertname").unwrap_or(""), a.status)
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

const ROUTE: &str = r#"
receiver: team
group_by: [cluster]
group_wait: 10s
group_interval: 1m
repeat_interval: 3m
routes:
  - matchers: [severity="page"]
    receiver: pager
    continue: true
  - matchers: [team="quiet"]
    receiver: quiet
"#;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn group_wait_then_group_interval_then_repeat() {
    let h = setup(ROUTE, "[]", NotificationSettings::default());
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(9)).await;
    assert!(h.sent("team").is_empty(), "nothing before group_wait");
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.sent("team"),
        vec![(10, "firing".into(), s(&["A:firing"]))]
    );
    // A new alert joins; it goes out at the next group_interval tick (10s + 1m), not before.
    sleep(Duration::from_secs(5)).await;
    h.put(&[("alertname", "B"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(40)).await;
    assert_eq!(h.sent("team").len(), 1);
    sleep(Duration::from_secs(15)).await;
    assert_eq!(
        h.sent("team")[1],
        (70, "firing".into(), s(&["A:firing", "B:firing"]))
    );
    // Nothing changes: no message at 130s, 190s, 250s; the repeat comes at the first tick
    // strictly after 70s + 3m (Alertmanager's `Before`), 310s. Alerts are refreshed as
    // Prometheus would resend them.
    for _ in 0..3 {
        sleep(Duration::from_secs(60)).await;
        h.put(&[("alertname", "A"), ("cluster", "c1")], false);
        h.put(&[("alertname", "B"), ("cluster", "c1")], false);
    }
    assert_eq!(h.sent("team").len(), 2, "{:?}", h.sent("team"));
    sleep(Duration::from_secs(60)).await;
    let sent = h.sent("team");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2].0, 310);
}

#[tokio::test(start_paused = true)]
async fn resolved_waits_for_group_interval_by_default() {
    let h = setup(ROUTE, "[]", NotificationSettings::default());
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(20)).await;
    h.put(&[("alertname", "A"), ("cluster", "c1")], true);
    sleep(Duration::from_secs(45)).await;
    assert_eq!(h.sent("team").len(), 1, "resolve waits for the 70s tick");
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        h.sent("team")[1],
        (70, "resolved".into(), s(&["A:resolved"]))
    );
    // The group is done: no more messages.
    sleep(Duration::from_secs(600)).await;
    assert_eq!(h.sent("team").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn resolve_immediately_and_refire_damping() {
    let settings = NotificationSettings {
        resolve_immediately: true,
        min_refire_interval: Duration::from_secs(300),
        ..Default::default()
    };
    let h = setup(ROUTE, "[]", settings);
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    h.put(&[("alertname", "B"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(20)).await;
    assert_eq!(h.sent("team").len(), 1);
    // One of two resolving does not flush early; the second does, at once.
    h.put(&[("alertname", "A"), ("cluster", "c1")], true);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(h.sent("team").len(), 1);
    h.put(&[("alertname", "B"), ("cluster", "c1")], true);
    sleep(Duration::from_secs(1)).await;
    let sent = h.sent("team");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].0, 25);
    assert_eq!(sent[1].1, "resolved");
    // A re-fire 1 minute after the resolve is held until 5 minutes after it (325s)...
    sleep(Duration::from_secs(59)).await;
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(200)).await;
    assert_eq!(h.sent("team").len(), 2, "held back");
    sleep(Duration::from_secs(60)).await;
    let sent = h.sent("team");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[2].0, 325);
    assert_eq!(sent[2].2, s(&["A:firing"]));
}

#[tokio::test(start_paused = true)]
async fn flapping_within_the_damping_window_pages_nothing() {
    let settings = NotificationSettings {
        resolve_immediately: true,
        min_refire_interval: Duration::from_secs(300),
        ..Default::default()
    };
    let h = setup(ROUTE, "[]", settings);
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(11)).await;
    h.put(&[("alertname", "A"), ("cluster", "c1")], true);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(h.sent("team").len(), 2);
    for _ in 0..3 {
        sleep(Duration::from_secs(30)).await;
        h.put(&[("alertname", "A"), ("cluster", "c1")], false);
        sleep(Duration::from_secs(30)).await;
        h.put(&[("alertname", "A"), ("cluster", "c1")], true);
    }
    sleep(Duration::from_secs(600)).await;
    assert_eq!(h.sent("team").len(), 2, "{:?}", h.sent("team"));
}

#[tokio::test(start_paused = true)]
async fn continue_and_group_by_make_separate_groups() {
    let h = setup(ROUTE, "[]", NotificationSettings::default());
    h.put(
        &[("alertname", "A"), ("cluster", "c1"), ("severity", "page")],
        false,
    );
    h.put(
        &[("alertname", "B"), ("cluster", "c2"), ("severity", "page")],
        false,
    );
    sleep(Duration::from_secs(11)).await;
    let pager = h.rec["pager"].sent.lock().clone();
    assert_eq!(pager.len(), 2, "one per cluster");
    let mut keys: Vec<String> = pager.iter().map(|(_, d)| d.group_key.clone()).collect();
    keys.sort();
    assert_eq!(
        keys,
        s(&[
            r#"{}/{severity="page"}:{cluster="c1"}"#,
            r#"{}/{severity="page"}:{cluster="c2"}"#
        ])
    );
    // `continue: true` on the pager route, and no later sibling matches, so the root's
    // receiver does not get them (the root is a match only when no child is).
    assert!(h.sent("team").is_empty());
}

#[tokio::test(start_paused = true)]
async fn send_resolved_false_sends_no_resolved_message() {
    let h = setup(ROUTE, "[]", NotificationSettings::default());
    h.put(&[("alertname", "A"), ("team", "quiet")], false);
    sleep(Duration::from_secs(11)).await;
    h.put(&[("alertname", "A"), ("team", "quiet")], true);
    sleep(Duration::from_secs(120)).await;
    assert_eq!(
        h.sent("quiet"),
        vec![(10, "firing".into(), s(&["A:firing"]))]
    );
    // The log was updated all the same: a new firing alert is new again.
    h.put(&[("alertname", "A"), ("team", "quiet")], false);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(h.sent("quiet").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn inhibited_and_silenced_alerts_are_not_sent() {
    let h = setup(
        "receiver: team\ngroup_by: ['...']\ngroup_wait: 10s\n",
        "[{source_matchers: [severity=critical], target_matchers: [severity=warning], equal: [cluster]}]",
        NotificationSettings::default(),
    );
    let now = h.now();
    h.silences
        .lock()
        .set(
            Silence {
                id: String::new(),
                matchers: vec![SilenceMatcher {
                    name: "alertname".into(),
                    value: "Silenced".into(),
                    is_regex: false,
                    is_equal: true,
                }],
                starts_at: now,
                ends_at: now + chrono::Duration::hours(1),
                updated_at: now,
                created_by: "t".into(),
                comment: "t".into(),
            },
            now,
        )
        .expect("silence");
    h.put(
        &[
            ("alertname", "Crit"),
            ("cluster", "c1"),
            ("severity", "critical"),
        ],
        false,
    );
    h.put(
        &[
            ("alertname", "Warn"),
            ("cluster", "c1"),
            ("severity", "warning"),
        ],
        false,
    );
    h.put(
        &[
            ("alertname", "Warn"),
            ("cluster", "c2"),
            ("severity", "warning"),
        ],
        false,
    );
    h.put(&[("alertname", "Silenced"), ("cluster", "c3")], false);
    sleep(Duration::from_secs(11)).await;
    let mut got: Vec<String> = h
        .sent("team")
        .into_iter()
        .map(|(_, _, a)| a.join(","))
        .collect();
    got.sort();
    assert_eq!(got, s(&["Crit:firing", "Warn:firing"]));
    let warn_c2 = h.rec["team"]
        .sent
        .lock()
        .iter()
        .any(|(_, d)| d.alerts[0].labels.get("cluster") == Some("c2"));
    assert!(warn_c2, "the warning in another cluster is not inhibited");
    let api = h.d.alerts();
    let silenced = api
        .iter()
        .find(|v| v.alert.labels["alertname"] == "Silenced")
        .expect("listed");
    assert_eq!(silenced.silenced_by.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn old_alerts_flush_without_group_wait() {
    // An alert whose startsAt is older than group_wait (e.g. after a restart) is not delayed.
    let h = setup(ROUTE, "[]", NotificationSettings::default());
    let now = h.now();
    h.d.put(vec![Alert {
        labels: [("alertname", "Old"), ("cluster", "c")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: LabelSet::new(),
        starts_at: now - chrono::Duration::minutes(10),
        ends_at: now + chrono::Duration::minutes(5),
        generator_url: String::new(),
        updated_at: now,
        timeout: false,
    }]);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(h.sent("team").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_then_a_newer_notification_supersedes_the_waiting_one() {
    let settings = NotificationSettings {
        retry_initial: Duration::from_secs(2),
        retry_max: Duration::from_secs(2),
        ..Default::default()
    };
    let h = setup(ROUTE, "[]", settings);
    let rec = h.rec["team"].clone();
    rec.fail
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    h.put(&[("alertname", "A"), ("cluster", "c1")], false);
    sleep(Duration::from_secs(30)).await;
    let tried = rec.attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (10..=21).contains(&tried),
        "retried every 1-2s for 20s: {tried}"
    );
    h.put(&[("alertname", "B"), ("cluster", "c1")], false);
    // The 70s flush writes a notification for A and B; the one still being retried (A alone)
    // is superseded. The receiver recovers after that: exactly one delivery, the newer one.
    sleep(Duration::from_millis(40_500)).await;
    rec.fail.store(0, std::sync::atomic::Ordering::SeqCst);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        h.sent("team").into_iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![s(&["A:firing", "B:firing"])]
    );
}

#[test]
fn needs_update_is_dedup_stage() {
    let set = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
    let now = t0();
    let e = LogEntry {
        firing: set(&[1, 2]),
        resolved: set(&[]),
        ts_ms: now.timestamp_millis() - 1000,
    };
    let h = chrono::Duration::hours(1);
    assert!(needs_update(None, &set(&[1]), &set(&[]), true, h, now));
    assert!(!needs_update(None, &set(&[]), &set(&[1]), true, h, now));
    assert!(!needs_update(
        Some(&e),
        &set(&[1, 2]),
        &set(&[]),
        true,
        h,
        now
    ));
    assert!(needs_update(
        Some(&e),
        &set(&[1, 3]),
        &set(&[]),
        true,
        h,
        now
    ));
    assert!(!needs_update(
        Some(&e),
        &set(&[1]),
        &set(&[2]),
        false,
        h,
        now
    ));
    assert!(needs_update(Some(&e), &set(&[1]), &set(&[2]), true, h, now));
    assert!(needs_update(
        Some(&e),
        &set(&[]),
        &set(&[1, 2]),
        false,
        h,
        now
    ));
    assert!(needs_update(
        Some(&e),
        &set(&[1, 2]),
        &set(&[]),
        true,
        chrono::Duration::milliseconds(500),
        now
    ));
}
