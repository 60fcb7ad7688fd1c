//! Email to a real SMTP server (Python aiosmtpd started by the test): headers, both multipart
//! parts, STARTTLS with authentication, implicit TLS on port 465, transient and permanent SMTP
//! failures, and the same headers and envelope as a real Alertmanager 0.25 sends.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use e2e::{Alertmanager, ReceivedMail, SmtpOptions, SmtpServer, SmtpTls};
use notifiers::data::{Alert, Data, KV, Status};
use notifiers::{GlobalConfig, Integration, ReceiverConfig, Templates, build_receiver};

const WAIT: Duration = Duration::from_secs(30);

fn data(external_url: &str) -> Data {
    let t = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).single().unwrap();
    Data::new(
        "oncall",
        r#"{}:{alertname="Breaker"}"#,
        KV::from_iter([("alertname", "Breaker")]),
        vec![
            Alert::new(
                Status::Firing,
                KV::from_iter([
                    ("alertname", "Breaker"),
                    ("venue", "binance"),
                    ("severity", "page"),
                ]),
                KV::from_iter([("summary", "Circuit breaker tripped on binance — halt")]),
                t,
                None,
                "http://prom/graph?g0.expr=breaker&g0.tab=1",
            ),
            Alert::new(
                Status::Resolved,
                KV::from_iter([
                    ("alertname", "Breaker"),
                    ("venue", "kraken"),
                    ("severity", "page"),
                ]),
                KV::new(),
                t,
                Some(t),
                "",
            ),
        ],
        external_url,
    )
}

fn build(yaml: &str) -> Integration {
    let cfg: ReceiverConfig = serde_norway::from_str(yaml).unwrap();
    let mut v = build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    v.remove(0)
}

fn send(i: &Integration, d: &Data) -> Result<(), notifiers::NotifyError> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(i.notifier.notify(d))
}

/// Decodes a quoted-printable body.
fn qp_decode(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The parts of a multipart message: (headers, decoded body).
fn parts(m: &ReceivedMail) -> Vec<(String, String)> {
    let ct = m.header("Content-Type").unwrap();
    assert!(ct.starts_with("multipart/alternative"), "{ct}");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"')
        .to_string();
    let body = m.data.split_once("\r\n\r\n").unwrap().1;
    body.split(&format!("--{boundary}"))
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let (h, b) = p.trim_start_matches("\r\n").split_once("\r\n\r\n").unwrap();
            let body = if h.to_ascii_lowercase().contains("quoted-printable") {
                qp_decode(b)
            } else {
                b.to_string()
            };
            let body = body.replace("\r\n", "\n");
            (h.to_string(), body)
        })
        .collect()
}

#[test]
fn headers_and_both_parts() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let i = build(&format!(
        r#"
name: oncall
email_configs:
  - to: 'ops@example.com, Risk Desk <risk@example.com>'
    from: 'promgate <alerts@example.com>'
    smarthost: {}
    require_tls: false
    send_resolved: true
    headers:
      x-desk: '{{{{ .CommonLabels.severity }}}}-desk'
"#,
        smtp.addr()
    ));
    assert!(i.send_resolved);
    send(&i, &data("http://promgate:9091")).unwrap();
    let m = smtp.wait_for(1, WAIT).remove(0);
    assert_eq!(m.mail_from, "alerts@example.com");
    assert_eq!(m.rcpt_tos, ["ops@example.com", "risk@example.com"]);
    assert!(!m.tls && !m.authenticated);
    assert_eq!(m.helo.as_deref(), Some("localhost"));
    assert_eq!(m.header("Subject").unwrap(), "[FIRING:1] Breaker (page)");
    assert_eq!(m.header("From").unwrap(), "promgate <alerts@example.com>");
    assert!(m.header("To").unwrap().contains("risk@example.com"));
    assert_eq!(m.header("X-Desk").unwrap(), "page-desk");
    assert_eq!(m.header("MIME-Version").unwrap(), "1.0");
    assert!(m.header("Date").is_some());
    let id = m.header("Message-ID").unwrap();
    assert!(id.starts_with('<') && id.ends_with('>'), "{id}");
    let p = parts(&m);
    assert_eq!(p.len(), 2, "text and html parts: {}", m.data);
    assert!(p[0].0.contains("text/plain"), "{}", p[0].0);
    assert!(p[1].0.contains("text/html"), "{}", p[1].0);
    let text = &p[0].1;
    assert!(text.starts_with("[FIRING:1] Breaker (page)\n"), "{text}");
    assert!(text.contains("Alerts Firing:\nLabels:\n - alertname = Breaker\n - severity = page\n - venue = binance\nAnnotations:\n - summary = Circuit breaker tripped on binance — halt\nSource: http://prom/graph?g0.expr=breaker&g0.tab=1\n"), "{text}");
    assert!(text.contains("Alerts Resolved:\nLabels:\n - alertname = Breaker\n - severity = page\n - venue = kraken\n"), "{text}");
    let html = &p[1].1;
    assert!(
        html.contains("<title>[FIRING:1] Breaker (page)</title>"),
        "{html}"
    );
    assert!(
        html.contains("Circuit breaker tripped on binance — halt"),
        "{html}"
    );
    assert!(html.contains("g0.expr=breaker&amp;g0.tab=1"), "{html}");
    assert!(html.contains("[1] Resolved"), "{html}");
}

#[test]
fn starttls_and_auth() {
    let smtp = SmtpServer::start(SmtpOptions {
        auth: Some(("promgate".into(), "s3cret".into())),
        tls: SmtpTls::Starttls,
        ..SmtpOptions::default()
    });
    let ca = smtp.ca_file.clone().unwrap();
    let yaml = |password: &str| {
        format!(
            r#"
name: oncall
email_configs:
  - to: ops@example.com
    from: alerts@example.com
    smarthost: {}
    hello: promgate.test
    auth_username: promgate
    auth_password: {password}
    tls_config:
      ca_file: {}
"#,
            smtp.addr(),
            ca.display()
        )
    };
    let i = build(&yaml("s3cret"));
    send(&i, &data("http://promgate:9091")).unwrap();
    let m = smtp.wait_for(1, WAIT).remove(0);
    assert!(m.tls, "STARTTLS was used");
    assert!(m.authenticated, "AUTH was used");
    assert_eq!(m.helo.as_deref(), Some("promgate.test"));

    // A wrong password is a permanent SMTP error (535) and never leaks the password.
    let e = send(&build(&yaml("wrong-pass")), &data("")).unwrap_err();
    assert_eq!(e.reason, "smtp");
    assert!(!e.retryable, "{e:?}");
    assert!(!e.message.contains("wrong-pass"));

    // The server's certificate is not trusted without ca_file.
    let untrusted = build(&format!(
        "name: x\nemail_configs:\n  - to: a@b.c\n    from: a@b.c\n    smarthost: {}\n",
        smtp.addr()
    ));
    let e = send(&untrusted, &data("")).unwrap_err();
    assert!(e.retryable, "{e:?}");
}

#[test]
fn require_tls_against_a_server_without_starttls_fails() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let i = build(&format!(
        "name: x\nemail_configs:\n  - to: a@b.c\n    from: a@b.c\n    smarthost: {}\n",
        smtp.addr()
    ));
    let e = send(&i, &data("")).unwrap_err();
    assert_eq!(e.reason, "smtp");
    assert!(smtp.received().is_empty());
}

#[test]
fn transient_and_permanent_smtp_failures() {
    let smtp = SmtpServer::start(SmtpOptions {
        fail: vec![451, 554],
        ..SmtpOptions::default()
    });
    let i = build(&format!(
        "name: x\nemail_configs:\n  - to: a@b.c\n    from: a@b.c\n    smarthost: {}\n    require_tls: false\n",
        smtp.addr()
    ));
    let e = send(&i, &data("")).unwrap_err();
    assert!(e.retryable, "451 is transient: {e:?}");
    let e = send(&i, &data("")).unwrap_err();
    assert!(!e.retryable, "554 is permanent: {e:?}");
    send(&i, &data("")).unwrap();
    assert_eq!(smtp.wait_for(1, WAIT).len(), 1);
}

#[test]
fn implicit_tls_on_port_465() {
    let smtp = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::Smtps,
        port: Some(465),
        ..SmtpOptions::default()
    });
    let i = build(&format!(
        "name: x\nemail_configs:\n  - to: a@b.c\n    from: a@b.c\n    smarthost: 127.0.0.1:465\n    require_tls: false\n    tls_config:\n      ca_file: {}\n",
        smtp.ca_file.as_ref().unwrap().display()
    ));
    send(&i, &data("")).unwrap();
    assert!(smtp.wait_for(1, WAIT)[0].tls);
}

#[test]
fn same_headers_and_envelope_as_alertmanager() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let email = |indent: &str| {
        format!(
            "{indent}email_configs:\n{indent}  - to: 'ops@example.com, risk@example.com'\n{indent}    from: 'Alerts <alerts@example.com>'\n{indent}    smarthost: {}\n{indent}    require_tls: false\n{indent}    headers:\n{indent}      X-Desk: 'fx {{{{ .Status }}}}'\n",
            smtp.addr()
        )
    };
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: oncall\n{}",
        email("    ")
    ));
    let t = Utc::now() - chrono::Duration::minutes(5);
    am.post_alerts(&format!(
        r#"[{{"labels":{{"alertname":"Breaker","venue":"binance","severity":"page"}},"annotations":{{"summary":"tripped"}},"startsAt":"{}","generatorURL":"http://prom/g"}}]"#,
        t.to_rfc3339()
    ));
    let theirs = smtp.wait_for(1, WAIT).remove(0);
    let d = Data::new(
        "oncall",
        r#"{}:{alertname="Breaker"}"#,
        KV::from_iter([("alertname", "Breaker")]),
        vec![Alert::new(
            Status::Firing,
            KV::from_iter([
                ("alertname", "Breaker"),
                ("venue", "binance"),
                ("severity", "page"),
            ]),
            KV::from_iter([("summary", "tripped")]),
            t,
            None,
            "http://prom/g",
        )],
        am.url(),
    );
    send(&build(&format!("name: oncall\n{}", email(""))), &d).unwrap();
    let ours = smtp.wait_for(2, WAIT).remove(1);
    assert_eq!(theirs.mail_from, ours.mail_from);
    assert_eq!(theirs.rcpt_tos, ours.rcpt_tos);
    for h in ["Subject", "To", "From", "X-Desk", "MIME-Version"] {
        assert_eq!(theirs.header(h), ours.header(h), "header {h}");
    }
    assert_eq!(theirs.helo, ours.helo);
}

/// Explicit `text` and `html` templates: both parts decode to what Alertmanager 0.25 sends
/// (its HTML part comes from Go's `html/template`: text and attribute values escaped,
/// `safeHtml` kept).
#[test]
fn text_and_html_parts_like_alertmanager() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let email = |indent: &str| {
        format!(
            "{indent}email_configs:\n{indent}  - to: ops@example.com\n{indent}    from: alerts@example.com\n{indent}    smarthost: {}\n{indent}    require_tls: false\n{indent}    text: '{{{{ .CommonAnnotations.summary }}}} {{{{ (index .Alerts 0).GeneratorURL }}}}'\n{indent}    html: '<p title=\"{{{{ .CommonLabels.venue }}}}\">{{{{ .CommonAnnotations.summary }}}}</p><a href=\"{{{{ (index .Alerts 0).GeneratorURL }}}}\">src</a>{{{{ \"<i>ok</i>\" | safeHtml }}}}'\n",
            smtp.addr()
        )
    };
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: oncall\n  group_by: [alertname]\n  group_wait: 1s\nreceivers:\n  - name: oncall\n{}",
        email("    ")
    ));
    let t = Utc::now() - chrono::Duration::minutes(5);
    let summary = "tripped <hard> & \"fast\" 'x' — é";
    let url = "http://prom/graph?g0.expr=a+b&g0.tab=1&x=é|\"";
    let labels = KV::from_iter([("alertname", "Breaker"), ("venue", "o'hare \"x\"")]);
    am.post_alerts(
        &serde_json::json!([{
            "labels": labels,
            "annotations": {"summary": summary},
            "startsAt": t.to_rfc3339(),
            "generatorURL": url,
        }])
        .to_string(),
    );
    let theirs = smtp.wait_for(1, WAIT).remove(0);
    let d = Data::new(
        "oncall",
        r#"{}:{alertname="Breaker"}"#,
        KV::from_iter([("alertname", "Breaker")]),
        vec![Alert::new(
            Status::Firing,
            labels,
            KV::from_iter([("summary", summary)]),
            t,
            None,
            url,
        )],
        am.url(),
    );
    send(&build(&format!("name: oncall\n{}", email(""))), &d).unwrap();
    let ours = smtp.wait_for(2, WAIT).remove(1);
    let (tp, op) = (parts(&theirs), parts(&ours));
    assert_eq!(tp.len(), 2, "{}", theirs.data);
    assert_eq!(tp[0].1, op[0].1, "text part");
    assert_eq!(tp[1].1, op[1].1, "html part");
    assert_eq!(theirs.header("Subject"), ours.header("Subject"));
}
