//! Webhook, Slack and PagerDuty integrations against a local capture server: retry signals
//! (429 with Retry-After, 5xx, network errors retryable; 400 permanent; one request per
//! attempt), webhook truncation and auth, Slack's per-URL rate limit and `api_url_file`,
//! PagerDuty's summary and size limits, secrets kept out of errors, and config errors that
//! name the receiver, integration, index and field.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use e2e::CaptureServer;
use notifiers::data::{Alert, Data, KV, Status};
use notifiers::{GlobalConfig, Integration, ReceiverConfig, Templates, build_receiver};

fn alert(i: usize, status: Status) -> Alert {
    let t = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
    Alert::new(
        status,
        KV::from_iter([
            ("alertname", "WsDown".to_string()),
            ("venue", format!("v{i}")),
        ]),
        KV::from_iter([("summary", format!("websocket {i} down"))]),
        t,
        None,
        "",
    )
}

fn data(n: usize) -> Data {
    Data::new(
        "r",
        r#"{}:{alertname="WsDown"}"#,
        KV::from_iter([("alertname", "WsDown")]),
        (0..n).map(|i| alert(i, Status::Firing)).collect(),
        "http://promgate",
    )
}

fn build(yaml: &str) -> Vec<Integration> {
    let cfg: ReceiverConfig = serde_norway::from_str(yaml).unwrap();
    build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn build_err(yaml: &str) -> notifiers::ConfigError {
    let cfg: ReceiverConfig = serde_norway::from_str(yaml).unwrap();
    build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap_err()
}

#[tokio::test]
async fn retry_signals() {
    let cap = CaptureServer::start();
    for kind in ["webhook", "slack", "pagerduty"] {
        cap.clear();
        cap.script(&[(500, None), (429, Some(7)), (400, None), (200, None)]);
        let yaml = match kind {
            "webhook" => format!(
                "name: r\nwebhook_configs:\n  - url: {}/hook/t0ken\n",
                cap.url()
            ),
            "slack" => format!(
                "name: r\nslack_configs:\n  - api_url: {}/hook/t0ken\n",
                cap.url()
            ),
            _ => format!(
                "name: r\npagerduty_configs:\n  - routing_key: k\n    url: {}/hook/t0ken\n",
                cap.url()
            ),
        };
        let n = build(&yaml).remove(0);
        assert_eq!(n.name, kind);
        let d = data(1);
        let e = n.notifier.notify(&d).await.unwrap_err();
        assert!(e.retryable, "{kind} 500: {e:?}");
        assert_eq!(e.reason, "http_5xx");
        assert!(!e.message.contains("t0ken"), "{kind}: secret in {e}");
        let e = n.notifier.notify(&d).await.unwrap_err();
        assert!(e.retryable, "{kind} 429: {e:?}");
        assert_eq!(e.reason, "http_429");
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = n.notifier.notify(&d).await.unwrap_err();
        assert!(!e.retryable, "{kind} 400 is permanent: {e:?}");
        assert_eq!(e.reason, "http_4xx");
        n.notifier.notify(&d).await.unwrap();
        // One request per attempt: retrying is the caller's (the outbox's) job.
        assert_eq!(cap.captured().len(), 4, "{kind}");
    }
}

#[tokio::test]
async fn network_errors_are_retryable_and_redacted() {
    let port = e2e::free_port();
    let n = build(&format!(
        "name: r\nwebhook_configs:\n  - url: http://127.0.0.1:{port}/secret-path\n"
    ))
    .remove(0);
    let e = n.notifier.notify(&data(1)).await.unwrap_err();
    assert!(e.retryable);
    assert_eq!(e.reason, "network");
    assert!(!e.message.contains("secret-path"), "{e}");
}

#[tokio::test]
async fn webhook_max_alerts_and_auth() {
    let cap = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let v = build(&format!(
        r#"
name: r
webhook_configs:
  - url: {u}/a
    max_alerts: 2
    http_config:
      basic_auth: {{username: user, password: pa55}}
  - url: {u}/b
    send_resolved: false
    http_config:
      authorization: {{credentials_file: {t}}}
"#,
        u = cap.url(),
        t = token.display()
    ));
    assert!(v[0].send_resolved && !v[1].send_resolved);
    for i in &v {
        i.notifier.notify(&data(3)).await.unwrap();
    }
    let a = &cap.captured_at("/a")[0];
    let j = a.json();
    assert_eq!(j["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(j["truncatedAlerts"], 1);
    assert_eq!(j["version"], "4");
    assert_eq!(a.header("authorization"), Some("Basic dXNlcjpwYTU1"));
    let b = &cap.captured_at("/b")[0];
    assert_eq!(b.json()["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(b.json()["truncatedAlerts"], 0);
    assert_eq!(b.header("authorization"), Some("Bearer tok-123"));
}

#[tokio::test]
async fn slack_rate_limit_url_file_and_blocks() {
    let cap = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("url");
    std::fs::write(&f, format!("{}/services/T/B/x\n", cap.url())).unwrap();
    let n = build(&format!(
        "name: r\nslack_configs:\n  - api_url_file: {}\n    title: 'T {{{{ .Status }}}}'\n    text: '{{{{ len .Alerts }}}} alerts'\n",
        f.display()
    ))
    .remove(0);
    let d = data(2);
    let start = Instant::now();
    n.notifier.notify(&d).await.unwrap();
    n.notifier.notify(&d).await.unwrap();
    n.notifier.notify(&d).await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "three messages to one webhook take at least 2 s: {elapsed:?}"
    );
    let got = cap.captured_at("/services/T/B/x");
    assert_eq!(got.len(), 3);
    let j = got[0].json();
    assert_eq!(j["attachments"][0]["title"], "T firing");
    assert_eq!(j["attachments"][0]["text"], "2 alerts");
    assert_eq!(j["attachments"][0]["color"], "danger");
    assert_eq!(j["blocks"][0]["type"], "header");
    assert_eq!(j["blocks"][0]["text"]["text"], "T firing");
    assert_eq!(j["blocks"][1]["text"]["text"], "2 alerts");
    assert_eq!(j["text"], j["attachments"][0]["fallback"]);
}

#[tokio::test]
async fn pagerduty_limits_and_dedup_key() {
    let cap = CaptureServer::start();
    let n = build(&format!(
        r#"
name: r
pagerduty_configs:
  - routing_key: k
    url: {}/pd
    description: '{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}} {{{{ end }}}}'
    details:
      big: '{{{{ range .Alerts }}}}{{{{ .Labels.venue }}}}{{{{ .Annotations.summary }}}}{{{{ .Annotations.summary }}}}{{{{ end }}}}'
"#,
        cap.url()
    ))
    .remove(0);
    // 20,000 alerts: the summary exceeds 1024 characters, the details exceed 512 KB.
    let d = data(20_000);
    n.notifier.notify(&d).await.unwrap();
    let j = cap.captured_at("/pd")[0].json();
    let summary = j["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with('…'));
    assert_eq!(
        j["payload"]["custom_details"],
        serde_json::json!({"error": "Custom details have been removed because the original event exceeds the maximum size of 512KB"})
    );
    assert!(cap.captured_at("/pd")[0].body.len() <= 512_000);
    assert_eq!(j["event_action"], "trigger");
    // sha256 of the group key, as Alertmanager's notify.Key.Hash.
    assert_eq!(
        j["dedup_key"],
        notifiers::pagerduty::dedup_key(r#"{}:{alertname="WsDown"}"#)
    );
    assert_eq!(
        notifiers::pagerduty::dedup_key("{}:{}"),
        sha256_hex("{}:{}")
    );
}

/// SHA-256 in hex by the system's sha256sum, an implementation independent of ours.
fn sha256_hex(s: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn config_errors_name_receiver_integration_index_and_field() {
    let e = build_err("name: team\nslack_configs:\n  - channel: x\n");
    assert_eq!(
        (e.receiver.as_str(), e.integration, e.index, e.field),
        ("team", "slack_configs", 0, "api_url")
    );
    assert!(e.to_string().contains("no global Slack API URL"), "{e}");

    let e = build_err("name: team\npagerduty_configs:\n  - routing_key: a\n  - url: http://x\n");
    assert_eq!(
        (e.integration, e.index, e.field),
        ("pagerduty_configs", 1, "routing_key")
    );

    let e = build_err("name: team\nemail_configs:\n  - to: a@b.c\n");
    assert_eq!((e.integration, e.field), ("email_configs", "smarthost"));

    let e = build_err("name: team\nwebhook_configs:\n  - url: ftp://x\n");
    assert_eq!((e.integration, e.field), ("webhook_configs", "url"));

    let e = build_err(
        "name: team\nslack_configs:\n  - api_url: http://x\n    title: '{{ template \"nope\" . }}'\n",
    );
    assert_eq!(e.field, "title");

    let e = build_err("name: team\nopsgenie_configs:\n  - api_key: x\n");
    assert_eq!(e.integration, "opsgenie_configs");

    let r: Result<ReceiverConfig, _> = serde_norway::from_str(
        "name: team\nslack_configs:\n  - api_url: http://x\n    colour: red\n",
    );
    assert!(r.unwrap_err().to_string().contains("colour"));

    // Secrets never print.
    let cfg: ReceiverConfig = serde_norway::from_str(
        "name: t\npagerduty_configs:\n  - routing_key: sup3rs3cret\nslack_configs:\n  - api_url: http://hooks/T/s3cr3tpath\n",
    )
    .unwrap();
    let dbg = format!("{cfg:?}");
    assert!(
        !dbg.contains("sup3rs3cret") && !dbg.contains("s3cr3tpath"),
        "{dbg}"
    );
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        !json.contains("sup3rs3cret") && !json.contains("s3cr3tpath"),
        "{json}"
    );
}

#[tokio::test]
async fn webhook_over_tls_with_ca_and_client_certificate() {
    let srv = e2e::HttpsCapture::start(true);
    let (cert, key) = srv.client_cert.clone().unwrap();
    let yaml = |tls: &str| {
        format!(
            "name: r\nwebhook_configs:\n  - url: {}/tls\n    http_config:\n      tls_config:\n{tls}",
            srv.url()
        )
    };
    let ok = build(&yaml(&format!(
        "        ca_file: {}\n        cert_file: {}\n        key_file: {}\n",
        srv.ca_file.display(),
        cert.display(),
        key.display()
    )))
    .remove(0);
    ok.notifier.notify(&data(1)).await.unwrap();
    let got = srv.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["path"], "/tls");
    assert_eq!(got[0]["client_cert"], true);
    let body: serde_json::Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["version"], "4");

    // Without the CA the server certificate is not trusted: a retryable network error.
    let untrusted = build(&yaml("        insecure_skip_verify: false\n")).remove(0);
    let e = untrusted.notifier.notify(&data(1)).await.unwrap_err();
    assert!(e.retryable && e.reason == "network", "{e:?}");
    assert_eq!(srv.received().len(), 1);
}
