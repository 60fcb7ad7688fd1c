//! `notify` bench: webhook notifications per second and per CPU-second, promgate's webhook
//! integration against a real Alertmanager 0.25 delivering the same notifications to the same
//! kind of local capture server.
//!
//! Alertmanager: N alerts with distinct `alertname`s (so N groups, `group_wait: 0s`) POSTed in
//! batches of 500 to `/api/v2/alerts`; measured from the first POST until the capture server
//! has all N webhook notifications; CPU = Alertmanager's utime+stime over that span. This
//! includes Alertmanager's routing, grouping, dedup and notification log; promgate's side is
//! the integration stage only (template data, JSON, HTTP POST) with 64 sends in flight, so the
//! ratio is an upper bound on what the whole promgate pipeline can reach, and the figure the
//! outbox must not fall below. promgate's CPU is this whole process's CPU over its run, which
//! includes the capture server receiving the N requests: an overestimate of promgate's cost.
//!
//! Usage: `cargo bench -p notifiers --bench notify -- [--groups 2000] [--runs 3]`

#![allow(clippy::unwrap_used)] // a bench: a failed unwrap is a failed run

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use e2e::{Alertmanager, CaptureServer, cpu_seconds};
use notifiers::data::{Alert, Data, KV, Status};
use notifiers::{GlobalConfig, ReceiverConfig, Templates, build_receiver};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    secs: f64,
    cpu: f64,
}

fn alertmanager_run(n: usize) -> Run {
    let cap = CaptureServer::start();
    let am = Alertmanager::start(&format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1h\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}/hook\n        send_resolved: false\n",
        cap.url()
    ));
    let pid = am.process().pid();
    let starts = Utc::now().to_rfc3339();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| {
                serde_json::json!({
                    "labels": {"alertname": format!("Alert{i}"), "venue": "binance", "severity": "page"},
                    "annotations": {"summary": format!("alert {i} fired")},
                    "startsAt": starts,
                    "generatorURL": "http://promgate:9091/graph",
                })
            })
            .collect();
        am.post_alerts(&serde_json::to_string(&body).unwrap());
    }
    e2e::eventually(Duration::from_secs(120), || {
        let got = cap.captured().len();
        if got >= n {
            Ok(())
        } else {
            Err(format!("{got} of {n}"))
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    Run { secs, cpu }
}

fn promgate_run(n: usize) -> Run {
    let cap = CaptureServer::start();
    let cfg: ReceiverConfig = serde_norway::from_str(&format!(
        "name: hook\nwebhook_configs:\n  - url: {}/hook\n    send_resolved: false\n",
        cap.url()
    ))
    .unwrap();
    let integration = build_receiver(
        &cfg,
        &GlobalConfig::default(),
        Arc::new(Templates::default()),
    )
    .unwrap()
    .remove(0);
    let now = Utc::now();
    let datas: Vec<Data> = (0..n)
        .map(|i| {
            let labels = KV::from_iter([
                ("alertname", format!("Alert{i}")),
                ("venue", "binance".into()),
                ("severity", "page".into()),
            ]);
            let group = KV::from_iter([("alertname", format!("Alert{i}"))]);
            Data::new(
                "hook",
                format!("{{}}:{{alertname=\"Alert{i}\"}}"),
                group,
                vec![Alert::new(
                    Status::Firing,
                    labels,
                    KV::from_iter([("summary", format!("alert {i} fired"))]),
                    now,
                    None,
                    "http://promgate:9091/graph",
                )],
                "http://promgate:9091",
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cpu0 = cpu_seconds(std::process::id());
    let t0 = Instant::now();
    rt.block_on(async {
        use futures_util::StreamExt;
        futures_util::stream::iter(datas.iter())
            .map(|d| integration.notifier.notify(d))
            .buffer_unordered(64)
            .for_each(|r| {
                r.unwrap();
                async {}
            })
            .await;
    });
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(cap.captured().len(), n);
    let cpu = (cpu_seconds(std::process::id()) - cpu0).max(0.01);
    Run { secs, cpu }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let n = arg("--groups", 2000);
    let runs = arg("--runs", 3);
    let (mut am_rate, mut am_cpu_rate, mut pg_rate, mut pg_cpu_rate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs {
        let am = alertmanager_run(n);
        let pg = promgate_run(n);
        eprintln!(
            "run {r}: Alertmanager {:.2}s {:.2} CPU-s; promgate (with capture server) {:.2}s {:.2} CPU-s",
            am.secs, am.cpu, pg.secs, pg.cpu
        );
        am_rate.push(n as f64 / am.secs);
        am_cpu_rate.push(n as f64 / am.cpu.max(0.001));
        pg_rate.push(n as f64 / pg.secs);
        pg_cpu_rate.push(n as f64 / pg.cpu);
    }
    let (a, ac, p, pc) = (
        median(am_rate),
        median(am_cpu_rate),
        median(pg_rate),
        median(pg_cpu_rate),
    );
    println!("| {n} groups, 1 alert each, webhook | notifications/s | per CPU-second |");
    println!("| --- | --- | --- |");
    println!("| Alertmanager 0.25 (POST to delivery, whole pipeline) | {a:.0} | {ac:.0} |");
    println!(
        "| promgate webhook integration (render + POST, 64 in flight; CPU includes the capture server) | {p:.0} | {pc:.0} |"
    );
    println!(
        "| ratio promgate / Alertmanager | {:.1}x | {:.1}x |",
        p / a,
        pc / ac
    );
}
