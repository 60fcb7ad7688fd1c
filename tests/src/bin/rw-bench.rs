//! `rw-bench`: remote-write ingest benchmark of promgate against Prometheus 2.42's receiver and
//! VictoriaMetrics single node, in one run, with the same pre-encoded payloads.
//!
//! For each scenario the bench starts every target fresh (empty data directory, free loopback
//! port), encodes all payloads up front (trading-style label sets, 2,000 samples per request,
//! timestamps current and increasing per round), then runs rounds interleaved across targets
//! (the order rotates per round). A round POSTs the round's requests over `--connections`
//! concurrent connections; it measures wall time and the server's CPU seconds (utime+stime
//! from `/proc/PID/stat`, delta over the send). After the rounds it verifies through each
//! target's own read API that the data landed (series count for a selector, exact samples of
//! spot-checked series), and prints a markdown table of medians and promgate's ratios.
//!
//! Scenarios (a batch writes every series of the scenario once; an append scenario's round is
//! `--batches` batches, 10 by default, sent one after another, so a round is 1M samples and
//! lasts long enough to measure CPU in clock ticks):
//! - `10k_x10`: 10,000 series × 10 samples per batch (appends to existing series; one
//!   unmeasured warm-up round creates them),
//! - `100k_x1`: 100,000 series × 1 sample per batch (likewise),
//! - `500k_new`: 500,000 series never seen before in every round, 1 sample each (one batch).
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/rw-bench
//! [--targets promgate,prometheus,vm] [--scenarios 10k_x10,100k_x1,500k_new] [--rounds 3]
//! [--connections 4] [--out FILE]`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use e2e::http::{self, ExportSeries};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Prometheus, Promgate, VictoriaMetrics, Vmagent, cpu_seconds, median, now_ms};
use proto::v1::{Label, WriteRequest};

#[derive(Debug, Parser)]
#[command(about = "Remote-write ingest benchmark: promgate vs Prometheus 2.42 vs VictoriaMetrics")]
struct Args {
    /// Targets, comma-separated: promgate, prometheus, vm, vmagent (forwarding to its own
    /// VictoriaMetrics sink, verified there), promgate-fwd (promgate forwarding to its own
    /// VictoriaMetrics sink), promgate-fwd-encoded (the same with a relabel rule that adds a
    /// label to every series, so every request is re-encoded rather than sent as received),
    /// vmagent-relabel (vmagent with
    /// that same rule).
    #[arg(
        long,
        default_value = "promgate,prometheus,vm,vmagent",
        value_delimiter = ','
    )]
    targets: Vec<String>,
    /// Scenarios, comma-separated: 10k_x10, 100k_x1, 500k_new.
    #[arg(
        long,
        default_value = "10k_x10,100k_x1,500k_new",
        value_delimiter = ','
    )]
    scenarios: Vec<String>,
    /// Measured rounds per scenario (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent connections per target.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 2000)]
    samples_per_request: usize,
    /// Batches per round in the append scenarios (each writes every series once), so a round
    /// lasts long enough to measure: 10 gives 1M samples per round.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    /// Divide every scenario's series count by this (for quick checks of the bench itself).
    #[arg(long, default_value_t = 1)]
    scale_down: usize,
    /// The promgate binary; default `$PROMGATE_BIN`, else `<workspace>/target/release/promgate`
    /// (a debug build would measure the wrong thing; pass it here explicitly to use one).
    #[arg(long)]
    promgate_bin: Option<std::path::PathBuf>,
    /// Also append the markdown report to this file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    series: usize,
    samples_per_series: usize,
    /// Every round writes series never seen before (no warm-up round).
    new_series_each_round: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "10k_x10",
        series: 10_000,
        samples_per_series: 10,
        new_series_each_round: false,
    },
    Scenario {
        name: "100k_x1",
        series: 100_000,
        samples_per_series: 1,
        new_series_each_round: false,
    },
    Scenario {
        name: "500k_new",
        series: 500_000,
        samples_per_series: 1,
        new_series_each_round: true,
    },
];

/// Spacing of samples, as a 10s scrape interval would give.
const STEP_MS: i64 = 10_000;

// ---------------------------------------------------------------------------------------------
// Payloads: trading label sets.

/// A relabel rule that adds a label to every series (which the verification's selectors
/// still match): a forwarder must relabel and re-encode every series.
const RELABEL_RULE: &str = "{target_label: forwarded_by, replacement: relay}";

const METRICS: [&str; 10] = [
    "orders_submitted_total",
    "orders_filled_total",
    "orders_rejected_total",
    "trades_total",
    "position_quantity",
    "position_notional_usd",
    "pnl_unrealized_usd",
    "quote_spread_bps",
    "book_depth_usd",
    "order_latency_seconds_sum",
];
const EXCHANGES: [&str; 8] = [
    "binance", "coinbase", "kraken", "okx", "bybit", "cme", "nasdaq", "nyse",
];
const STRATEGIES: [&str; 6] = [
    "mean_reversion",
    "momentum",
    "stat_arb",
    "market_making",
    "pairs",
    "trend",
];
const SIDES: [&str; 2] = ["buy", "sell"];
const VERIFY_METRIC: &str = "orders_submitted_total";
const VERIFY_EXCHANGE: &str = "binance";

/// The label set of series `id` (unique per id: metric, side and symbol are a mixed-radix
/// decomposition of it; the other labels derive from the symbol). `generation` names the
/// symbol family, so the new-series scenario gets fresh symbols every round.
fn series_labels(id: usize, generation: usize) -> Vec<Label> {
    let metric = METRICS[id % 10];
    let side = SIDES[(id / 10) % 2];
    let sym = id / 20;
    let exchange = EXCHANGES[sym % 8];
    let strategy = STRATEGIES[(sym / 8) % 6];
    let instance = format!("trader-{:02}.prod:9102", sym % 24);
    let symbol = format!("G{generation}S{sym:06}");
    let venue = format!("{exchange}-{}", ["spot", "perp", "futures"][sym % 3]);
    let job = if metric.starts_with("order") || metric == "trades_total" {
        "execution-engine"
    } else if metric.starts_with("position") || metric.starts_with("pnl") {
        "risk-service"
    } else {
        "market-data"
    };
    labels(&[
        ("__name__", metric),
        ("job", job),
        ("instance", &instance),
        ("exchange", exchange),
        ("symbol", &symbol),
        ("strategy", strategy),
        ("venue", &venue),
        ("side", side),
        ("env", "prod"),
    ])
}

/// Sample `k` (counted over the whole scenario) of series `id`: counters grow, gauges move.
fn sample_value(id: usize, k: usize) -> f64 {
    if METRICS[id % 10].ends_with("_total") {
        ((id % 997) * 100 + k * (1 + id % 7)) as f64
    } else {
        let h = (id as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add((k as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9));
        ((h >> 40) as f64) / 1024.0 - 4096.0
    }
}

/// A spot-checked series: its generation, id and every sample written to it.
struct Spot {
    generation: usize,
    id: usize,
    samples: Vec<(i64, f64)>,
}

/// What a scenario writes: per round, the encoded requests, and what to verify.
struct Plan {
    /// rounds[r][b] = request bodies of batch b of round r (round 0 is the warm-up when there
    /// is one). A batch writes every series of the scenario once; batches are sent one after
    /// the other so no series ever has two requests in flight (out-of-order otherwise).
    rounds: Vec<Vec<Vec<Bytes>>>,
    samples_per_round: usize,
    warmup: bool,
    /// Spot-checked series with all their samples.
    spot: Vec<Spot>,
    /// Series matching the verify selector, over all rounds.
    verify_count: usize,
    verify_range: (i64, i64),
}

fn plan(
    s: &Scenario,
    measured_rounds: usize,
    per_request: usize,
    scale_down: usize,
    batches: usize,
) -> Plan {
    let n = s.series / scale_down.max(1);
    let warmup = !s.new_series_each_round;
    let total_rounds = measured_rounds + usize::from(warmup);
    // A slot is one batch: every series once, `per_series` samples each.
    let batches = if s.new_series_each_round {
        1
    } else {
        batches.max(1)
    };
    let slots = total_rounds * batches;
    let per_series = s.samples_per_series;
    let series_per_request = (per_request / per_series).max(1);
    // All timestamps in the past: the last slot ends about a minute ago.
    let span = (slots * per_series) as i64 * STEP_MS;
    let t0 = now_ms() - span - 60_000;
    let ts = |slot: usize, j: usize| t0 + ((slot * per_series + j) as i64) * STEP_MS;
    let generation = |slot: usize| if s.new_series_each_round { slot } else { 0 };

    let mut rounds = Vec::with_capacity(total_rounds);
    for r in 0..total_rounds {
        let mut round = Vec::with_capacity(batches);
        for slot in r * batches..(r + 1) * batches {
            let g = generation(slot);
            let mut bodies = Vec::new();
            let mut id = 0;
            while id < n {
                let end = (id + series_per_request).min(n);
                let req = WriteRequest {
                    timeseries: (id..end)
                        .map(|i| {
                            let samples: Vec<(i64, f64)> = (0..per_series)
                                .map(|j| (ts(slot, j), sample_value(i, slot * per_series + j)))
                                .collect();
                            series(series_labels(i, g), &samples)
                        })
                        .collect(),
                    metadata: Vec::new(),
                };
                bodies.push(Bytes::from(encode_v1(&req)));
                id = end;
            }
            round.push(bodies);
        }
        rounds.push(round);
    }

    let spot_ids = [0, n / 2 + 7, n - 1];
    let mut spot = Vec::new();
    for &id in &spot_ids {
        let gens: Vec<usize> = if s.new_series_each_round {
            vec![0, slots - 1]
        } else {
            vec![0]
        };
        for g in gens {
            let samples = (0..slots)
                .filter(|&slot| generation(slot) == g)
                .flat_map(|slot| (0..per_series).map(move |j| (slot, j)))
                .map(|(slot, j)| (ts(slot, j), sample_value(id, slot * per_series + j)))
                .collect();
            spot.push(Spot {
                generation: g,
                id,
                samples,
            });
        }
    }
    let generations = if s.new_series_each_round { slots } else { 1 };
    let matching = (0..n)
        .filter(|&id| {
            let l = series_labels(id, 0);
            let get = |k: &str| l.iter().find(|x| x.name == k).map(|x| x.value.as_str());
            get("__name__") == Some(VERIFY_METRIC)
                && get("exchange") == Some(VERIFY_EXCHANGE)
                && get("side") == Some("buy")
        })
        .count();
    Plan {
        rounds,
        samples_per_round: n * per_series * batches,
        warmup,
        spot,
        verify_count: matching * generations,
        verify_range: (t0 - 1000, ts(slots, 0)),
    }
}

// ---------------------------------------------------------------------------------------------
// Targets.

enum Target {
    /// The data directory lives as long as the target.
    Promgate(Promgate, #[allow(dead_code)] tempfile::TempDir),
    Prometheus(Prometheus),
    Vm(VictoriaMetrics),
    /// vmagent forwarding to its own VictoriaMetrics sink; verified through the sink. Only
    /// vmagent's CPU is counted.
    /// With `true`, vmagent applies the same relabel rule as `promgate-fwd-encoded`.
    Vmagent(Vmagent, VictoriaMetrics, bool),
    /// promgate forwarding (remote_write) to its own VictoriaMetrics sink; verified through
    /// the sink. Only promgate's CPU is counted, until its forward cursor has caught up.
    /// With `encoded`, the target has a relabel rule changing every series, so every request
    /// is re-encoded from the record log instead of sent as received.
    PromgateFwd {
        pg: Promgate,
        #[allow(dead_code)]
        data: tempfile::TempDir,
        sink: VictoriaMetrics,
        encoded: bool,
    },
}

impl Target {
    fn start(name: &str, promgate_bin: &Path) -> Target {
        match name {
            "promgate" => {
                let data = tempfile::tempdir().expect("tempdir");
                Target::Promgate(Promgate::start_bin(promgate_bin, data.path(), ""), data)
            }
            "prometheus" => Target::Prometheus(Prometheus::start("global: {}\n")),
            "vm" => Target::Vm(VictoriaMetrics::start_with_args(&[
                "-search.latencyOffset=0s",
            ])),
            "vmagent" | "vmagent-relabel" => {
                let sink = VictoriaMetrics::start_with_args(&["-search.latencyOffset=0s"]);
                let relabel = name == "vmagent-relabel";
                let rules = format!("- {RELABEL_RULE}\n");
                let agent =
                    Vmagent::start_with_relabel(&sink.write_url(), relabel.then_some(&rules));
                Target::Vmagent(agent, sink, relabel)
            }
            "promgate-fwd" | "promgate-fwd-encoded" => {
                let encoded = name == "promgate-fwd-encoded";
                let sink = VictoriaMetrics::start_with_args(&["-search.latencyOffset=0s"]);
                let data = tempfile::tempdir().expect("tempdir");
                let relabel = if encoded {
                    format!("    write_relabel_configs:\n      - {RELABEL_RULE}\n")
                } else {
                    String::new()
                };
                // Requests of up to 10,000 samples, as vmagent's blocks
                // (`-remoteWrite.maxRowsPerBlock`, default 10000).
                let config = format!(
                    "remote_write:\n  - url: {}\n    queue_config:\n      max_samples_per_send: 10000\n{relabel}",
                    sink.write_url()
                );
                Target::PromgateFwd {
                    pg: Promgate::start_bin(promgate_bin, data.path(), &config),
                    data,
                    sink,
                    encoded,
                }
            }
            other => {
                panic!(
                    "unknown target {other:?} (promgate, prometheus, vm, vmagent, vmagent-relabel, promgate-fwd, promgate-fwd-encoded)"
                )
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Target::Promgate(..) => "promgate",
            Target::Prometheus(_) => "Prometheus 2.42",
            Target::Vm(_) => "VictoriaMetrics",
            Target::Vmagent(.., false) => "vmagent",
            Target::Vmagent(.., true) => "vmagent (relabel)",
            Target::PromgateFwd { encoded: false, .. } => "promgate→VM",
            Target::PromgateFwd { encoded: true, .. } => "promgate→VM (re-encoded)",
        }
    }

    fn url(&self) -> String {
        match self {
            Target::Promgate(p, _) => p.url(),
            Target::Prometheus(p) => p.url(),
            Target::Vm(v) => v.url(),
            Target::Vmagent(a, ..) => a.url(),
            Target::PromgateFwd { pg: p, .. } => p.url(),
        }
    }

    /// Where reads go: the target itself, or vmagent's sink.
    fn read_url(&self) -> String {
        match self {
            Target::Vmagent(_, sink, _) | Target::PromgateFwd { sink, .. } => sink.url(),
            other => other.url(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Target::Promgate(p, _) => p.pid(),
            Target::Prometheus(p) => p.pid(),
            Target::Vm(v) => v.pid(),
            Target::Vmagent(a, ..) => a.pid(),
            Target::PromgateFwd { pg: p, .. } => p.pid(),
        }
    }

    /// Resident set size in MiB, from `/proc/PID/status`.
    fn rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// All samples of one exact series.
    fn read_series(&self, l: &[Label], range: (i64, i64)) -> Result<Vec<ExportSeries>, String> {
        let sel = format!(
            "{{{}}}",
            l.iter()
                .map(|x| format!("{}={:?}", x.name, x.value))
                .collect::<Vec<_>>()
                .join(",")
        );
        match self {
            Target::Promgate(p, _) => p.export(&sel, Some(range), false),
            Target::Vm(v) | Target::Vmagent(_, v, _) | Target::PromgateFwd { sink: v, .. } => {
                v.export(&sel, Some(range))
            }
            Target::Prometheus(p) => {
                let secs = (range.1 - range.0) / 1000 + 1;
                p.query(&format!("{sel}[{secs}s]"), range.1)
            }
        }
    }

    /// Makes written data visible to reads (VictoriaMetrics buffers for up to a second).
    fn flush(&self) {
        if let Target::Vm(v) | Target::Vmagent(_, v, _) | Target::PromgateFwd { sink: v, .. } = self
        {
            v.force_flush();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sending.

struct RoundResult {
    wall: Duration,
    /// Server CPU seconds over the send.
    cpu: f64,
    /// Server CPU seconds over the send and the second after it (deferred work: flushes,
    /// merges, compaction).
    cpu_settled: f64,
}

async fn send_all(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Bytes],
    connections: usize,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<Vec<Bytes>> = Arc::new(bodies.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, next, bodies) = (
            client.clone(),
            url.to_string(),
            next.clone(),
            bodies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<(), String>(());
                };
                let resp = client
                    .post(&url)
                    .header("Content-Type", proto::headers::CONTENT_TYPE_V1)
                    .header("Content-Encoding", proto::headers::ENCODING_SNAPPY)
                    .header(proto::headers::VERSION, "0.1.0")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| format!("request {i}: {e:?}"))?;
                let status = resp.status();
                if !status.is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    return Err(format!("request {i}: {status} {text}"));
                }
                // Drain the (empty) body so the connection is reused.
                let _ = resp.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("task: {e}"))??;
    }
    Ok(())
}

fn run_round(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    target: &Target,
    batches: &[Vec<Bytes>],
    connections: usize,
) -> RoundResult {
    let url = format!("{}/api/v1/write", target.url());
    let pid = target.pid();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    for bodies in batches {
        rt.block_on(send_all(client, &url, bodies, connections))
            .unwrap_or_else(|e| panic!("{}: {e}", target.name()));
    }
    if let Target::PromgateFwd { pg: p, .. } = target {
        wait_forwarded(p);
    }
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    std::thread::sleep(Duration::from_secs(1));
    let cpu_settled = cpu_seconds(pid) - cpu0;
    RoundResult {
        wall,
        cpu,
        cpu_settled,
    }
}

/// Waits until promgate's forwarder has sent every committed record. Polled every 25 ms: each
/// poll is a request promgate answers, counted in its CPU, so the poll costs the forwarder's
/// figure about 1% and the round's wall time up to 25 ms.
fn wait_forwarded(p: &Promgate) {
    let url = format!("{}/api/v1/status/forward", p.url());
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(v) = http::get(&url).and_then(|r| r.json()) {
            let t = &v["data"][0];
            if t["cursor"].as_i64().is_some() && t["cursor"] == t["committed"] {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("promgate did not finish forwarding within 300 s");
}

// ---------------------------------------------------------------------------------------------
// Verification.

fn verify(target: &Target, p: &Plan) -> Result<String, String> {
    // vmagent forwards asynchronously: give it time to drain into its sink.
    let deadline = Instant::now()
        + if matches!(target, Target::Vmagent(..) | Target::PromgateFwd { .. }) {
            Duration::from_secs(120)
        } else {
            Duration::ZERO
        };
    let mut waited = false;
    loop {
        match verify_once(target, p) {
            Err(e) if Instant::now() < deadline => {
                if !waited {
                    let short: String = e.chars().take(200).collect();
                    eprintln!("(waiting for vmagent to forward: {short})");
                    waited = true;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

fn verify_once(target: &Target, p: &Plan) -> Result<String, String> {
    target.flush();
    // Series count for a selector, through the target's /api/v1/series.
    let sel = format!(r#"{VERIFY_METRIC}{{exchange="{VERIFY_EXCHANGE}",side="buy",env="prod"}}"#);
    let found = http::series(&target.read_url(), &sel, Some(p.verify_range))?;
    if found.len() != p.verify_count {
        return Err(format!(
            "{}: /api/v1/series?match[]={sel}: {} series, want {}",
            target.name(),
            found.len(),
            p.verify_count
        ));
    }
    // Exact samples of spot-checked series.
    for Spot {
        generation: g,
        id,
        samples: want,
    } in &p.spot
    {
        let l = series_labels(*id, *g);
        let got = target.read_series(&l, p.verify_range)?;
        let [s] = got.as_slice() else {
            return Err(format!(
                "{}: series {g}/{id}: {} series returned",
                target.name(),
                got.len()
            ));
        };
        let want_ts: Vec<i64> = want.iter().map(|x| x.0).collect();
        let want_v: Vec<f64> = want.iter().map(|x| x.1).collect();
        // VictoriaMetrics keeps 12 significant decimal digits of a float (by design); the
        // others must be exact.
        let tolerance = if matches!(
            target,
            Target::Vm(_) | Target::Vmagent(..) | Target::PromgateFwd { .. }
        ) {
            1e-11
        } else {
            0.0
        };
        let values_ok = s.values.len() == want_v.len()
            && s.values
                .iter()
                .zip(&want_v)
                .all(|(a, b)| a == b || (a - b).abs() <= tolerance * b.abs());
        if s.timestamps != want_ts || !values_ok {
            return Err(format!(
                "{}: series {}: got {:?} {:?}, want {:?} {:?}",
                target.name(),
                s.key(),
                s.timestamps,
                s.values,
                want_ts,
                want_v
            ));
        }
    }
    Ok(format!(
        "{} series match the selector, {} spot-checked series exact",
        found.len(),
        p.spot.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Report.

fn human(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// `a / b: …× samples/s, …` on a line of its own.
fn ratios(a: &TargetSummary, b: &TargetSummary) -> String {
    format!(
        "\n{} / {}: {:.2}× samples/s, {:.2}× samples per CPU-s ({:.2}× incl. 1s after)",
        a.name,
        b.name,
        a.rate / b.rate,
        a.per_cpu / b.per_cpu,
        a.per_cpu_settled / b.per_cpu_settled
    )
}

struct TargetSummary {
    name: &'static str,
    rate: f64,
    cpu: f64,
    per_cpu: f64,
    per_cpu_settled: f64,
    rss: f64,
    verified: String,
}

fn main() {
    let args = Args::parse();
    let promgate_bin = args
        .promgate_bin
        .clone()
        .or_else(|| std::env::var_os("PROMGATE_BIN").map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/promgate")
        });
    if args.targets.iter().any(|t| t == "promgate") {
        assert!(
            promgate_bin.is_file(),
            "no promgate binary at {}; build it first: cargo build --release -p gateway",
            promgate_bin.display()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client");

    let mut report = String::new();
    let cmdline: Vec<String> = std::env::args().collect();
    report.push_str(&format!(
        "rw-bench: {} measured rounds, {} connections, {} samples/request; `{}`\n\n",
        args.rounds,
        args.connections,
        args.samples_per_request,
        cmdline.join(" ")
    ));
    println!("{report}");

    for name in &args.scenarios {
        let scenario = *SCENARIOS
            .iter()
            .find(|s| s.name == name.as_str())
            .unwrap_or_else(|| panic!("unknown scenario {name:?}"));
        let t = Instant::now();
        let p = plan(
            &scenario,
            args.rounds,
            args.samples_per_request,
            args.scale_down,
            args.batches,
        );
        let bytes: usize = p.rounds.iter().flatten().flatten().map(Bytes::len).sum();
        eprintln!(
            "[{}] encoded {} rounds × {} batches × {} requests ({:.1} MiB) in {:.1}s",
            scenario.name,
            p.rounds.len(),
            p.rounds[0].len(),
            p.rounds[0][0].len(),
            bytes as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64()
        );

        let targets: Vec<Target> = args
            .targets
            .iter()
            .map(|n| Target::start(n, &promgate_bin))
            .collect();
        let mut results: Vec<Vec<RoundResult>> = targets.iter().map(|_| Vec::new()).collect();
        for (r, bodies) in p.rounds.iter().enumerate() {
            let measured = !(p.warmup && r == 0);
            // Rotate the order of targets per round so none always goes first.
            for k in 0..targets.len() {
                let ti = (k + r) % targets.len();
                let res = run_round(&rt, &client, &targets[ti], bodies, args.connections);
                eprintln!(
                    "[{}] round {r}{} {:<16} {:>8.2}s wall {:>7.3} CPU-s ({:.3} with 1s after) {:>10} samples/s",
                    scenario.name,
                    if measured { "" } else { " (warm-up)" },
                    targets[ti].name(),
                    res.wall.as_secs_f64(),
                    res.cpu,
                    res.cpu_settled,
                    human(p.samples_per_round as f64 / res.wall.as_secs_f64())
                );
                if measured {
                    results[ti].push(res);
                }
            }
        }

        let mut summaries = Vec::new();
        for (target, res) in targets.iter().zip(&results) {
            let samples = p.samples_per_round as f64;
            let verified = match verify(target, &p) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("VERIFY FAILED: {e}");
                    let short: String = e.chars().take(300).collect();
                    format!("FAILED: {short}")
                }
            };
            summaries.push(TargetSummary {
                name: target.name(),
                rate: median(
                    &res.iter()
                        .map(|r| samples / r.wall.as_secs_f64())
                        .collect::<Vec<_>>(),
                ),
                cpu: median(&res.iter().map(|r| r.cpu).collect::<Vec<_>>()),
                per_cpu: median(
                    &res.iter()
                        .map(|r| samples / r.cpu.max(1e-3))
                        .collect::<Vec<_>>(),
                ),
                per_cpu_settled: median(
                    &res.iter()
                        .map(|r| samples / r.cpu_settled.max(1e-3))
                        .collect::<Vec<_>>(),
                ),
                rss: target.rss_mib(),
                verified,
            });
        }
        drop(targets);

        let mut md = format!(
            "### {}: {} series × {} sample(s){}, {} samples/round\n\n\
             | target | samples/s | server CPU-s per round | samples per CPU-s | samples per CPU-s incl. 1s after | RSS after (MiB) | verified |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
            scenario.name,
            scenario.series / args.scale_down.max(1),
            scenario.samples_per_series,
            if scenario.new_series_each_round {
                " (all new series every round)"
            } else {
                " per batch, batches per round as --batches (a warm-up round creates the series)"
            },
            p.samples_per_round
        );
        for s in &summaries {
            md.push_str(&format!(
                "| {} | {} | {:.2} | {} | {} | {:.0} | {} |\n",
                s.name,
                human(s.rate),
                s.cpu,
                human(s.per_cpu),
                human(s.per_cpu_settled),
                s.rss,
                s.verified
            ));
        }
        if let Some(pg) = summaries.iter().find(|s| s.name == "promgate") {
            for other in summaries.iter().filter(|s| s.name != "promgate") {
                md.push_str(&ratios(pg, other));
            }
            md.push('\n');
        }
        // The forwarding comparison: each promgate forwarder against vmagent, and the
        // re-encoding one also against vmagent with the same relabel rule.
        let find = |name: &str| summaries.iter().find(|s| s.name == name);
        if let Some(va) = find("vmagent") {
            for fwd in summaries.iter().filter(|s| s.name.starts_with("promgate→")) {
                md.push_str(&ratios(fwd, va));
            }
            md.push('\n');
        }
        if let (Some(fwd), Some(va)) = (find("promgate→VM (re-encoded)"), find("vmagent (relabel)"))
        {
            md.push_str(&ratios(fwd, va));
            md.push('\n');
        }
        md.push('\n');
        println!("{md}");
        report.push_str(&md);
    }

    if let Some(path) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open --out file");
        f.write_all(report.as_bytes()).expect("write report");
    }
}
