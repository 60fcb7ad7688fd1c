//! The Alertmanager downstream client against a real Alertmanager 0.25: alerts appear in its
//! `/api/v2/alerts` with the labels, annotations, `startsAt`, `endsAt` and `generatorURL` sent,
//! and disappear once re-sent resolved. Against a capture server: the URL built from
//! `path_prefix`, basic auth, and delivery when one of two Alertmanagers is down.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use chrono::{DateTime, Duration, SubsecRound, Utc};
use e2e::{Alertmanager, CaptureServer};
use notifiers::alertmanager::{AlertmanagerClient, AlertmanagerConfig, PostableAlert};
use notifiers::data::KV;

fn client(yaml: &str) -> AlertmanagerClient {
    let cfg: AlertmanagerConfig = serde_norway::from_str(yaml).unwrap();
    AlertmanagerClient::new(&cfg, 0).unwrap_or_else(|e| panic!("{e}"))
}

fn alert(venue: &str, starts: DateTime<Utc>, ends: DateTime<Utc>) -> PostableAlert {
    PostableAlert {
        labels: KV::from_iter([
            ("alertname", "WsDown"),
            ("venue", venue),
            ("severity", "page"),
        ]),
        annotations: KV::from_iter([("summary", format!("{venue} websocket down"))]),
        starts_at: Some(starts),
        ends_at: Some(ends),
        generator_url: format!("http://promgate:9091/graph?venue={venue}"),
    }
}

fn parse(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[test]
fn alerts_reach_a_real_alertmanager() {
    let am = Alertmanager::start("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    let port = am.url().rsplit(':').next().unwrap().to_string();
    let c = client(&format!(
        "static_configs:\n  - targets: ['127.0.0.1:{port}']\ntimeout: 5s\napi_version: v2\n"
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let starts = (Utc::now() - Duration::minutes(3)).trunc_subsecs(3);
    let ends = (Utc::now() + Duration::minutes(4)).trunc_subsecs(3);
    rt.block_on(c.send(&[
        alert("binance", starts, ends),
        alert("kraken", starts, ends),
    ]))
    .unwrap();
    let got = am.alerts();
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    for a in got {
        let venue = a["labels"]["venue"].as_str().unwrap();
        assert_eq!(
            a["labels"],
            serde_json::json!({"alertname": "WsDown", "venue": venue, "severity": "page"})
        );
        assert_eq!(
            a["annotations"]["summary"],
            format!("{venue} websocket down")
        );
        assert_eq!(parse(&a["startsAt"]), starts);
        assert_eq!(parse(&a["endsAt"]), ends);
        assert_eq!(
            a["generatorURL"],
            format!("http://promgate:9091/graph?venue={venue}")
        );
        assert_eq!(a["status"]["state"], "active");
    }
    // Resolved: endsAt now; the alert leaves the active list.
    let resolved = Utc::now().trunc_subsecs(3);
    rt.block_on(c.send(&[alert("binance", starts, resolved)]))
        .unwrap();
    e2e::eventually(std::time::Duration::from_secs(10), || {
        let got = am.alerts();
        let venues: Vec<String> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"]["venue"].as_str().unwrap().to_string())
            .collect();
        if venues == ["kraken"] {
            Ok(())
        } else {
            Err(format!("active: {venues:?}"))
        }
    });
}

#[tokio::test]
async fn path_prefix_auth_and_one_of_two_down() {
    let cap = CaptureServer::start();
    let addr = cap.url().trim_start_matches("http://").to_string();
    let down = format!("127.0.0.1:{}", e2e::free_port());
    let c = client(&format!(
        "static_configs:\n  - targets: ['{down}', '{addr}']\npath_prefix: /am\nbasic_auth:\n  username: prom\n  password: pw\n"
    ));
    assert_eq!(
        c.urls(),
        [
            format!("http://{down}/am/api/v2/alerts"),
            format!("http://{addr}/am/api/v2/alerts")
        ]
    );
    let now = Utc::now();
    c.send(&[alert("x", now, now + Duration::minutes(4))])
        .await
        .unwrap();
    let got = cap.captured_at("/am/api/v2/alerts");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some("Basic cHJvbTpwdw=="));
    let body = got[0].json();
    assert_eq!(body[0]["labels"]["venue"], "x");
    assert!(body[0]["startsAt"].is_string() && body[0]["endsAt"].is_string());

    // Every Alertmanager down: a retryable error.
    let c = client(&format!("static_configs:\n  - targets: ['{down}']\n"));
    let e = c.send(&[alert("x", now, now)]).await.unwrap_err();
    assert!(e.retryable, "{e:?}");
}

#[test]
fn unsupported_settings_are_named() {
    for (yaml, field) in [
        (
            "api_version: v1\nstatic_configs: [{targets: ['a:1']}]\n",
            "api_version",
        ),
        ("file_sd_configs: [{files: [x]}]\n", "file_sd_configs"),
        ("static_configs: []\n", "static_configs"),
    ] {
        let cfg: AlertmanagerConfig = serde_norway::from_str(yaml).unwrap();
        let Err(e) = AlertmanagerClient::new(&cfg, 3) else {
            panic!("{yaml} accepted")
        };
        assert_eq!((e.index, e.field), (3, field), "{yaml}: {e}");
    }
    assert!(serde_norway::from_str::<AlertmanagerConfig>("bogus: 1\n").is_err());
}

/// What Prometheus 2.42 itself POSTs to an Alertmanager, captured: our `PostableAlert` has the
/// same fields and time format, and `firing_ends_at` gives the `endsAt` Prometheus gives.
#[test]
fn same_shape_as_prometheus_sends() {
    let cap = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n        labels: {severity: page}\n        annotations: {summary: 'always on'}\n",
    )
    .unwrap();
    let addr = cap.url().trim_start_matches("http://").to_string();
    // A 1 s resend delay: Prometheus drops the first send when its Alertmanager discovery has
    // not synced yet, and would otherwise wait a minute to send again.
    let prom = e2e::Prometheus::start_with_args(
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{addr}']}}]\n",
            rules.display()
        ),
        &["--rules.alert.resend-delay=1s"],
    );
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cap.wait_for("/api/v2/alerts", 1, std::time::Duration::from_secs(30))
    }))
    .unwrap_or_else(|_| {
        panic!(
            "Prometheus sent nothing; log:\n{}",
            prom.process().log_tail()
        )
    });
    let theirs = got[0].json();
    let theirs = &theirs[0];
    let starts = parse(&theirs["startsAt"]);
    let ends = parse(&theirs["endsAt"]);
    // endsAt = the evaluation time of this send + 4 x max(resend delay, interval); the send
    // happens k whole evaluation intervals after the alert fired (startsAt).
    let first = notifiers::alertmanager::firing_ends_at(
        starts,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
    );
    let k = (ends - first).num_milliseconds();
    assert!(k >= 0 && k % 1000 == 0, "startsAt {starts}, endsAt {ends}");
    let ours = PostableAlert {
        labels: serde_json::from_value(theirs["labels"].clone()).unwrap(),
        annotations: serde_json::from_value(theirs["annotations"].clone()).unwrap(),
        starts_at: Some(starts),
        ends_at: Some(ends),
        generator_url: theirs["generatorURL"].as_str().unwrap().to_string(),
    };
    let ours = serde_json::to_value(&ours).unwrap();
    assert_eq!(&ours, theirs, "the same JSON as Prometheus sends");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
}
