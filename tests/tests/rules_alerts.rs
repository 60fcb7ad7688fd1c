//! Scheduled rule evaluation over remote-written data: an alert goes pending, fires after
//! `for`, resolves when the condition clears; recording rules and `ALERTS` land in the store;
//! `/api/v1/rules` and `/api/v1/alerts` report it all; bad rule files keep promgate from
//! starting, naming what is wrong.

use std::time::{Duration, Instant};

use e2e::http;
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, now_ms};
use proto::v1::WriteRequest;
use serde_json::Value;

const RULES: &str = r#"
groups:
  - name: fast
    rules:
      - record: strategy:drawdown:max
        expr: max by (strategy) (cryptofunk_current_drawdown)
      - alert: FastDrawdown
        expr: strategy:drawdown:max > 0.15
        for: 2s
        labels:
          severity: critical
        annotations:
          summary: "Drawdown {{ $value | humanizePercentage }} on {{ $labels.strategy }}"
"#;

fn write(pg: &Promgate, v: f64) {
    let req = WriteRequest {
        timeseries: vec![series(
            labels(&[
                ("__name__", "cryptofunk_current_drawdown"),
                ("strategy", "mm"),
                ("venue", "x"),
            ]),
            &[(now_ms(), v)],
        )],
        metadata: vec![],
    };
    let r = http::post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("write");
    assert_eq!(r.status, 204);
}

fn api(pg: &Promgate, path: &str) -> Value {
    get_json(&format!("{}{path}", pg.url()))
}

fn get_json(url: &str) -> Value {
    let r = http::get(url).expect("get");
    let path = url;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json().expect("json")
}

fn alert_state(pg: &Promgate) -> Option<String> {
    let v = api(pg, "/api/v1/alerts");
    v["data"]["alerts"][0]["state"].as_str().map(str::to_string)
}

/// Writes `v` every 250 ms until `done` holds or `timeout` passes.
fn hold(pg: &Promgate, v: f64, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        write(pg, v);
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

#[test]
fn alert_goes_pending_fires_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yml"), RULES).expect("rules");
    let data = dir.path().join("data");
    let pg = Promgate::start(
        &data,
        &format!(
            "rule_files: [{}]\nevaluation_interval: 1s\n",
            dir.path().join("rules.yml").display()
        ),
    );
    assert!(
        hold(&pg, 0.2, Duration::from_secs(10), || alert_state(&pg)
            .as_deref()
            == Some("pending")),
        "never pending"
    );
    assert!(
        hold(&pg, 0.2, Duration::from_secs(10), || alert_state(&pg)
            .as_deref()
            == Some("firing")),
        "never firing"
    );

    let alert = api(&pg, "/api/v1/alerts")["data"]["alerts"][0].clone();
    assert_eq!(alert["labels"]["alertname"], "FastDrawdown");
    assert_eq!(alert["labels"]["strategy"], "mm");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["summary"], "Drawdown 20% on mm");
    assert_eq!(alert["value"], "2e-01");

    // What the rules wrote is in the store, queryable.
    let q = |expr: &str| {
        get_json(&http::url_with_query(
            &pg.url(),
            "/api/v1/query",
            &[("query", expr.to_string())],
        ))["data"]["result"]
            .clone()
    };
    assert_eq!(q("strategy:drawdown:max")[0]["value"][1], "0.2");
    assert_eq!(
        q("ALERTS{alertname=\"FastDrawdown\"}")[0]["metric"]["alertstate"],
        "firing"
    );
    assert_eq!(
        q("ALERTS_FOR_STATE")[0]["metric"]["alertname"],
        "FastDrawdown"
    );

    let rules = api(&pg, "/api/v1/rules");
    let g = &rules["data"]["groups"][0];
    assert_eq!(g["name"], "fast");
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][0]["health"], "ok");
    assert_eq!(g["rules"][1]["type"], "alerting");
    assert_eq!(g["rules"][1]["state"], "firing");
    assert_eq!(g["rules"][1]["duration"], 2.0);
    assert_eq!(g["rules"][1]["query"], "strategy:drawdown:max > 0.15");

    assert!(
        hold(&pg, 0.1, Duration::from_secs(10), || alert_state(&pg)
            .is_none()),
        "never resolved"
    );
    assert_eq!(
        api(&pg, "/api/v1/rules")["data"]["groups"][0]["rules"][1]["state"],
        "inactive"
    );
    let metrics = pg.metrics();
    assert!(
        metrics.contains("promgate_rule_group_evaluations_total{rule_group="),
        "{metrics}"
    );
}

#[test]
fn a_bad_rule_file_stops_the_start_and_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("bad.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n",
    )
    .expect("write");
    let cfg = dir.path().join("promgate.yml");
    std::fs::write(&cfg, format!("rule_files: [{}]\n", rules.display())).expect("write");
    let out = std::process::Command::new(e2e::server::promgate_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yml") && err.contains("parse error"),
        "{err}"
    );
}

#[test]
fn a_firing_alert_is_firing_again_after_a_crash_with_its_original_active_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yml"), RULES).expect("rules");
    let data = dir.path().join("data");
    let mut pg = Promgate::start(
        &data,
        &format!(
            "rule_files: [{}]\nevaluation_interval: 1s\n",
            dir.path().join("rules.yml").display()
        ),
    );
    assert!(
        hold(&pg, 0.2, Duration::from_secs(15), || alert_state(&pg)
            .as_deref()
            == Some("firing")),
        "never firing"
    );
    let before = api(&pg, "/api/v1/alerts")["data"]["alerts"][0]["activeAt"].clone();
    pg.restart();
    // At the first evaluation after the restart the alert is firing, not pending again.
    let mut states = Vec::new();
    assert!(
        hold(&pg, 0.2, Duration::from_secs(10), || {
            let s = alert_state(&pg);
            states.push(s.clone());
            s.is_some()
        }),
        "no alert after the restart"
    );
    assert_eq!(
        states.last().cloned().flatten().as_deref(),
        Some("firing"),
        "{states:?}"
    );
    // ALERTS_FOR_STATE holds activeAt in whole seconds (as Prometheus writes it, and as its
    // own restore reads it back): the restored time is the original to the second.
    let after = api(&pg, "/api/v1/alerts")["data"]["alerts"][0]["activeAt"].clone();
    let second = |v: &Value| {
        v.as_str()
            .expect("activeAt")
            .chars()
            .take(19)
            .collect::<String>()
    };
    assert_eq!(second(&after), second(&before), "{after} vs {before}");
}

fn group_names(pg: &Promgate) -> Vec<String> {
    api(pg, "/api/v1/rules")["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn reload(pg: &Promgate) -> (u16, String) {
    let r = http::post(&format!("{}/-/reload", pg.url()), &[], Vec::new()).expect("reload");
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn reload_keeps_unchanged_groups_carries_state_and_refuses_bad_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, RULES).expect("rules");
    let pg = Promgate::start(
        &dir.path().join("data"),
        &format!(
            "rule_files: [{}]\nevaluation_interval: 1s\n",
            file.display()
        ),
    );
    assert!(
        hold(&pg, 0.2, Duration::from_secs(15), || alert_state(&pg)
            .as_deref()
            == Some("firing")),
        "never firing"
    );
    let active_at = api(&pg, "/api/v1/alerts")["data"]["alerts"][0]["activeAt"].clone();

    // A new group beside the unchanged one.
    let extra =
        "\n  - name: other\n    rules:\n      - record: up:count\n        expr: count(up)\n";
    std::fs::write(&file, format!("{RULES}{extra}")).expect("rules");
    assert_eq!(
        reload(&pg),
        (
            200,
            "rules reloaded: 1 groups unchanged, 1 (re)started, 0 stopped".into()
        )
    );
    assert_eq!(group_names(&pg), vec!["fast", "other"]);
    assert_eq!(
        api(&pg, "/api/v1/alerts")["data"]["alerts"][0]["activeAt"],
        active_at
    );

    // The alerting group changes (a new annotation): it restarts with its alert state.
    let changed = RULES.replace(
        "summary:",
        "runbook: \"https://runbooks/x\"\n          summary:",
    );
    std::fs::write(&file, format!("{changed}{extra}")).expect("rules");
    assert_eq!(
        reload(&pg),
        (
            200,
            "rules reloaded: 1 groups unchanged, 1 (re)started, 0 stopped".into()
        )
    );
    assert!(hold(&pg, 0.2, Duration::from_secs(5), || {
        api(&pg, "/api/v1/alerts")["data"]["alerts"][0]["annotations"]["runbook"]
            == "https://runbooks/x"
    }));
    let alert = api(&pg, "/api/v1/alerts")["data"]["alerts"][0].clone();
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["activeAt"], active_at);

    // A broken file: 500 saying why, and the old rules stay in force.
    std::fs::write(
        &file,
        "groups:\n  - name: fast\n    rules:\n      - alert: X\n        expr: up ==\n",
    )
    .expect("rules");
    let (code, body) = reload(&pg);
    assert_eq!(code, 500);
    assert!(
        body.contains("previous ones stay in force") && body.contains("rules.yml"),
        "{body}"
    );
    assert_eq!(group_names(&pg), vec!["fast", "other"]);

    // SIGHUP reloads too: back to the original file, "other" stops.
    std::fs::write(&file, RULES).expect("rules");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pg.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    e2e::eventually(Duration::from_secs(10), || {
        let names = group_names(&pg);
        if names == vec!["fast"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
}
