//! `alert-bench`: alert delivery of promgate against a real Alertmanager 0.25, in one run, with
//! the same alertmanager.yml and the same alerts POSTed to both `/api/v2/alerts`; each delivers
//! to a webhook receiver inside this process, which timestamps arrivals.
//!
//! - Latency: `--alerts` alerts, each its own group (`group_by: [alertname, id]`), posted one
//!   at a time at `--rate` per second to both servers (to promgate first or to Alertmanager first,
//!   alternating). Per server: arrival − POST − `group_wait`, p50/p90/p99/max.
//! - Throughput: `--burst` alerts, each its own group, `group_wait: 0s`, POSTed in batches of
//!   100 to one server at a time (Alertmanager, then promgate, per round; `--rounds` rounds);
//!   notifications per second from the first POST to the last arrival, and per server
//!   CPU-second. promgate writes every notification to its SQLite outbox before sending it.
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/alert-bench
//! [--alerts 300] [--rate 50] [--group-wait-ms 1000] [--burst 3000] [--rounds 3]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use clap::Parser;
use e2e::alertmanager::Alertmanager;
use e2e::{Promgate, cpu_seconds, http};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Alert delivery benchmark: promgate vs Alertmanager 0.25")]
struct Args {
    /// Alerts in the latency phase.
    #[arg(long, default_value_t = 300)]
    alerts: usize,
    /// Latency-phase alerts per second.
    #[arg(long, default_value_t = 50)]
    rate: u64,
    /// group_wait of the latency phase, ms.
    #[arg(long, default_value_t = 1000)]
    group_wait_ms: u64,
    /// Alerts (= groups = notifications) per throughput round.
    #[arg(long, default_value_t = 3000)]
    burst: usize,
    /// Throughput rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Arrivals by (server, alert id).
type Arrivals = Arc<Mutex<HashMap<(String, String), Instant>>>;

async fn receive(
    State(arr): State<Arrivals>,
    Path(side): Path<String>,
    body: Bytes,
) -> &'static str {
    let now = Instant::now();
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        let mut a = arr.lock().expect("lock");
        for alert in v["alerts"].as_array().into_iter().flatten() {
            if let Some(id) = alert["labels"]["id"].as_str() {
                a.entry((side.clone(), id.to_string())).or_insert(now);
            }
        }
    }
    "ok"
}

fn start_receiver(arr: Arrivals) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new()
                .route("/{side}", axum::routing::post(receive))
                .with_state(arr);
            axum::serve(l, app).await.expect("receiver");
        });
    });
    format!("http://{addr}")
}

fn config(recv: &str, side: &str, group_wait_ms: u64) -> String {
    format!(
        r#"route:
  receiver: hook
  group_by: [alertname, id]
  group_wait: {group_wait_ms}ms
  group_interval: 10m
  repeat_interval: 4h
  routes:
    - matchers: ['phase="burst"']
      receiver: hook
      group_wait: 0s
receivers:
  - name: hook
    webhook_configs:
      - url: '{recv}/{side}'
        send_resolved: false
"#
    )
}

fn alert(phase: &str, id: &str) -> Value {
    json!({
        "labels": {"alertname": "BenchAlert", "phase": phase, "id": id, "severity": "critical", "strategy": "mm"},
        "annotations": {"summary": "bench"},
    })
}

fn post(url: &str, alerts: &Value) {
    let r = http::post(
        &format!("{url}/api/v2/alerts"),
        &[("Content-Type", "application/json")],
        serde_json::to_vec(alerts).expect("json"),
    )
    .expect("POST /api/v2/alerts");
    assert_eq!(r.status, 200, "{url}: {}", r.text());
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn wait_for(
    arr: &Arrivals,
    side: &str,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<Instant> = arr
            .lock()
            .expect("lock")
            .iter()
            .filter(|((s, id), _)| s == side && id.starts_with(prefix))
            .map(|(_, t)| *t)
            .collect();
        if got.len() >= n {
            return got.into_iter().max();
        }
        if Instant::now() > deadline {
            eprintln!(
                "{side}: only {} of {n} notifications for {prefix}",
                got.len()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let args = Args::parse();
    let arr: Arrivals = Arc::default();
    let recv = start_receiver(arr.clone());
    let am = Alertmanager::start(&config(&recv, "am", args.group_wait_ms));
    let dir = tempfile::tempdir().expect("tempdir");
    let am_file = dir.path().join("alertmanager.yml");
    std::fs::write(&am_file, config(&recv, "pg", args.group_wait_ms)).expect("write");
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        &format!("alertmanager_config: {}\n", am_file.display()),
    );
    let targets = [("am", am.url()), ("pg", pg.url())];

    // Latency.
    let mut posted: HashMap<(String, String), Instant> = HashMap::new();
    let gap = Duration::from_micros(1_000_000 / args.rate.max(1));
    for i in 0..args.alerts {
        let id = format!("lat-{i}");
        let body = Value::Array(vec![alert("latency", &id)]);
        let order: Vec<&(&str, String)> = if i % 2 == 0 {
            targets.iter().collect()
        } else {
            targets.iter().rev().collect()
        };
        for (side, url) in order {
            posted.insert((side.to_string(), id.clone()), Instant::now());
            post(url, &body);
        }
        std::thread::sleep(gap);
    }
    let gw = args.group_wait_ms as f64;
    let mut lat_rows = Vec::new();
    for (side, _) in &targets {
        wait_for(&arr, side, "lat-", args.alerts, Duration::from_secs(60));
        let a = arr.lock().expect("lock");
        let mut l: Vec<f64> = (0..args.alerts)
            .filter_map(|i| {
                let k = (side.to_string(), format!("lat-{i}"));
                Some(a.get(&k)?.duration_since(*posted.get(&k)?).as_secs_f64() * 1000.0 - gw)
            })
            .collect();
        l.sort_by(|x, y| x.total_cmp(y));
        lat_rows.push((
            side.to_string(),
            l.len(),
            pct(&l, 50.0),
            pct(&l, 90.0),
            pct(&l, 99.0),
            l.last().copied().unwrap_or(f64::NAN),
        ));
    }

    // Throughput.
    let mut tput: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for round in 0..args.rounds {
        for (side, url) in &targets {
            let pid = if *side == "am" {
                am.process().pid()
            } else {
                pg.pid()
            };
            let prefix = format!("burst-{round}-");
            let cpu0 = cpu_seconds(pid);
            let t0 = Instant::now();
            for chunk in (0..args.burst).collect::<Vec<_>>().chunks(100) {
                let body = Value::Array(
                    chunk
                        .iter()
                        .map(|i| alert("burst", &format!("{prefix}{i}")))
                        .collect(),
                );
                post(url, &body);
            }
            let last = wait_for(&arr, side, &prefix, args.burst, Duration::from_secs(120));
            let cpu = cpu_seconds(pid) - cpu0;
            if let Some(last) = last {
                let secs = last.duration_since(t0).as_secs_f64();
                tput.entry(side.to_string())
                    .or_default()
                    .push((args.burst as f64 / secs, args.burst as f64 / cpu.max(0.01)));
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let name = |s: &str| {
        if s == "am" {
            "Alertmanager 0.25"
        } else {
            "promgate"
        }
    };
    println!(
        "## Latency: POST to webhook arrival minus group_wait ({} ms), {} alerts at {}/s, one group each\n",
        args.group_wait_ms, args.alerts, args.rate
    );
    println!("| server | delivered | p50 ms | p90 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (side, n, p50, p90, p99, max) in &lat_rows {
        println!(
            "| {} | {n} | {p50:.1} | {p90:.1} | {p99:.1} | {max:.1} |",
            name(side)
        );
    }
    println!(
        "\n## Throughput: {} alerts = {} notifications per round, group_wait 0s, batches of 100, median of {} rounds\n",
        args.burst, args.burst, args.rounds
    );
    println!("| server | notifications/s | notifications per CPU-second |");
    println!("| --- | ---: | ---: |");
    let mut med = HashMap::new();
    for side in ["am", "pg"] {
        let rows = tput.get(side).cloned().unwrap_or_default();
        let mut rate: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let mut per_cpu: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let (r, c) = (median(&mut rate), median(&mut per_cpu));
        med.insert(side, (r, c));
        println!("| {} | {r:.0} | {c:.0} |", name(side));
    }
    let (am_r, am_c) = med["am"];
    let (pg_r, pg_c) = med["pg"];
    println!(
        "\npromgate / Alertmanager: throughput {:.2}x, per CPU-second {:.2}x; p99 latency beyond group_wait {:.1} ms vs {:.1} ms",
        pg_r / am_r,
        pg_c / am_c,
        lat_rows[1].4,
        lat_rows[0].4
    );
}
