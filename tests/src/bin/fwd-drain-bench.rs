//! Backlog drain benchmark: a forwarder (promgate or vmagent) takes `--samples` samples while
//! its receiver is down, then the receiver (VictoriaMetrics single node) comes up, and the
//! bench measures how long the forwarder takes to deliver the whole backlog and the CPU it
//! spends doing so.
//!
//! The outage is a closed port: the forwarder's remote-write URL points at a loopback port
//! nobody listens on; when the backlog is written, the bench opens that port with a TCP relay
//! to the receiver. Measured per round, from the moment the port opens:
//! - *drain*: until the receiver's `vm_rows_inserted_total{type="promremotewrite"}` reaches
//!   the backlog (includes the forwarder's wait for its next retry);
//! - *active*: from the first row arriving to the last (the transfer itself);
//! - the forwarder's CPU seconds (utime + stime from `/proc`) over the drain, and samples per
//!   CPU-second.
//!
//! Rounds are interleaved across targets, each with fresh processes and data; medians are
//! reported.
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/fwd-drain-bench
//! [--targets promgate,vmagent] [--samples 10000000] [--rounds 3]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use e2e::http;
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, VictoriaMetrics, Vmagent, cpu_seconds, free_port, median, now_ms};
use proto::v1::WriteRequest;

#[derive(Debug, Parser)]
#[command(about = "Forwarding backlog drain: promgate vs vmagent into VictoriaMetrics")]
struct Args {
    /// Targets, comma-separated: promgate, vmagent.
    #[arg(long, default_value = "promgate,vmagent", value_delimiter = ',')]
    targets: Vec<String>,
    /// Backlog size in samples (a multiple of 100,000).
    #[arg(long, default_value_t = 10_000_000)]
    samples: usize,
    /// Rounds per target (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The promgate binary; default `$PROMGATE_BIN`, else `<workspace>/target/release/promgate`.
    #[arg(long)]
    promgate_bin: Option<std::path::PathBuf>,
}

/// 10,000 series; each request holds 200 series × 10 samples.
const SERIES: usize = 10_000;
const PER_SERIES_PER_REQUEST: usize = 10;
const SERIES_PER_REQUEST: usize = 200;

/// The backlog's requests, in order (each series' samples ascending across requests).
fn payloads(samples: usize) -> Vec<Bytes> {
    let batches = samples / (SERIES * PER_SERIES_PER_REQUEST);
    let span = (batches * PER_SERIES_PER_REQUEST) as i64 * 1000;
    let base = now_ms() - span - 60_000;
    let mut out = Vec::new();
    for b in 0..batches {
        for chunk in 0..SERIES / SERIES_PER_REQUEST {
            let timeseries = (0..SERIES_PER_REQUEST)
                .map(|j| {
                    let i = chunk * SERIES_PER_REQUEST + j;
                    let samples: Vec<(i64, f64)> = (0..PER_SERIES_PER_REQUEST)
                        .map(|k| {
                            let n = b * PER_SERIES_PER_REQUEST + k;
                            (base + n as i64 * 1000, (i * 7 + n) as f64 + 0.5)
                        })
                        .collect();
                    series(
                        labels(&[
                            ("__name__", "drain_orders_total"),
                            ("job", "execution-engine"),
                            ("instance", &format!("exec-{}", i % 20)),
                            ("symbol", &format!("SYM{}", i / 20)),
                            ("env", "prod"),
                        ]),
                        &samples,
                    )
                })
                .collect();
            out.push(Bytes::from(encode_v1(&WriteRequest {
                timeseries,
                metadata: vec![],
            })));
        }
    }
    out
}

/// A forwarder under test, with the receiver it drains into once the port opens.
enum Forwarder {
    Promgate(Promgate, #[allow(dead_code)] tempfile::TempDir),
    Vmagent(Vmagent),
}

impl Forwarder {
    fn start(name: &str, bin: &std::path::Path, remote: &str) -> Self {
        match name {
            "promgate" => {
                let data = tempfile::tempdir().expect("tempdir");
                // Requests of up to 10,000 samples, as vmagent's blocks
                // (`-remoteWrite.maxRowsPerBlock`, default 10000).
                let config = format!(
                    "remote_write:\n  - url: {remote}\n    queue_config:\n      max_samples_per_send: 10000\n"
                );
                Forwarder::Promgate(Promgate::start_bin(bin, data.path(), &config), data)
            }
            "vmagent" => Forwarder::Vmagent(Vmagent::start(remote)),
            other => panic!("unknown target {other:?} (promgate, vmagent)"),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Forwarder::Promgate(p, _) => p.pid(),
            Forwarder::Vmagent(v) => v.pid(),
        }
    }

    fn write_url(&self) -> String {
        match self {
            Forwarder::Promgate(p, _) => p.write_url(),
            Forwarder::Vmagent(v) => v.write_url(),
        }
    }
}

/// Sends the backlog over 4 connections, each series' requests in order (a request's series
/// all share one request slot per batch, and batches are sent one after the other).
async fn send(client: &reqwest::Client, url: &str, bodies: &[Bytes]) {
    let per_batch = SERIES / SERIES_PER_REQUEST;
    for batch in bodies.chunks(per_batch) {
        let mut tasks = Vec::new();
        for part in batch.chunks(per_batch.div_ceil(4)) {
            let (client, url, part) = (client.clone(), url.to_string(), part.to_vec());
            tasks.push(tokio::spawn(async move {
                for body in part {
                    let r = client
                        .post(&url)
                        .header("Content-Type", proto::headers::CONTENT_TYPE_V1)
                        .header("Content-Encoding", "snappy")
                        .header(proto::headers::VERSION, "0.1.0")
                        .body(body)
                        .send()
                        .await
                        .expect("send");
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    assert!(status.is_success(), "{status}: {text}");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    }
}

/// Relays connections on `port` to `upstream` until the runtime stops.
async fn relay(port: u16, upstream: std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the relay port");
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

fn rows_inserted(vm: &VictoriaMetrics) -> f64 {
    http::get(&format!("{}/metrics", vm.url()))
        .ok()
        .and_then(|r| {
            http::metric_value(
                &r.text(),
                "vm_rows_inserted_total{type=\"promremotewrite\"}",
            )
        })
        .unwrap_or(0.0)
}

struct Round {
    drain: Duration,
    active: Duration,
    /// Over the drain.
    cpu: f64,
    /// From the first write to the end of the drain: taking the backlog in, and sending it.
    cpu_total: f64,
}

fn round(
    rt: &tokio::runtime::Runtime,
    name: &str,
    bin: &std::path::Path,
    bodies: &[Bytes],
    samples: usize,
) -> Round {
    let vm = VictoriaMetrics::start();
    let port = free_port();
    let remote = format!("http://127.0.0.1:{port}/api/v1/write");
    let fwd = Forwarder::start(name, bin, &remote);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let cpu_start = cpu_seconds(fwd.pid());
    rt.block_on(send(&client, &fwd.write_url(), bodies));
    // Let the forwarder notice the outage and settle into retrying.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rows_inserted(&vm), 0.0);
    let upstream: std::net::SocketAddr = vm
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("VictoriaMetrics address");
    let pid = fwd.pid();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let relay = rt.spawn(relay(port, upstream));
    let mut first = None;
    let deadline = t0 + Duration::from_secs(900);
    loop {
        let rows = rows_inserted(&vm);
        if rows > 0.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if rows >= samples as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {rows} of {samples} rows after 900 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    let end = cpu_seconds(pid);
    relay.abort();
    Round {
        drain: done - t0,
        active: done - first.unwrap_or(t0),
        cpu: end - cpu0,
        cpu_total: end - cpu_start,
    }
}

fn main() {
    let args = Args::parse();
    let bin = args
        .promgate_bin
        .clone()
        .or_else(|| std::env::var_os("PROMGATE_BIN").map(Into::into))
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/promgate")
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!("encoding {} samples...", args.samples);
    let bodies = payloads(args.samples);
    let samples = bodies.len() * SERIES_PER_REQUEST * PER_SERIES_PER_REQUEST;
    let mut results: Vec<(String, Vec<Round>)> = args
        .targets
        .iter()
        .map(|t| (t.clone(), Vec::new()))
        .collect();
    for r in 0..args.rounds {
        for i in 0..results.len() {
            let k = (i + r) % results.len();
            let name = results[k].0.clone();
            let res = round(&rt, &name, &bin, &bodies, samples);
            eprintln!(
                "round {r} {name}: drain {:.2} s, active {:.2} s, CPU {:.2} s ({:.2} s with the intake)",
                res.drain.as_secs_f64(),
                res.active.as_secs_f64(),
                res.cpu,
                res.cpu_total,
            );
            results[k].1.push(res);
        }
    }
    println!(
        "| forwarder | drain (s) | active transfer (s) | samples/s (active) | CPU-s in the drain | CPU-s intake + drain | samples per CPU-s (intake + drain) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut per_cpu = Vec::new();
    for (name, rounds) in &results {
        let drain = median(
            &rounds
                .iter()
                .map(|r| r.drain.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        let active = median(
            &rounds
                .iter()
                .map(|r| r.active.as_secs_f64())
                .collect::<Vec<_>>(),
        );
        let cpu = median(&rounds.iter().map(|r| r.cpu).collect::<Vec<_>>());
        let total = median(&rounds.iter().map(|r| r.cpu_total).collect::<Vec<_>>());
        per_cpu.push((drain, samples as f64 / total));
        println!(
            "| {name} | {drain:.2} | {active:.2} | {:.2}M | {cpu:.2} | {total:.2} | {:.2}M |",
            samples as f64 / active / 1e6,
            samples as f64 / total / 1e6
        );
    }
    if per_cpu.len() == 2 {
        println!(
            "\n{} / {}: drain time {:.2}x, samples per CPU-s (intake + drain) {:.2}x (medians of {} rounds of {} samples)",
            results[0].0,
            results[1].0,
            per_cpu[0].0 / per_cpu[1].0,
            per_cpu[0].1 / per_cpu[1].1,
            args.rounds,
            samples
        );
    }
}
