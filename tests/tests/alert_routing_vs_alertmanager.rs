//! promgate's routing, grouping and inhibition against a real Alertmanager 0.25: the same
//! alertmanager.yml (promgate reads it as a file through `alertmanager_config`), the same
//! alerts POSTed to both `/api/v2/alerts`, and the webhook payloads each sends to a capture
//! server compared: receiver, status, groupKey, groupLabels and the set of alerts with their
//! status and startsAt. Also the `/api/v2/alerts` validation answers and the silences API.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::alertmanager::Alertmanager;
use e2e::capture::CaptureServer;
use e2e::{Promgate, http};
use serde_json::{Value, json};

/// Every alert's `startsAt`: the moment of the test's first POST. Recent on purpose: Alertmanager
/// flushes a group at once for an alert older than `group_wait`, possibly before the rest of
/// the same POST (and the alert inhibiting one of them) has been taken in, which made its
/// payloads depend on timing.
fn starts() -> String {
    // Per test: each test runs on a thread of its own.
    thread_local! {
        static STARTS: String = chrono_now();
    }
    STARTS.with(Clone::clone)
}

fn am_config(webhook_base: &str) -> String {
    let recv = |name: &str| {
        format!(
            "  - name: {name}\n    webhook_configs:\n      - url: '{webhook_base}/{name}'\n        send_resolved: true\n"
        )
    };
    let mut s = String::from(
        r#"route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 3s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_by: [alertname, cluster]
      continue: true
    - match_re: {team: "risk|trading"}
      receiver: trading
      group_by: ['...']
      routes:
        - matchers: ['env!="prod"']
          receiver: trading-dev
    - matchers: ['alertname=~"Exchange.*"', 'exchange!~"test.*"']
      receiver: exchange
      group_by: []
    - match: {team: quiet}
      receiver: quiet
inhibit_rules:
  - source_matchers: [alertname="CircuitBreakerTripped"]
    target_matchers: [alertname="ChannelBackpressure"]
    equal: [cluster]
receivers:
"#,
    );
    for r in ["default", "pager", "trading", "trading-dev", "exchange"] {
        s.push_str(&recv(r));
    }
    s.push_str(&format!(
        "  - name: quiet\n    webhook_configs:\n      - url: '{webhook_base}/quiet'\n        send_resolved: false\n"
    ));
    s
}

fn alert(labels: &[(&str, &str)], ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": labels.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
        "annotations": {"summary": "s"},
        "startsAt": starts(),
        "generatorURL": "http://prom/graph",
    });
    if let Some(e) = ends_at {
        a["endsAt"] = Value::String(e.into());
    }
    a
}

fn alerts(ends_at: Option<&str>, which: &dyn Fn(&str) -> bool) -> Value {
    let all: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("alertname", "TradingDrawdownHigh"),
            ("severity", "critical"),
            ("cluster", "eu"),
            ("team", "risk"),
            ("env", "prod"),
            ("strategy", "mm"),
        ],
        vec![
            ("alertname", "TradingDrawdownHigh"),
            ("severity", "critical"),
            ("cluster", "us"),
            ("team", "risk"),
            ("env", "prod"),
            ("strategy", "arb"),
        ],
        vec![
            ("alertname", "TradingDrawdownHigh"),
            ("severity", "critical"),
            ("cluster", "eu"),
            ("team", "risk"),
            ("env", "dev"),
            ("strategy", "mm"),
        ],
        vec![
            ("alertname", "CircuitBreakerTripped"),
            ("severity", "critical"),
            ("cluster", "eu"),
            ("instance", "a:1"),
        ],
        vec![
            ("alertname", "ChannelBackpressure"),
            ("severity", "warning"),
            ("cluster", "eu"),
            ("channel", "orders"),
        ],
        vec![
            ("alertname", "ChannelBackpressure"),
            ("severity", "warning"),
            ("cluster", "us"),
            ("channel", "orders"),
        ],
        vec![
            ("alertname", "ExchangeWebSocketDown"),
            ("severity", "critical"),
            ("exchange", "binance"),
            ("cluster", "eu"),
        ],
        vec![
            ("alertname", "ExchangeWebSocketDown"),
            ("severity", "warning"),
            ("exchange", "kraken"),
        ],
        vec![
            ("alertname", "ExchangeWebSocketDown"),
            ("severity", "warning"),
            ("exchange", "testnet"),
        ],
        vec![
            ("alertname", "ModelDrift"),
            ("team", "quiet"),
            ("model", "m1"),
        ],
        vec![
            ("alertname", "ModelDrift"),
            ("team", "trading"),
            ("model", "m2"),
            ("env", "prod"),
        ],
        vec![("alertname", "Weird"), ("path", "a\"b\\c"), ("empty", "")],
    ];
    Value::Array(
        all.iter()
            .filter(|l| which(l[0].1))
            .map(|l| alert(l, ends_at))
            .collect(),
    )
}

fn post(url: &str, body: &Value) -> (u16, String) {
    let r = http::post(
        &format!("{url}/api/v2/alerts"),
        &[("Content-Type", "application/json")],
        serde_json::to_vec(body).expect("json"),
    )
    .expect("POST /api/v2/alerts");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// The comparable part of each webhook payload received under `prefix`.
fn notifications(cap: &CaptureServer, prefix: &str) -> BTreeSet<String> {
    cap.captured()
        .iter()
        .filter(|c| c.path.starts_with(prefix))
        .map(|c| {
            let v = c.json();
            let mut alerts: Vec<String> = v["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .map(|a| {
                    format!(
                        "{} {} {} {}",
                        a["status"], a["labels"], a["startsAt"], a["fingerprint"]
                    )
                })
                .collect();
            alerts.sort();
            format!(
                "path={} receiver={} status={} groupKey={} groupLabels={} commonLabels={} alerts={alerts:?}",
                &c.path[prefix.len()..],
                v["receiver"],
                v["status"],
                v["groupKey"],
                v["groupLabels"],
                v["commonLabels"]
            )
        })
        .collect()
}

#[test]
fn same_notifications_as_alertmanager() {
    let cap = CaptureServer::start();
    let am = Alertmanager::start(&am_config(&format!("{}/am", cap.url())));
    let dir = tempfile::tempdir().expect("tempdir");
    let am_file = dir.path().join("alertmanager.yml");
    std::fs::write(&am_file, am_config(&format!("{}/pg", cap.url()))).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!(
            "alertmanager_config: {}\nexternal_url: http://promgate.test\n",
            am_file.display()
        ),
    );

    let firing = alerts(None, &|_| true);
    assert_eq!(post(&am.url(), &firing).0, 200);
    assert_eq!(post(&pg.url(), &firing).0, 200);
    let wait_same = |what: &str| {
        e2e::eventually(Duration::from_secs(15), || {
            let a = notifications(&cap, "/am");
            let p = notifications(&cap, "/pg");
            if !a.is_empty() && a == p {
                Ok(a)
            } else {
                Err(format!(
                    "{what}: Alertmanager only: {:#?}\npromgate only: {:#?}",
                    a.difference(&p).collect::<Vec<_>>(),
                    p.difference(&a).collect::<Vec<_>>()
                ))
            }
        })
    };
    let first = wait_same("firing");
    // Eight groups as the tree says; the inhibited backpressure alert in eu is in no payload.
    assert!(first.len() >= 8, "{first:#?}");
    assert!(
        first
            .iter()
            .all(|n| !(n.contains("ChannelBackpressure") && n.contains(r#"\"cluster\":\"eu\""#))),
        "{first:#?}"
    );
    // The alert listings agree too: fingerprints, labels, receivers, state, inhibitedBy.
    let listing = |url: &str| -> Vec<String> {
        let v: Value = http::get(&format!("{url}/api/v2/alerts"))
            .expect("get")
            .json()
            .expect("json");
        let mut out: Vec<String> = v
            .as_array()
            .expect("list")
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} {} {} {} {}",
                    a["fingerprint"],
                    a["labels"],
                    a["annotations"],
                    a["startsAt"],
                    a["generatorURL"],
                    a["receivers"],
                    a["status"]
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(listing(&pg.url()), listing(&am.url()));
    let groups = |url: &str| -> Vec<String> {
        let v: Value = http::get(&format!("{url}/api/v2/alerts/groups"))
            .expect("get")
            .json()
            .expect("json");
        let mut out: Vec<String> = v
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| {
                let mut fps: Vec<String> = g["alerts"]
                    .as_array()
                    .expect("alerts")
                    .iter()
                    .map(|a| a["fingerprint"].to_string())
                    .collect();
                fps.sort();
                format!("{} {} {fps:?}", g["labels"], g["receiver"]["name"])
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(groups(&pg.url()), groups(&am.url()));
    // Let both settle (a second interval must add nothing), then resolve some alerts.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(notifications(&cap, "/am"), notifications(&cap, "/pg"));
    let now = chrono_now();
    let resolved = alerts(Some(&now), &|name| {
        name == "TradingDrawdownHigh" || name == "CircuitBreakerTripped" || name == "ModelDrift"
    });
    assert_eq!(post(&am.url(), &resolved).0, 200);
    assert_eq!(post(&pg.url(), &resolved).0, 200);
    let before = first.len();
    let all = e2e::eventually(Duration::from_secs(20), || {
        let a = notifications(&cap, "/am");
        let p = notifications(&cap, "/pg");
        if a.len() > before + 3 && a == p {
            Ok(a)
        } else {
            Err(format!(
                "resolved: Alertmanager only: {:#?}\npromgate only: {:#?}",
                a.difference(&p).collect::<Vec<_>>(),
                p.difference(&a).collect::<Vec<_>>()
            ))
        }
    });
    assert!(
        all.iter().any(|n| n.contains("status=\"resolved\"")),
        "{all:#?}"
    );
    // With the circuit breaker resolved, the backpressure alert in eu is no longer inhibited.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(notifications(&cap, "/am"), notifications(&cap, "/pg"));
    assert!(
        notifications(&cap, "/pg")
            .iter()
            .any(|n| n.contains("ChannelBackpressure") && n.contains(r#"\"cluster\":\"eu\""#))
    );
}

fn chrono_now() -> String {
    chrono::DateTime::from_timestamp_millis(e2e::now_ms())
        .expect("now")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn intake_and_silence_answers_match_alertmanager() {
    let cap = CaptureServer::start();
    let am = Alertmanager::start(&am_config(&format!("{}/am", cap.url())));
    let dir = tempfile::tempdir().expect("tempdir");
    let am_file = dir.path().join("alertmanager.yml");
    std::fs::write(&am_file, am_config(&format!("{}/pg", cap.url()))).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!("alertmanager_config: {}\n", am_file.display()),
    );
    let bodies = [
        r#"[{"labels":{"a-b":"value"}},{"labels":{}},{"labels":{"x":"y"},"startsAt":"2030-01-01T00:00:00Z","endsAt":"2020-01-01T00:00:00Z"}]"#,
        r#"[{"annotations":{}}]"#,
        r#"[{"labels":{"ok":"1"},"annotations":{"bad name":"x"}}]"#,
        r#"[{"labels":{"ok":"1"}}]"#,
    ];
    for b in bodies {
        let send = |url: &str| {
            let r = http::post(
                &format!("{url}/api/v2/alerts"),
                &[("Content-Type", "application/json")],
                b.as_bytes().to_vec(),
            )
            .expect("post");
            (
                r.status,
                String::from_utf8_lossy(&r.body).trim().to_string(),
            )
        };
        assert_eq!(send(&pg.url()), send(&am.url()), "body {b}");
    }
    // Silences: create, read, list with filter, expire, and the error answers.
    let sil = |url: &str, body: &str| {
        let r = http::post(
            &format!("{url}/api/v2/silences"),
            &[("Content-Type", "application/json")],
            body.as_bytes().to_vec(),
        )
        .expect("post");
        (
            r.status,
            String::from_utf8_lossy(&r.body).trim().to_string(),
        )
    };
    for body in [
        r#"{"matchers":[{"name":"a","value":".*","isRegex":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"matchers":[],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2021-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"matchers":[{"name":"a-b","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"matchers":[{"name":"a","value":"(","isRegex":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
        r#"{"id":"00000000-0000-4000-8000-000000000000","matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"x","comment":"y"}"#,
    ] {
        // Go's and Rust's regex engines word their errors differently: compare up to the
        // engine's own text.
        let cut = |(code, text): (u16, String)| match text.find("error parsing regexp: ") {
            Some(i) => (code, text[..i].to_string()),
            None => (code, text),
        };
        assert_eq!(
            cut(sil(&pg.url(), body)),
            cut(sil(&am.url(), body)),
            "silence {body}"
        );
    }
    let good = r#"{"matchers":[{"name":"alertname","value":"Drawdown","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"me","comment":"maintenance"}"#;
    let mut ids = Vec::new();
    for url in [pg.url(), am.url()] {
        let (code, body) = sil(&url, good);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let id = v["silenceID"].as_str().expect("id").to_string();
        let got: Value = http::get(&format!("{url}/api/v2/silence/{id}"))
            .expect("get")
            .json()
            .expect("json");
        assert_eq!(got["status"]["state"], "active");
        assert_eq!(got["matchers"][0]["isEqual"], true);
        let listed: Value = http::get(&format!(
            "{url}/api/v2/silences?filter=alertname%3DDrawdown"
        ))
        .expect("get")
        .json()
        .expect("json");
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        let none: Value = http::get(&format!("{url}/api/v2/silences?filter=alertname%3DOther"))
            .expect("get")
            .json()
            .expect("json");
        assert_eq!(none, json!([]));
        ids.push((url, id));
    }
    for (url, id) in &ids {
        let del = |id: &str| {
            let r = reqwest::blocking::Client::new()
                .delete(format!("{url}/api/v2/silence/{id}"))
                .send()
                .expect("delete");
            let code = r.status().as_u16();
            (code, r.text().unwrap_or_default().trim().to_string())
        };
        assert_eq!(del(id).0, 200);
        assert_eq!(del(id).0, 200, "expiring twice is fine in 0.25");
        assert_eq!(
            del("00000000-0000-4000-8000-000000000000"),
            (500, "\"silence not found\"".to_string())
        );
        let got: Value = http::get(&format!("{url}/api/v2/silence/{id}"))
            .expect("get")
            .json()
            .expect("json");
        assert_eq!(got["status"]["state"], "expired", "{url}");
        assert_eq!(
            http::get(&format!("{url}/api/v2/silence/nope"))
                .expect("get")
                .status,
            422
        );
    }
    // Silences survive a restart.
    let mut pg = pg;
    pg.restart();
    let listed: Value = http::get(&format!("{}/api/v2/silences", pg.url()))
        .expect("get")
        .json()
        .expect("json");
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["id"] == ids[0].1.as_str()),
        "{listed}"
    );
}

/// The real `amtool` (Alertmanager 0.25's CLI) manages promgate's silences and lists its
/// alerts.
#[test]
fn amtool_works_against_promgate() {
    let amtool = std::env::var("AMTOOL").unwrap_or_else(|_| "/usr/bin/amtool".into());
    assert!(
        std::path::Path::new(&amtool).exists(),
        "{amtool} missing: run scripts/setup.sh (Debian prometheus-alertmanager)"
    );
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        "alertmanager:\n  route: {receiver: hook}\n  receivers: [{name: hook}]\n",
    );
    let run = |args: &[&str]| -> String {
        let out = std::process::Command::new(&amtool)
            .arg(format!("--alertmanager.url={}", pg.url()))
            .args(args)
            .output()
            .expect("amtool");
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = run(&[
        "silence",
        "add",
        "alertname=Drawdown",
        "-c",
        "maint",
        "-a",
        "me",
        "-d",
        "1h",
    ]);
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(run(&["silence", "query", "-q", "alertname=Drawdown"]), id);
    assert!(run(&["silence", "query"]).contains("alertname=\"Drawdown\""));
    run(&["silence", "expire", &id]);
    assert_eq!(run(&["silence", "query", "-q"]), "");
    assert_eq!(run(&["silence", "query", "-q", "--expired"]), id);
    let body = json!([{"labels": {"alertname": "ExchangeWebSocketDown", "exchange": "kraken"}}]);
    assert_eq!(post(&pg.url(), &body).0, 200);
    let alerts = run(&["alert", "query"]);
    assert!(alerts.contains("ExchangeWebSocketDown"), "{alerts}");
}
