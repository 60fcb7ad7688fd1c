//! `query-bench`: query latency of promgate's Prometheus API against Prometheus 2.42, on the
//! same data.
//!
//! For each scale (`--series`, default 10k), the bench starts both servers fresh, generates the
//! trading data set of [`e2e::trading`] with that many series (15s interval over the last 55
//! minutes, so every sample is inside Prometheus's head window), and remote-writes the same
//! bytes to both. Then, per query: one call to each checks that the answers agree (the
//! comparison of [`e2e::diff`]), two unmeasured warm-up calls each, and `--runs` measured calls
//! each, interleaved (promgate, Prometheus, then Prometheus, promgate, ...). A measured call is
//! the wall time of one HTTP GET until the whole JSON body is read; the server's CPU seconds
//! (utime+stime from `/proc/PID/stat`) are summed over all measured calls and divided by the
//! number of calls, so the clock-tick resolution (10 ms) is spread over the runs.
//!
//! Prints a markdown table (median and p90 per target, the ratio of medians, CPU per query, and
//! whether the answers agreed).
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/query-bench
//! [--series 10000,100000] [--runs 21] [--out FILE]`

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use e2e::diff::{self, Call, Order};
use e2e::http::post_rw_v1;
use e2e::trading::{Dataset, SERIES_PER_INSTANCE};
use e2e::{Prometheus, Promgate, cpu_seconds, median, now_ms};

#[derive(Debug, Parser)]
#[command(about = "Query latency: promgate vs Prometheus 2.42 on the same data")]
struct Args {
    /// Series counts to run, comma-separated (rounded up to whole instances of 198 series).
    #[arg(long, default_value = "10000", value_delimiter = ',')]
    series: Vec<usize>,
    /// Measured calls per query and target.
    #[arg(long, default_value_t = 21)]
    runs: usize,
    /// The promgate binary; default `$PROMGATE_BIN`, else `<workspace>/target/release/promgate`.
    #[arg(long)]
    promgate_bin: Option<PathBuf>,
    /// Also append the markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Data span: inside Prometheus's head appendable window (newest sample minus 1h).
const SPAN_MS: i64 = 55 * 60_000;
/// Samples per remote-write request.
const REQUEST_SAMPLES: usize = 50_000;
/// Instances generated and sent at a time (bounds memory at 100k series).
const PART_INSTANCES: usize = 25;

/// (name, query, range?) : instant at the end of the data, or range over the last hour at 15s.
const QUERIES: [(&str, &str, bool); 10] = [
    (
        "sum by venue of rate",
        "sum by (venue) (rate(orders_total[5m]))",
        false,
    ),
    (
        "p99 from buckets",
        "histogram_quantile(0.99, sum by (le) (rate(order_latency_seconds_bucket[5m])))",
        false,
    ),
    (
        "drawdown alert",
        "max_over_time(cryptofunk_current_drawdown[15m]) > 0.1",
        false,
    ),
    (
        "topk instances",
        "topk(5, sum by (instance) (rate(orders_total[5m])))",
        false,
    ),
    (
        "group_left join",
        "sum by (venue, instance) (rate(orders_total[5m])) * on (venue) group_left (region) venue_info",
        false,
    ),
    ("ws down alert", "trading_ws_connection_status == 0", false),
    (
        "sum by venue of rate",
        "sum by (venue) (rate(orders_total[5m]))",
        true,
    ),
    (
        "p99 from buckets",
        "histogram_quantile(0.99, sum by (le) (rate(order_latency_seconds_bucket[5m])))",
        true,
    ),
    (
        "drawdown alert",
        "max_over_time(cryptofunk_current_drawdown[15m]) > 0.1",
        true,
    ),
    (
        "positions by venue",
        "sum by (venue) (position_notional_usd)",
        true,
    ),
];

struct Row {
    name: &'static str,
    query: &'static str,
    range: bool,
    /// Milliseconds per call, promgate then Prometheus.
    wall: [Vec<f64>; 2],
    cpu_ms: [f64; 2],
    agree: String,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One timed GET: wall milliseconds (body read whole); panics on a non-200 answer.
fn timed(base: &str, call: &Call) -> f64 {
    let url = call.url(base);
    let started = Instant::now();
    let r = e2e::http::get(&url).unwrap_or_else(|e| panic!("{e}"));
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    ms
}

fn run_scale(series: usize, runs: usize, bin: &Path) -> String {
    let instances = series.div_ceil(SERIES_PER_INSTANCE);
    let pg_dir = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start_bin(bin, pg_dir.path(), "");
    let prom = Prometheus::start("global: {scrape_interval: 1m}\n");
    let end = (now_ms() - 20_000) / 1000 * 1000;

    // Load: the same bytes to both, part by part.
    let mut total_series = 0;
    let mut total_samples = 0;
    let mut load_s = [0.0f64; 2];
    let mut first = 0;
    while first < instances {
        let n = PART_INSTANCES.min(instances - first);
        let part = Dataset::generate_part(first..first + n, end, SPAN_MS, first == 0);
        total_series += part.series.len();
        total_samples += part.sample_count();
        for body in part.requests(REQUEST_SAMPLES) {
            for (i, url) in [pg.write_url(), prom.write_url()].iter().enumerate() {
                let started = Instant::now();
                let r = post_rw_v1(url, body.clone()).unwrap_or_else(|e| panic!("{e}"));
                load_s[i] += started.elapsed().as_secs_f64();
                assert!(r.status / 100 == 2, "{url}: {} {}", r.status, r.text());
            }
        }
        first += n;
    }
    eprintln!(
        "{total_series} series, {total_samples} samples loaded (promgate {:.1}s, Prometheus {:.1}s)",
        load_s[0], load_s[1]
    );

    let at = end - 30_000;
    let mut rows = Vec::new();
    for (name, query, range) in QUERIES {
        let call = if range {
            Call::Range {
                query: query.to_string(),
                start_ms: end - 3_600_000,
                end_ms: end,
                step: "15".to_string(),
            }
        } else {
            Call::Instant {
                query: query.to_string(),
                time_ms: at,
            }
        };
        let want = diff::call(&prom.url(), &call).expect("Prometheus");
        let got = diff::call(&pg.url(), &call).expect("promgate");
        let agree = match diff::compare_query(&want, &got, Order::Any) {
            Ok(()) => "yes".to_string(),
            Err(e) => {
                eprintln!("{}: answers differ: {e}", call.describe());
                "**no**".to_string()
            }
        };
        let targets = [(pg.url(), pg.pid()), (prom.url(), prom.pid())];
        for (url, _) in &targets {
            for _ in 0..2 {
                timed(url, &call);
            }
        }
        let mut wall: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut cpu = [0.0f64; 2];
        for r in 0..runs {
            let order: [usize; 2] = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let (url, pid) = &targets[i];
                let before = cpu_seconds(*pid);
                wall[i].push(timed(url, &call));
                cpu[i] += cpu_seconds(*pid) - before;
            }
        }
        let row = Row {
            name,
            query,
            range,
            wall,
            cpu_ms: cpu.map(|c| c * 1e3 / runs as f64),
            agree,
        };
        eprintln!(
            "{name} ({}): promgate {} ms, Prometheus {} ms",
            if range { "range" } else { "instant" },
            fmt_ms(median(&row.wall[0])),
            fmt_ms(median(&row.wall[1]))
        );
        rows.push(row);
    }

    let mut out = format!(
        "\n#### {total_series} series, {total_samples} samples ({runs} runs per query and target)\n\n\
         | query | kind | promgate median ms | p90 | Prometheus median ms | p90 | promgate / Prometheus | CPU ms/query promgate | Prometheus | answers agree |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for r in &rows {
        let (pm, qm) = (median(&r.wall[0]), median(&r.wall[1]));
        out.push_str(&format!(
            "| {} `{}` | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} |\n",
            r.name,
            r.query,
            if r.range { "range 1h/15s" } else { "instant" },
            fmt_ms(pm),
            fmt_ms(percentile(&r.wall[0], 90.0)),
            fmt_ms(qm),
            fmt_ms(percentile(&r.wall[1], 90.0)),
            pm / qm,
            fmt_ms(r.cpu_ms[0]),
            fmt_ms(r.cpu_ms[1]),
            r.agree
        ));
    }
    out
}

fn main() {
    let args = Args::parse();
    let bin = args
        .promgate_bin
        .clone()
        .or_else(|| std::env::var_os("PROMGATE_BIN").map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/promgate")
        });
    assert!(
        bin.is_file(),
        "no promgate binary at {}; build it first: cargo build --release -p gateway",
        bin.display()
    );
    let mut report = String::new();
    for &n in &args.series {
        let part = run_scale(n, args.runs, &bin);
        print!("{part}");
        report.push_str(&part);
    }
    if let Some(path) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open --out");
        f.write_all(report.as_bytes()).expect("write --out");
    }
}
