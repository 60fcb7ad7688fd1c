//! The same alert group through a real Alertmanager 0.25 and through promgate's integrations,
//! both pointed at one capture server: the webhook, Slack and PagerDuty bodies must match
//! (promgate's Slack body adds `blocks` and a top-level `text`, which are removed before
//! comparing). Covers the firing notification and the resolved one after it.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use e2e::{Alertmanager, CaptureServer, Captured};
use notifiers::data::{Alert, Data, KV, Status, sort_alerts};
use notifiers::{GlobalConfig, ReceiverConfig, Templates, build_receiver};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn receiver_yaml(capture: &str) -> String {
    format!(
        r#"
name: team-x
webhook_configs:
  - url: {capture}/webhook
    send_resolved: true
  - url: {capture}/webhook-max
    max_alerts: 1
slack_configs:
  - api_url: {capture}/slack
    channel: '#alerts'
    send_resolved: true
    text: '{{{{ range .Alerts }}}}*{{{{ .Labels.alertname }}}}* {{{{ .Annotations.summary }}}}{{{{ "\n" }}}}{{{{ end }}}}'
    fields:
      - title: Severity
        value: '{{{{ .CommonLabels.severity | toUpper }}}}'
        short: true
pagerduty_configs:
  - routing_key: r0ut1ngk3y
    url: {capture}/pd
    severity: critical
    class: trading
    component: risk
    group: '{{{{ .CommonLabels.severity }}}}'
    links:
      - href: 'http://runbooks/{{{{ .CommonLabels.alertname }}}}'
        text: runbook
    images:
      - src: 'http://img/chart.png'
        alt: chart
        href: 'http://img'
"#
    )
}

fn am_config(capture: &str) -> String {
    let recv = receiver_yaml(capture)
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"
route:
  receiver: team-x
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - {}
"#,
        recv.trim_start()
    )
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

struct Input {
    labels: KV,
    annotations: KV,
    generator_url: String,
}

fn inputs() -> Vec<Input> {
    vec![
        Input {
            labels: KV::from_iter([
                ("alertname", "Drawdown"),
                ("job", "risk"),
                ("severity", "page"),
                ("desk", "fx"),
            ]),
            annotations: KV::from_iter([
                ("summary", "Drawdown 12% > 10% <fx>"),
                ("runbook", "http://runbooks/dd"),
            ]),
            generator_url: "http://prom:9090/graph?g0.expr=drawdown+%3E+0.1&g0.tab=1".into(),
        },
        Input {
            labels: KV::from_iter([
                ("alertname", "Drawdown"),
                ("job", "exec"),
                ("severity", "page"),
                ("desk", "rates"),
            ]),
            annotations: KV::from_iter([("summary", "Drawdown 11% \"rates\"")]),
            generator_url: String::new(),
        },
    ]
}

fn post(am: &Alertmanager, starts: DateTime<Utc>, ends: DateTime<Utc>) {
    let body: Vec<Value> = inputs()
        .iter()
        .map(|i| {
            serde_json::json!({
                "labels": i.labels,
                "annotations": i.annotations,
                "startsAt": ts(starts),
                "endsAt": ts(ends),
                "generatorURL": i.generator_url,
            })
        })
        .collect();
    am.post_alerts(&serde_json::to_string(&body).unwrap());
}

fn our_data(am: &Alertmanager, status: Status, starts: DateTime<Utc>, ends: DateTime<Utc>) -> Data {
    let mut alerts: Vec<Alert> = inputs()
        .into_iter()
        .map(|i| {
            Alert::new(
                status,
                i.labels,
                i.annotations,
                starts,
                Some(ends),
                i.generator_url,
            )
        })
        .collect();
    sort_alerts(&mut alerts);
    Data::new(
        "team-x",
        r#"{}:{alertname="Drawdown"}"#,
        KV::from_iter([("alertname", "Drawdown")]),
        alerts,
        am.url(),
    )
}

/// Sends `data` through our integrations to `capture`.
fn send_ours(capture: &CaptureServer, data: &Data) {
    let cfg: ReceiverConfig = serde_norway::from_str(&receiver_yaml(&capture.url())).unwrap();
    let global = GlobalConfig::default();
    let integrations = build_receiver(&cfg, &global, Arc::new(Templates::default())).unwrap();
    assert_eq!(integrations.len(), 4);
    let rt = tokio::runtime::Runtime::new().unwrap();
    for i in &integrations {
        rt.block_on(i.notifier.notify(data))
            .unwrap_or_else(|e| panic!("{} failed: {e}", i.name));
    }
}

fn strip_blocks(mut v: Value) -> Value {
    let m = v.as_object_mut().unwrap();
    assert!(
        m.remove("blocks").is_some(),
        "promgate's Slack body has blocks"
    );
    assert!(
        m.remove("text").is_some(),
        "promgate's Slack body has a top-level text"
    );
    v
}

/// Alertmanager's latest notification at `path` once one covers both alerts in `status`: under
/// load Alertmanager may flush a group before the second alert of one POST reached it, and then
/// sends the complete group one `group_interval` (1 s) later.
fn theirs_complete(cap: &CaptureServer, path: &str, status: &str) -> Captured {
    e2e::eventually(WAIT, || {
        let got = cap.captured_at(path);
        let complete = got.iter().rev().find(|c| {
            let j = c.json();
            match path {
                "/webhook" => j["alerts"]
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["status"] == status)),
                "/webhook-max" => {
                    j["truncatedAlerts"] == 1
                        && j["alerts"].as_array().is_some_and(|a| {
                            a.len() == 1 && a.iter().all(|x| x["status"] == status)
                        })
                        && j["status"] == status
                }
                "/slack" => j["attachments"][0]["title"].as_str().is_some_and(|t| {
                    let want = if status == "firing" {
                        "[FIRING:2]"
                    } else {
                        "[RESOLVED]"
                    };
                    t.contains(want) || t.ends_with(" x2")
                }),
                _ => j["payload"]["custom_details"][format!("num_{status}")] == "2",
            }
        });
        complete.cloned().ok_or_else(|| {
            format!(
                "no complete {status} notification at {path} yet: {} seen",
                got.len()
            )
        })
    })
}

#[track_caller]
fn assert_same(path: &str, theirs: &Captured, ours: &Captured) {
    let (t, mut o) = (theirs.json(), ours.json());
    if path == "/slack" {
        o = strip_blocks(o);
    }
    assert_eq!(
        t,
        o,
        "{path} differs\nAlertmanager: {}\npromgate:     {}",
        serde_json::to_string_pretty(&t).unwrap(),
        serde_json::to_string_pretty(&o).unwrap()
    );
    assert_eq!(
        theirs.header("content-type"),
        ours.header("content-type"),
        "{path}"
    );
    assert_eq!(
        theirs.header("user-agent"),
        ours.header("user-agent"),
        "{path}"
    );
    assert_eq!(theirs.method, ours.method);
}

#[test]
fn webhook_slack_pagerduty_match_alertmanager() {
    let theirs = CaptureServer::start();
    let ours = CaptureServer::start();
    let am = Alertmanager::start(&am_config(&theirs.url()));

    // Firing: startsAt in the past, endsAt in the future; sub-second parts on purpose.
    let now = Utc::now();
    let starts = now - chrono::Duration::milliseconds(600_250);
    let ends = now + chrono::Duration::milliseconds(3_600_500);
    let starts = DateTime::parse_from_rfc3339(&ts(starts)).unwrap().to_utc();
    let ends = DateTime::parse_from_rfc3339(&ts(ends)).unwrap().to_utc();
    post(&am, starts, ends);
    send_ours(&ours, &our_data(&am, Status::Firing, starts, ends));
    for p in ["/webhook", "/webhook-max", "/slack", "/pd"] {
        assert_same(
            p,
            &theirs_complete(&theirs, p, "firing"),
            &ours.captured_at(p)[0],
        );
    }
    let pd = ours.captured_at("/pd")[0].json();
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(
        pd["payload"]["summary"], "[FIRING:2] Drawdown (page)",
        "the subject Alertmanager's default template renders"
    );

    // Resolved: the same alerts with endsAt in the past.
    theirs.clear();
    ours.clear();
    let resolved_at = DateTime::parse_from_rfc3339(&ts(Utc::now() - chrono::Duration::seconds(1)))
        .unwrap()
        .to_utc();
    post(&am, starts, resolved_at);
    send_ours(&ours, &our_data(&am, Status::Resolved, starts, resolved_at));
    for p in ["/webhook", "/webhook-max", "/slack", "/pd"] {
        assert_same(
            p,
            &theirs_complete(&theirs, p, "resolved"),
            &ours.captured_at(p)[0],
        );
    }
    let pd = ours.captured_at("/pd")[0].json();
    assert_eq!(pd["event_action"], "resolve");
}

/// A user template file exercising the template language, loaded by both Alertmanager
/// (`templates:`) and promgate ([`Templates::load`]); the Slack title and text must match.
const USER_TEMPLATES: &str = r#"
{{ define "t.title" }}{{ .Status | title }} {{ .CommonLabels.alertname | toLower }} x{{ len .Alerts }}{{ end }}
{{ define "t.text" -}}
{{ range $i, $a := .Alerts -}}
{{ $i }}. {{ $a.Labels.desk | toUpper }} {{ printf "%q %5s|%-4s|%d" $a.Annotations.summary "ab" "c" 42 }}
{{- if eq $a.Status "firing" }} FIRING{{ else }} ok{{ end }}
{{ with $a.Annotations.runbook }}runbook={{ . }}{{ else }}no runbook{{ end }}
{{ end -}}
{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}
{{ reReplaceAll "([a-z]+)-([0-9]+)" "$2:$1" "abc-123 def-45" }}
{{ join "," (stringSlice "a" "b" "c") }} {{ match "^Draw" .CommonLabels.alertname }}
{{ if and (gt (len .Alerts.Firing) 0) (not (eq .Receiver "x")) }}yes{{ end }} {{ or "" "fallback" }} {{ and 1 0 }}
{{ index .CommonLabels "alertname" }} {{ (index .Alerts 0).Fingerprint }} {{ .GroupLabels.Names }} {{ .CommonLabels }}
{{ (index .Alerts 0).StartsAt }} {{ (index .Alerts 0).StartsAt.Unix }} {{ .ExternalURL }} {{ "a b&c/é" | urlquery }}
{{ html "<a href='x'>" }} {{ js "it's <b>" }} {{ print 1 2 "x" 3 }} {{ println "end" 1 }}
{{- /* a comment */ -}}
{{ $x := 0 }}{{ range .Alerts }}{{ $x = 1 }}{{ end }}x={{ $x }} {{ len "héllo" }} {{ .Alerts.Resolved | len }}
{{ range .Alerts }}{{ if eq .Status "resolved" }}{{ continue }}{{ end }}{{ .Labels.job }},{{ end }}
{{ with .CommonLabels.Remove (stringSlice "alertname") }}{{ .Values | join "+" }}{{ end }} {{ .CommonAnnotations.SortedPairs.Names }}
{{ end }}
"#;

#[test]
fn user_templates_render_like_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user.tmpl"), USER_TEMPLATES).unwrap();
    let theirs = CaptureServer::start();
    let ours = CaptureServer::start();
    let slack = |url: &str| {
        format!(
            "name: team-x\nslack_configs:\n  - api_url: {url}/slack\n    title: '{{{{ template \"t.title\" . }}}}'\n    text: '{{{{ template \"t.text\" . }}}}'\n"
        )
    };
    let recv = slack(&theirs.url())
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let am = Alertmanager::start(&format!(
        "templates: ['{}/*.tmpl']\nroute:\n  receiver: team-x\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - {}\n",
        dir.path().display(),
        recv.trim_start()
    ));
    let now = Utc::now();
    let starts = DateTime::parse_from_rfc3339(&ts(now - chrono::Duration::seconds(90)))
        .unwrap()
        .to_utc();
    let ends = DateTime::parse_from_rfc3339(&ts(now + chrono::Duration::hours(1)))
        .unwrap()
        .to_utc();
    post(&am, starts, ends);
    let got = [theirs_complete(&theirs, "/slack", "firing")];

    let cfg: ReceiverConfig = serde_norway::from_str(&slack(&ours.url())).unwrap();
    let templates = Templates::load(&[dir.path().join("*.tmpl")]).unwrap();
    let i = build_receiver(&cfg, &GlobalConfig::default(), Arc::new(templates))
        .unwrap()
        .remove(0);
    let d = our_data(&am, Status::Firing, starts, ends);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(i.notifier.notify(&d))
        .unwrap();
    let mine = ours.wait_for("/slack", 1, WAIT);
    let (t, o) = (got[0].json(), mine[0].json());
    assert_eq!(
        t["attachments"][0]["text"].as_str().unwrap(),
        o["attachments"][0]["text"].as_str().unwrap()
    );
    assert_eq!(
        t["attachments"][0]["title"].as_str().unwrap(),
        o["attachments"][0]["title"].as_str().unwrap()
    );
    assert_same("/slack", &got[0], &mine[0]);
}

/// `send_resolved: false` with a group holding a firing and a resolved alert: Alertmanager
/// sends only the firing one, with common labels over it; so does `Integration::data_for`.
#[test]
fn send_resolved_false_leaves_resolved_alerts_out() {
    let theirs = CaptureServer::start();
    let ours = CaptureServer::start();
    let hook = |url: &str| {
        format!(
            "name: team-x\nwebhook_configs:\n  - url: {url}/webhook\n    send_resolved: false\n"
        )
    };
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: team-x\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: team-x\n    webhook_configs:\n      - url: {}/webhook\n        send_resolved: false\n",
        theirs.url()
    ));
    let now = Utc::now();
    let starts = DateTime::parse_from_rfc3339(&ts(now - chrono::Duration::minutes(5)))
        .unwrap()
        .to_utc();
    let ended = DateTime::parse_from_rfc3339(&ts(now - chrono::Duration::seconds(1)))
        .unwrap()
        .to_utc();
    let ends = DateTime::parse_from_rfc3339(&ts(now + chrono::Duration::hours(1)))
        .unwrap()
        .to_utc();
    let ins = inputs();
    let body = serde_json::json!([
        {"labels": ins[0].labels, "annotations": ins[0].annotations, "startsAt": ts(starts), "endsAt": ts(ends), "generatorURL": ins[0].generator_url},
        {"labels": ins[1].labels, "annotations": ins[1].annotations, "startsAt": ts(starts), "endsAt": ts(ended), "generatorURL": ins[1].generator_url},
    ]);
    am.post_alerts(&body.to_string());
    let got = theirs.wait_for("/webhook", 1, WAIT);

    let mut alerts: Vec<Alert> = inputs()
        .into_iter()
        .zip([(Status::Firing, ends), (Status::Resolved, ended)])
        .map(|(i, (st, e))| {
            Alert::new(
                st,
                i.labels,
                i.annotations,
                starts,
                Some(e),
                i.generator_url,
            )
        })
        .collect();
    sort_alerts(&mut alerts);
    let d = Data::new(
        "team-x",
        r#"{}:{alertname="Drawdown"}"#,
        KV::from_iter([("alertname", "Drawdown")]),
        alerts,
        am.url(),
    );
    let cfg: ReceiverConfig = serde_norway::from_str(&hook(&ours.url())).unwrap();
    let i = build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap()
    .remove(0);
    let sent = i.data_for(&d).expect("something fires");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(i.notifier.notify(&sent))
        .unwrap();
    let mine = ours.wait_for("/webhook", 1, WAIT);
    assert_same("/webhook", &got[0], &mine[0]);
    assert_eq!(mine[0].json()["alerts"].as_array().unwrap().len(), 1);

    // Nothing firing: nothing to send.
    let mut all_resolved = d.clone();
    for a in &mut all_resolved.alerts {
        a.status = Status::Resolved;
    }
    assert!(i.data_for(&all_resolved).is_none());
}

/// A group whose PagerDuty event exceeds 512 KB: Alertmanager and promgate both replace the
/// custom details with the same note, and the rest of the event matches.
#[test]
fn oversized_pagerduty_event_like_alertmanager() {
    const N: usize = 4000;
    let theirs = CaptureServer::start();
    let ours = CaptureServer::start();
    let desc = "'{{ len .Alerts }}: {{ range .Alerts }}{{ .Labels.instance }} {{ end }}'";
    let pd = |url: &str| {
        format!(
            "name: team-x\npagerduty_configs:\n  - routing_key: k\n    url: {url}/pd\n    description: {desc}\n"
        )
    };
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: team-x\n  group_by: [alertname]\n  group_wait: 5s\n  group_interval: 1s\nreceivers:\n  - name: team-x\n    pagerduty_configs:\n      - routing_key: k\n        url: {}/pd\n        description: {desc}\n",
        theirs.url()
    ));
    let now = Utc::now();
    let starts = DateTime::parse_from_rfc3339(&ts(now - chrono::Duration::minutes(1)))
        .unwrap()
        .to_utc();
    let ends = DateTime::parse_from_rfc3339(&ts(now + chrono::Duration::hours(1)))
        .unwrap()
        .to_utc();
    let long = "x".repeat(200);
    let alerts: Vec<Alert> = (0..N)
        .map(|i| {
            Alert::new(
                Status::Firing,
                KV::from_iter([
                    ("alertname", "Big".to_string()),
                    ("instance", format!("i{i:05}")),
                ]),
                KV::from_iter([("summary", long.clone())]),
                starts,
                Some(ends),
                "",
            )
        })
        .collect();
    let body: Vec<Value> = alerts
        .iter()
        .map(|a| serde_json::json!({"labels": a.labels, "annotations": a.annotations, "startsAt": ts(starts), "endsAt": ts(ends)}))
        .collect();
    am.post_alerts(&serde_json::to_string(&body).unwrap());
    let got = e2e::eventually(WAIT, || {
        theirs
            .captured_at("/pd")
            .into_iter()
            .rev()
            .find(|c| {
                c.json()["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&format!("{N}: ")))
            })
            .ok_or_else(|| {
                format!(
                    "no complete event yet: {:?}",
                    theirs
                        .captured()
                        .iter()
                        .map(|c| c.json()["payload"]["summary"].clone())
                        .collect::<Vec<_>>()
                )
            })
    });
    let mut alerts = alerts;
    sort_alerts(&mut alerts);
    let d = Data::new(
        "team-x",
        r#"{}:{alertname="Big"}"#,
        KV::from_iter([("alertname", "Big")]),
        alerts,
        am.url(),
    );
    let cfg: ReceiverConfig = serde_norway::from_str(&pd(&ours.url())).unwrap();
    let i = build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap()
    .remove(0);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(i.notifier.notify(&d))
        .unwrap();
    let mine = ours.wait_for("/pd", 1, WAIT);
    assert!(
        got.json()["payload"]["custom_details"]["error"].is_string(),
        "Alertmanager truncated"
    );
    assert_eq!(
        got.json()["payload"]["summary"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        1024,
        "Alertmanager truncated the summary"
    );
    assert_same("/pd", &got, &mine[0]);
}
