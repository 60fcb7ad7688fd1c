//! `rule-bench`: rule evaluation time per cycle, promgate against Prometheus 2.42, on the same
//! rules and the same data.
//!
//! For each scale (`--series`, default 10k and 100k), the bench starts both servers fresh with
//! the same rule files at the same absolute paths (`alerts.yaml` and 200 generated rules over
//! the trading data set of [`e2e::trading`], in 10 groups of 20: rates, ratios, histogram
//! quantiles, joins, `topk`, `*_over_time`, and threshold alerts with templated annotations),
//! the same `evaluation_interval`, and remote-writes the same data to both (15 minutes at 15s,
//! ending now). Then it watches each server's per-group `last_duration_seconds` and
//! `last_evaluation_timestamp_seconds` (Prometheus's `prometheus_rule_group_*`, promgate's
//! `promgate_rule_group_*`): a cycle is one evaluation of every group, its time the sum of the
//! groups' durations. After one cycle of warm-up, `--cycles` cycles are measured; the report
//! gives the median cycle time of each, their ratio, and the servers' CPU seconds per cycle
//! over the measured window (nothing else runs on them meanwhile).
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/rule-bench
//! [--series 10000,100000] [--cycles 8] [--interval-s 10] [--out FILE]`

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use e2e::http::post_rw_v1;
use e2e::trading::{Dataset, SERIES_PER_INSTANCE, VENUES};
use e2e::{Prometheus, Promgate, cpu_seconds, median, now_ms};

#[derive(Debug, Parser)]
#[command(about = "Rule evaluation time per cycle: promgate vs Prometheus 2.42")]
struct Args {
    /// Series counts to run, comma-separated (rounded up to whole instances of 198 series).
    #[arg(long, default_value = "10000,100000", value_delimiter = ',')]
    series: Vec<usize>,
    /// Measured cycles per scale.
    #[arg(long, default_value_t = 8)]
    cycles: usize,
    /// The evaluation interval of every group, seconds.
    #[arg(long, default_value_t = 10)]
    interval_s: u64,
    /// The promgate binary; default `$PROMGATE_BIN`, else `<workspace>/target/release/promgate`.
    #[arg(long)]
    promgate_bin: Option<PathBuf>,
    /// Also append the markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const SPAN_MS: i64 = 15 * 60_000;
const REQUEST_SAMPLES: usize = 50_000;
const PART_INSTANCES: usize = 25;
const GROUPS: usize = 10;
const RULES_PER_GROUP: usize = 20;

/// Rule shapes over the data set; `{v}` is a venue, `{t}` a threshold factor.
const RECORD: [(&str, &str); 10] = [
    (
        "venue:orders:rate5m",
        "sum by (venue) (rate(orders_total{venue=\"{v}\"}[5m]))",
    ),
    (
        "venue_symbol:orders:rate5m",
        "sum by (venue, symbol) (rate(orders_total{venue=\"{v}\"}[5m]))",
    ),
    (
        "venue:order_latency:p95",
        "histogram_quantile(0.95, sum by (venue, le) (rate(order_latency_seconds_bucket{venue=\"{v}\"}[5m])))",
    ),
    (
        "venue:order_errors:ratio5m",
        "sum by (venue) (rate(order_errors_total{venue=\"{v}\"}[5m])) / sum by (venue) (rate(orders_total{venue=\"{v}\"}[5m]))",
    ),
    (
        "venue:position_notional:sum_by_region",
        "sum by (venue) (position_notional_usd{venue=\"{v}\"}) * on (venue) group_left (region) venue_info",
    ),
    (
        "strategy:drawdown:max15m",
        "max by (strategy) (max_over_time(cryptofunk_current_drawdown[15m]))",
    ),
    (
        "venue:ws_down:count",
        "count by (venue) (trading_ws_connection_status{venue=\"{v}\"} == 0)",
    ),
    (
        "venue:orders:top5_symbols",
        "topk(5, sum by (symbol) (rate(orders_total{venue=\"{v}\"}[5m])))",
    ),
    (
        "instance:orders:increase5m",
        "sum by (instance) (increase(orders_total{venue=\"{v}\"}[5m]))",
    ),
    (
        "venue:order_latency:avg5m",
        "sum by (venue) (rate(order_latency_seconds_sum{venue=\"{v}\"}[5m])) / sum by (venue) (rate(order_latency_seconds_count{venue=\"{v}\"}[5m]))",
    ),
];

const ALERT: [(&str, &str); 5] = [
    (
        "OrderRateHigh",
        "sum by (venue, instance) (rate(orders_total{venue=\"{v}\"}[5m])) > {t}",
    ),
    ("DrawdownHigh", "cryptofunk_current_drawdown > 0.{t}"),
    (
        "WsFlapping",
        "changes(trading_ws_connection_status{venue=\"{v}\"}[10m]) > {t}",
    ),
    (
        "LatencyP99High",
        "histogram_quantile(0.99, sum by (instance, le) (rate(order_latency_seconds_bucket{venue=\"{v}\"}[5m]))) > 0.0{t}",
    ),
    (
        "PositionLarge",
        "abs(position_notional_usd{venue=\"{v}\"}) > {t}00000",
    ),
];

/// 200 rules in 10 groups: every other rule recording, the rest alerting.
fn generated_rules() -> String {
    let mut out = String::from("groups:\n");
    let mut n = 0usize;
    for g in 0..GROUPS {
        let _ = writeln!(out, "  - name: bench-{g}\n    rules:");
        for r in 0..RULES_PER_GROUP {
            let v = VENUES[(g + r) % VENUES.len()];
            let t = 1 + (n % 5);
            if r % 2 == 0 {
                let (name, expr) = RECORD[(n / 2) % RECORD.len()];
                let expr = expr.replace("{v}", v);
                let _ = writeln!(
                    out,
                    "      - record: {name}\n        expr: '{expr}'\n        labels:\n          bench_rule: \"{n}\""
                );
            } else {
                let (name, expr) = ALERT[(n / 2) % ALERT.len()];
                let expr = expr.replace("{v}", v).replace("{t}", &t.to_string());
                let _ = writeln!(
                    out,
                    "      - alert: {name}{n}\n        expr: '{expr}'\n        for: 1m\n        labels:\n          severity: warning\n        annotations:\n          summary: '{{{{ $labels.instance }}}} on {{{{ $labels.venue }}}}: {{{{ $value | humanize }}}}'\n          description: 'Rule {n} over {v}: value {{{{ printf \"%.3f\" $value }}}}.'"
                );
            }
            n += 1;
        }
    }
    out
}

/// Per group: (last evaluation timestamp, last duration) from a Prometheus-style exposition.
fn group_stats(exposition: &str, prefix: &str) -> HashMap<String, (f64, f64)> {
    let mut out: HashMap<String, (f64, f64)> = HashMap::new();
    for line in exposition.lines() {
        let (is_ts, rest) = if let Some(r) =
            line.strip_prefix(&format!("{prefix}_last_evaluation_timestamp_seconds{{"))
        {
            (true, r)
        } else if let Some(r) = line.strip_prefix(&format!("{prefix}_last_duration_seconds{{")) {
            (false, r)
        } else {
            continue;
        };
        let Some(start) = rest.find("rule_group=\"") else {
            continue;
        };
        let after = &rest[start + 12..];
        let Some(end) = after.find('"') else { continue };
        let group = after[..end].to_string();
        let Some(v) = rest.rsplit(' ').next().and_then(|x| x.parse::<f64>().ok()) else {
            continue;
        };
        let e = out.entry(group).or_default();
        if is_ts {
            e.0 = v;
        } else {
            e.1 = v;
        }
    }
    out
}

fn metrics(base: &str) -> String {
    e2e::http::get(&format!("{base}/metrics"))
        .map(|r| r.text())
        .unwrap_or_default()
}

/// Rules whose last evaluation failed (so both sides did the same work).
fn unhealthy_rules(base: &str) -> Vec<String> {
    let v = e2e::http::get(&format!("{base}/api/v1/rules"))
        .and_then(|r| r.json())
        .unwrap_or_default();
    let mut bad = Vec::new();
    for g in v["data"]["groups"].as_array().cloned().unwrap_or_default() {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            if r["health"] != "ok" {
                bad.push(format!("{}: {}", r["name"], r["lastError"]));
            }
        }
    }
    bad
}

/// Watches both servers until each has `cycles + 1` complete cycles; returns per target the
/// cycle times (seconds) after the first, and the CPU seconds per measured cycle.
fn measure(
    targets: [(&str, &str, u32); 2],
    groups: usize,
    cycles: usize,
    interval: Duration,
) -> [(Vec<f64>, f64); 2] {
    // Per target and group: the evaluations seen (timestamp -> duration).
    let mut seen: [BTreeMap<String, BTreeMap<u64, f64>>; 2] = Default::default();
    let mut cpu_start: [Option<(f64, usize)>; 2] = [None, None];
    let mut cpu_end = [0.0f64; 2];
    let deadline = Instant::now() + interval * (cycles as u32 + 4) * 2;
    loop {
        let mut done = true;
        for (i, (base, prefix, pid)) in targets.iter().enumerate() {
            let stats = group_stats(&metrics(base), prefix);
            for (g, (ts, d)) in stats {
                if ts > 0.0 {
                    seen[i]
                        .entry(g)
                        .or_default()
                        .insert((ts * 1000.0) as u64, d);
                }
            }
            let complete = if seen[i].len() >= groups {
                seen[i].values().map(BTreeMap::len).min().unwrap_or(0)
            } else {
                0
            };
            // CPU is measured from the end of the warm-up cycle.
            if complete >= 2 && cpu_start[i].is_none() {
                cpu_start[i] = Some((cpu_seconds(*pid), complete));
            }
            if complete >= cycles + 2 {
                if cpu_end[i] == 0.0 {
                    cpu_end[i] = cpu_seconds(*pid);
                }
            } else {
                done = false;
            }
        }
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut out: [(Vec<f64>, f64); 2] = Default::default();
    for i in 0..2 {
        // Skip each group's first evaluation seen (it may predate the data) and the warm-up.
        let per_group: Vec<Vec<f64>> = seen[i]
            .values()
            .map(|m| m.values().copied().skip(2).collect())
            .collect();
        let n = per_group
            .iter()
            .map(Vec::len)
            .min()
            .unwrap_or(0)
            .min(cycles);
        out[i].0 = (0..n)
            .map(|k| per_group.iter().map(|g| g[k]).sum())
            .collect();
        if let Some((start, at)) = cpu_start[i] {
            let measured = (cycles + 2).saturating_sub(at).max(1);
            out[i].1 = (cpu_end[i] - start) / measured as f64;
        }
    }
    out
}

fn run_scale(series: usize, args: &Args, bin: &Path, pack: &Path) -> String {
    let instances = series.div_ceil(SERIES_PER_INSTANCE);
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = dir.path().join("generated-rules.yml");
    std::fs::write(&generated, generated_rules()).expect("write rules");
    let files = format!(
        "rule_files:\n  - {}\n  - {}\n",
        pack.display(),
        generated.display()
    );
    let iv = args.interval_s;
    let pg_dir = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start_bin(
        bin,
        pg_dir.path(),
        &format!("evaluation_interval: {iv}s\n{files}"),
    );
    let prom = Prometheus::start(&format!(
        "global:\n  evaluation_interval: {iv}s\n  scrape_interval: 1m\n{files}"
    ));
    let end = (now_ms() - 5_000) / 1000 * 1000;
    let mut total_series = 0;
    let mut first = 0;
    while first < instances {
        let n = PART_INSTANCES.min(instances - first);
        let part = Dataset::generate_part(first..first + n, end, SPAN_MS, first == 0);
        total_series += part.series.len();
        for body in part.requests(REQUEST_SAMPLES) {
            for url in [pg.write_url(), prom.write_url()] {
                let r = post_rw_v1(&url, body.clone()).unwrap_or_else(|e| panic!("{e}"));
                assert!(r.status / 100 == 2, "{url}: {} {}", r.status, r.text());
            }
        }
        first += n;
    }
    eprintln!(
        "{total_series} series loaded; measuring {} cycles",
        args.cycles
    );
    let groups = 6 + GROUPS; // alerts.yaml has 6 groups
    let [(ours, ours_cpu), (theirs, theirs_cpu)] = measure(
        [
            (&pg.url(), "promgate_rule_group", pg.pid()),
            (&prom.url(), "prometheus_rule_group", prom.pid()),
        ],
        groups,
        args.cycles,
        Duration::from_secs(iv),
    );
    for (name, base) in [("promgate", pg.url()), ("Prometheus", prom.url())] {
        let bad = unhealthy_rules(&base);
        assert!(bad.is_empty(), "{name}: rules failing: {bad:?}");
    }
    let (m_ours, m_theirs) = (median(&ours), median(&theirs));
    format!(
        "| {total_series} | {} / {} | {:.1} | {:.1} | {:.2}x | {:.0} | {:.0} |\n",
        ours.len(),
        theirs.len(),
        m_ours * 1e3,
        m_theirs * 1e3,
        m_ours / m_theirs,
        ours_cpu * 1e3,
        theirs_cpu * 1e3,
    )
}

fn main() {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = args
        .promgate_bin
        .clone()
        .or_else(|| std::env::var_os("PROMGATE_BIN").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target/release/promgate"));
    let pack = root
        .join("alerts.yaml")
        .canonicalize()
        .expect("alerts.yaml");
    let mut report = String::from(
        "| series | cycles (promgate / Prometheus) | promgate ms/cycle (median) | Prometheus ms/cycle (median) | promgate / Prometheus | promgate CPU ms/cycle | Prometheus CPU ms/cycle |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for &s in &args.series {
        report.push_str(&run_scale(s, &args, &bin, &pack));
        eprint!("{report}");
    }
    println!("{report}");
    if let Some(out) = &args.out {
        let mut prev = std::fs::read_to_string(out).unwrap_or_default();
        prev.push_str(&report);
        std::fs::write(out, prev).expect("write --out");
    }
}
