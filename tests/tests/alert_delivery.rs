//! Alert delivery end to end, the built promgate beside real peers: its rule alerts handed to a
//! real Alertmanager 0.25 next to a real Prometheus 2.42 evaluating the same rules over the
//! same data; a notification retried across a SIGKILL arriving exactly once; and the trading
//! scenario (the shipped alerts.yaml) paging through Slack, email (aiosmtpd) and PagerDuty,
//! then resolving, each checked at its receiving server.

use std::time::Duration;

use e2e::alertmanager::Alertmanager;
use e2e::capture::CaptureServer;
use e2e::payload::{encode_v1, labels, series};
use e2e::smtp::{SmtpOptions, SmtpServer};
use e2e::{Prometheus, Promgate, eventually, http, now_ms};
use proto::v1::WriteRequest;
use serde_json::{Value, json};

fn write(url: &str, points: &[(&[(&str, &str)], f64)]) {
    let now = now_ms();
    let req = WriteRequest {
        timeseries: points
            .iter()
            .map(|(l, v)| series(labels(l), &[(now, *v)]))
            .collect(),
        metadata: vec![],
    };
    let r = http::post_rw_v1(url, encode_v1(&req)).expect("write");
    assert!(r.status == 204 || r.status == 200, "write: {}", r.status);
}

fn get_json(url: &str) -> Value {
    let r = http::get(url).expect("get");
    assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
    r.json().expect("json")
}

fn post_json(url: &str, v: &Value) -> u16 {
    http::post(
        url,
        &[("Content-Type", "application/json")],
        serde_json::to_vec(v).expect("json"),
    )
    .expect("post")
    .status
}

const RULES: &str = r#"
groups:
  - name: fast
    rules:
      - alert: FastDrawdown
        expr: cryptofunk_current_drawdown > 0.15
        for: 1s
        labels:
          severity: critical
        annotations:
          summary: "Drawdown {{ $value | humanizePercentage }} on {{ $labels.strategy }}"
"#;

fn rfc3339_ms(s: &str) -> i64 {
    // "2026-11-22T06:20:06.534Z": parse with the civil-date arithmetic below.
    let (date, time) = s.split_once('T').expect("T");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let time = time.trim_end_matches('Z');
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().expect("time")).collect();
    let ms: i64 = format!("{frac:0<3}")[..3].parse().expect("ms");
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000) + ms
}

#[test]
fn rule_alerts_reach_alertmanager_like_prometheus_sends_them() {
    let am = Alertmanager::start("route:\n  receiver: x\nreceivers:\n  - name: x\n");
    let target = am.url().trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).expect("rules");
    let prom = Prometheus::start(&format!(
        "global:\n  evaluation_interval: 1s\n  external_labels: {{source: prometheus}}\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{target}']}}]\n",
        rules.display()
    ));
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            "rule_files: ['{}']\nevaluation_interval: 1s\nexternal_labels: {{source: promgate}}\nexternal_url: http://promgate.test\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{target}']}}]\n",
            rules.display()
        ),
    );
    let point: &[(&str, &str)] = &[
        ("__name__", "cryptofunk_current_drawdown"),
        ("strategy", "mm"),
    ];
    // Prometheus drops what it has to send before its notifier has discovered an
    // Alertmanager (and resends only after a minute): wait for discovery.
    eventually(Duration::from_secs(20), || {
        let v = get_json(&format!("{}/api/v1/alertmanagers", prom.url()));
        if v["data"]["activeAlertmanagers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    write(&pg.write_url(), &[(point, 0.2)]);
    write(&prom.write_url(), &[(point, 0.2)]);
    let by_source = |alerts: &Value, source: &str| -> Option<Value> {
        alerts
            .as_array()?
            .iter()
            .find(|a| a["labels"]["source"] == source)
            .cloned()
    };
    let (p, g) = eventually(Duration::from_secs(20), || {
        let alerts = am.alerts();
        match (
            by_source(&alerts, "prometheus"),
            by_source(&alerts, "promgate"),
        ) {
            (Some(p), Some(g)) => Ok((p, g)),
            _ => Err(format!(
                "{alerts:#}\nPrometheus alerts: {}\nPrometheus log: {}",
                get_json(&format!("{}/api/v1/alerts", prom.url())),
                prom.process().log_tail()
            )),
        }
    });
    let strip = |v: &Value| {
        let mut l = v["labels"].clone();
        l.as_object_mut().expect("labels").remove("source");
        l
    };
    assert_eq!(strip(&g), strip(&p));
    assert_eq!(
        strip(&g),
        json!({"alertname": "FastDrawdown", "severity": "critical", "strategy": "mm"})
    );
    assert_eq!(g["annotations"], p["annotations"]);
    assert_eq!(g["annotations"]["summary"], "Drawdown 20% on mm");
    let path = |v: &Value| {
        let u = v["generatorURL"]
            .as_str()
            .expect("generatorURL")
            .to_string();
        u[u.find("/graph").expect("/graph")..].to_string()
    };
    assert_eq!(path(&g), path(&p));
    assert!(
        g["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://promgate.test/graph?g0.expr="))
    );
    // endsAt is the last send + 4 × max(resend delay 1m, interval 1s): both say 4 minutes.
    let span = |v: &Value| {
        rfc3339_ms(v["endsAt"].as_str().expect("endsAt"))
            - rfc3339_ms(v["updatedAt"].as_str().expect("updatedAt"))
    };
    for (who, v) in [("prometheus", &p), ("promgate", &g)] {
        let s = span(v);
        assert!(
            (235_000..=241_000).contains(&s),
            "{who}: endsAt - updatedAt = {s} ms: {v:#}"
        );
    }
    // startsAt is when the alert fired: within the two evaluations after the write.
    let starts = |v: &Value| rfc3339_ms(v["startsAt"].as_str().expect("startsAt"));
    assert!((starts(&g) - starts(&p)).abs() < 5_000, "{g:#} {p:#}");

    // Resolve: both send the resolved alert at once; Alertmanager stops listing them.
    write(&pg.write_url(), &[(point, 0.01)]);
    write(&prom.write_url(), &[(point, 0.01)]);
    eventually(Duration::from_secs(20), || {
        let alerts = am.alerts();
        match (
            by_source(&alerts, "prometheus"),
            by_source(&alerts, "promgate"),
        ) {
            (None, None) => Ok(()),
            _ => Err(format!("{alerts:#}")),
        }
    });
}

#[test]
fn a_notification_retried_across_a_sigkill_arrives_exactly_once() {
    let cap = CaptureServer::start_with_status(503);
    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(
        data.path(),
        &format!(
            r#"notifications:
  retry_initial: 200ms
  retry_max: 400ms
alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: hook
      webhook_configs:
        - url: '{}/hook'
"#,
            cap.url()
        ),
    );
    let alert = json!([{
        "labels": {"alertname": "BreakerTripped", "instance": "risk:1"},
        "startsAt": "2026-01-01T00:00:00Z",
    }]);
    assert_eq!(
        post_json(&format!("{}/api/v2/alerts", pg.url()), &alert),
        200
    );
    cap.wait_for("/hook", 3, Duration::from_secs(20));
    let retries = pg
        .metric_value(
            r#"promgate_notification_retries_total{receiver="hook",integration="webhook[0]"}"#,
        )
        .unwrap_or(0.0);
    assert!(retries >= 2.0, "{}", pg.metrics());
    // Killed mid-retry; the receiver recovers while promgate is down.
    pg.kill_9();
    cap.answer_all(200);
    cap.clear();
    pg.restart();
    // As Prometheus would, the sender resends the alert; the group flushes again at once (its
    // startsAt is old) and must find the notification already logged.
    assert_eq!(
        post_json(&format!("{}/api/v2/alerts", pg.url()), &alert),
        200
    );
    let got = cap.wait_for("/hook", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    let got_after = cap.captured_at("/hook");
    assert_eq!(
        got_after.len(),
        1,
        "delivered more than once: {got_after:?}"
    );
    let v = got[0].json();
    assert_eq!(v["status"], "firing");
    assert_eq!(v["alerts"][0]["labels"]["instance"], "risk:1");
    assert_eq!(
        pg.metric_value(
            r#"promgate_notifications_total{receiver="hook",integration="webhook[0]"}"#
        ),
        Some(1.0),
        "{}",
        pg.metrics()
    );
}

/// alerts.yaml with every `for` shortened to 1s, so the scenario runs in seconds.
fn fast_alerts_yaml() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts.yaml");
    let text = std::fs::read_to_string(&path).expect("alerts.yaml");
    text.lines()
        .map(|l| match l.find("for: ") {
            Some(i) if l[..i].trim().is_empty() => format!("{}for: 1s", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn trading_scenario_pages_slack_email_and_pagerduty_then_resolves() {
    let cap = CaptureServer::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("alerts.yaml");
    std::fs::write(&rules, fast_alerts_yaml()).expect("rules");
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            r#"rule_files: ['{rules}']
evaluation_interval: 1s
external_url: http://promgate.test
notifications:
  resolve_immediately: true
alertmanager:
  global:
    smtp_smarthost: '{smtp}'
    smtp_from: 'promgate <alerts@example.com>'
    smtp_require_tls: false
  route:
    receiver: email
    group_by: [alertname]
    group_wait: 1s
    group_interval: 2s
    routes:
      - matchers: ['severity="critical"']
        receiver: pager
        continue: true
      - receiver: slack
        continue: true
      - receiver: email
  receivers:
    - name: pager
      pagerduty_configs:
        - routing_key: 0123456789abcdef0123456789abcdef
          url: '{cap}/pagerduty'
    - name: slack
      slack_configs:
        - api_url: '{cap}/slack'
          channel: '#trading-alerts'
          send_resolved: true
    - name: email
      email_configs:
        - to: 'risk-desk@example.com'
          send_resolved: true
"#,
            rules = rules.display(),
            smtp = smtp.addr(),
            cap = cap.url()
        ),
    );
    let drawdown: &[(&str, &str)] = &[
        ("__name__", "cryptofunk_current_drawdown"),
        ("strategy", "mm"),
    ];
    let breaker: &[(&str, &str)] = &[
        ("__name__", "cryptofunk_circuit_breaker_tripped"),
        ("instance", "risk:1"),
    ];
    let ws: &[(&str, &str)] = &[
        ("__name__", "trading_ws_connection_status"),
        ("exchange", "binance"),
    ];
    let chan: &[(&str, &str)] = &[
        ("__name__", "trading_channel_utilization_percent"),
        ("channel", "orders"),
    ];
    write(
        &pg.write_url(),
        &[(drawdown, 0.22), (breaker, 1.0), (ws, 0.0), (chan, 93.0)],
    );

    // PagerDuty: one trigger per critical alert group.
    let pd = cap.wait_for("/pagerduty", 3, Duration::from_secs(30));
    let mut triggered: Vec<(String, String)> = pd
        .iter()
        .map(|c| {
            let v = c.json();
            assert_eq!(v["event_action"], "trigger", "{v:#}");
            assert_eq!(v["routing_key"], "0123456789abcdef0123456789abcdef");
            (
                v["payload"]["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                v["dedup_key"].as_str().expect("dedup_key").to_string(),
            )
        })
        .collect();
    triggered.sort();
    let summaries: Vec<&str> = triggered.iter().map(|(s, _)| s.as_str()).collect();
    for name in [
        "CircuitBreakerTripped",
        "ExchangeWebSocketDown",
        "TradingDrawdownHigh",
    ] {
        assert!(summaries.iter().any(|s| s.contains(name)), "{summaries:?}");
    }
    assert!(
        !summaries.iter().any(|s| s.contains("ChannelBackpressure")),
        "warning paged"
    );
    // Slack: all four alerts, each its own group.
    let slack = cap.wait_for("/slack", 4, Duration::from_secs(30));
    let texts: Vec<String> = slack.iter().map(|c| c.json().to_string()).collect();
    for name in [
        "CircuitBreakerTripped",
        "ExchangeWebSocketDown",
        "TradingDrawdownHigh",
        "ChannelBackpressure",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(name)),
            "{name} not in Slack: {texts:#?}"
        );
    }
    assert!(
        slack
            .iter()
            .all(|c| c.json()["channel"] == "#trading-alerts")
    );
    // Email: four messages with the alert names in the subject.
    let mails = smtp.wait_for(4, Duration::from_secs(30));
    for m in &mails {
        assert_eq!(m.rcpt_tos, vec!["risk-desk@example.com".to_string()]);
        assert!(
            m.header("Subject").is_some_and(|s| s.contains("FIRING")),
            "{}",
            m.data
        );
    }

    // Everything recovers: resolved notifications go out as soon as each group is resolved.
    write(
        &pg.write_url(),
        &[(drawdown, 0.02), (breaker, 0.0), (ws, 1.0), (chan, 12.0)],
    );
    let pd = cap.wait_for("/pagerduty", 6, Duration::from_secs(30));
    let mut resolved: Vec<String> = pd
        .iter()
        .map(|c| c.json())
        .filter(|v| v["event_action"] == "resolve")
        .map(|v| v["dedup_key"].as_str().expect("dedup_key").to_string())
        .collect();
    resolved.sort();
    let mut keys: Vec<String> = triggered.into_iter().map(|(_, k)| k).collect();
    keys.sort();
    assert_eq!(resolved, keys, "each trigger resolved with its dedup_key");
    let slack = cap.wait_for("/slack", 8, Duration::from_secs(30));
    assert!(
        slack
            .iter()
            .skip(4)
            .all(|c| c.json().to_string().contains("RESOLVED"))
    );
    let mails = smtp.wait_for(8, Duration::from_secs(30));
    assert!(
        mails
            .iter()
            .skip(4)
            .all(|m| m.header("Subject").is_some_and(|s| s.contains("RESOLVED")))
    );
    let triggered_total = pg.metric_value(
        r#"promgate_alerts_triggered_total{alertname="TradingDrawdownHigh",severity="critical"}"#,
    );
    assert_eq!(triggered_total, Some(1.0), "{}", pg.metrics());
}

#[test]
fn undeliverable_notifications_are_dropped_after_give_up_and_refused_ones_at_once() {
    let cap = CaptureServer::start_with_status(503);
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            r#"notifications:
  retry_initial: 100ms
  retry_max: 300ms
  give_up_after: 2s
alertmanager:
  route:
    receiver: down
    group_by: [alertname]
    group_wait: 0s
    routes:
      - matchers: [kind="bad"]
        receiver: refuses
  receivers:
    - name: down
      webhook_configs: [{{url: '{cap}/down'}}]
    - name: refuses
      webhook_configs: [{{url: '{cap}/refuses'}}]
"#,
            cap = cap.url()
        ),
    );
    let post = |labels: Value| {
        let body = json!([{"labels": labels, "startsAt": "2026-01-01T00:00:00Z"}]);
        assert_eq!(
            post_json(&format!("{}/api/v2/alerts", pg.url()), &body),
            200
        );
    };
    post(json!({"alertname": "Down"}));
    // Retried (503) until 2s old, then dropped, logged and counted; no more attempts.
    let dropped = r#"promgate_notifications_dropped_total{receiver="down",integration="webhook[0]",reason="give_up"}"#;
    eventually(Duration::from_secs(20), || match pg.metric_value(dropped) {
        Some(1.0) => Ok(()),
        v => Err(format!("{v:?}")),
    });
    let attempts = cap.captured_at("/down").len();
    assert!(attempts >= 4, "{attempts} attempts");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cap.captured_at("/down").len(),
        attempts,
        "retried after giving up"
    );
    assert!(pg.process().log().contains("Giving up on a notification"));
    assert_eq!(
        pg.metric_value(
            r#"promgate_notification_queue_depth{receiver="down",integration="webhook[0]"}"#
        ),
        Some(0.0)
    );
    // A 400 is not retried: dropped at once as permanent.
    cap.answer_all(400);
    post(json!({"alertname": "Bad", "kind": "bad"}));
    let permanent = r#"promgate_notifications_dropped_total{receiver="refuses",integration="webhook[0]",reason="permanent"}"#;
    eventually(Duration::from_secs(20), || {
        match pg.metric_value(permanent) {
            Some(1.0) => Ok(()),
            v => Err(format!("{v:?}")),
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cap.captured_at("/refuses").len(), 1, "a 400 was retried");
}
