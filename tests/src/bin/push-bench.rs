//! `push-bench`: latency and throughput of Pushgateway-style pushes of a 1,000-metric body
//! into promgate and into the real Pushgateway 1.5, in the same run, with the same bodies.
//!
//! Both targets start fresh (promgate with an empty data directory, so every push is durable
//! in SQLite and feeds the window; Pushgateway with persistence off, its default). Bodies are
//! generated up front: the text format 0.0.4 as client libraries write it, 10 families
//! (counters, gauges, one histogram) × 100 label sets = 1,000 metrics, values changing per
//! push. A round runs, per target (order alternating between rounds):
//! - sequential: one client PUTs `--sequential` bodies, one after another, into one group;
//! - concurrent: `--clients` clients each PUT `--per-client` bodies into their own group.
//!
//! Every push must answer 200. Reported per phase: median over rounds of the per-round p50
//! and p99 latency and of throughput (pushes/s), server CPU-seconds per push, and promgate's
//! throughput ratio over Pushgateway's. After the rounds each target's `/api/v1/metrics` must
//! hold every group with its 1,000 metrics.
//!
//! Usage: `cargo build --release -p gateway -p e2e --bins && target/release/push-bench
//! [--rounds 5] [--sequential 200] [--clients 8] [--per-client 50] [--out FILE]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use e2e::pushgateway::Pushgateway;
use e2e::{Promgate, cpu_seconds, median};

#[derive(Debug, Parser)]
#[command(about = "Push benchmark: promgate vs Pushgateway 1.5")]
struct Args {
    /// Measured rounds (medians are reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Pushes of the sequential phase per round.
    #[arg(long, default_value_t = 200)]
    sequential: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Pushes per client in the concurrent phase per round.
    #[arg(long, default_value_t = 50)]
    per_client: usize,
    /// The promgate binary; default `$PROMGATE_BIN`, else `<workspace>/target/release/promgate`.
    #[arg(long)]
    promgate_bin: Option<PathBuf>,
    /// Also append the markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

const FAMILIES: usize = 10;
const PER_FAMILY: usize = 100;

/// A 1,000-metric body; `seed` varies the values.
fn body(seed: usize) -> Vec<u8> {
    let mut s = String::with_capacity(96 * 1024);
    for f in 0..FAMILIES {
        let (name, kind) = match f % 3 {
            0 => (format!("backtest_orders_{f}_total"), "counter"),
            1 => (format!("backtest_position_{f}"), "gauge"),
            _ => (format!("backtest_latency_{f}_seconds"), "histogram"),
        };
        s.push_str(&format!(
            "# HELP {name} Family {f} of the bench body.\n# TYPE {name} {kind}\n"
        ));
        if kind == "histogram" {
            // A histogram is one metric per label set (its buckets, sum and count are parts).
            for m in 0..PER_FAMILY {
                let n = (seed + m) as u64;
                let lbl = format!("strategy=\"s{}\",symbol=\"SYM{m:03}\"", m % 7);
                s.push_str(&format!("{name}_bucket{{{lbl},le=\"0.01\"}} {}\n", n));
                s.push_str(&format!("{name}_bucket{{{lbl},le=\"0.1\"}} {}\n", n * 2));
                s.push_str(&format!("{name}_bucket{{{lbl},le=\"+Inf\"}} {}\n", n * 3));
                s.push_str(&format!("{name}_sum{{{lbl}}} {}\n", n as f64 * 0.37));
                s.push_str(&format!("{name}_count{{{lbl}}} {}\n", n * 3));
            }
        } else {
            for m in 0..PER_FAMILY {
                s.push_str(&format!(
                    "{name}{{strategy=\"s{}\",symbol=\"SYM{m:03}\"}} {}\n",
                    m % 7,
                    (seed * 31 + m) as f64 * 1.5
                ));
            }
        }
    }
    s.into_bytes()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("client")
}

/// PUTs each body to `url` in turn; latencies in seconds.
fn push_all(c: &reqwest::blocking::Client, url: &str, bodies: &[Vec<u8>]) -> Vec<f64> {
    let mut lat = Vec::with_capacity(bodies.len());
    for b in bodies {
        let t = Instant::now();
        let r = c
            .put(url)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(b.clone())
            .send()
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let status = r.status();
        let text = r.text().unwrap_or_default();
        lat.push(t.elapsed().as_secs_f64());
        assert_eq!(status.as_u16(), 200, "PUT {url}: {text}");
    }
    lat
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

#[derive(Default, Clone)]
struct Phase {
    p50: Vec<f64>,
    p99: Vec<f64>,
    throughput: Vec<f64>,
    cpu_per_push: Vec<f64>,
}

struct Target {
    name: &'static str,
    url: String,
    pid: u32,
    seq: Phase,
    conc: Phase,
}

fn run_phase(t: &mut Target, concurrent: bool, args: &Args, bodies: &[Vec<u8>], round: usize) {
    let cpu0 = cpu_seconds(t.pid);
    let start = Instant::now();
    let mut lat: Vec<f64> = if concurrent {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..args.clients)
                .map(|i| {
                    let url = format!("{}/metrics/job/bench/instance/c{i}", t.url);
                    let mine: Vec<Vec<u8>> = (0..args.per_client)
                        .map(|k| bodies[(i * args.per_client + k + round) % bodies.len()].clone())
                        .collect();
                    s.spawn(move || push_all(&client(), &url, &mine))
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("client thread"))
                .collect()
        })
    } else {
        let url = format!("{}/metrics/job/bench/instance/seq", t.url);
        let mine: Vec<Vec<u8>> = (0..args.sequential)
            .map(|k| bodies[(k + round) % bodies.len()].clone())
            .collect();
        push_all(&client(), &url, &mine)
    };
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(t.pid) - cpu0;
    let n = lat.len() as f64;
    let phase = if concurrent { &mut t.conc } else { &mut t.seq };
    phase.p50.push(percentile(&mut lat, 0.5));
    phase.p99.push(percentile(&mut lat, 0.99));
    phase.throughput.push(n / wall);
    phase.cpu_per_push.push(cpu / n);
}

fn verify(t: &Target, groups: usize) {
    let r = e2e::http::get(&format!("{}/api/v1/metrics", t.url)).expect("api");
    let v = r.json().expect("json");
    let data = v["data"].as_array().expect("data");
    let bench: Vec<_> = data
        .iter()
        .filter(|g| g["labels"]["job"] == "bench")
        .collect();
    assert_eq!(bench.len(), groups, "{}: groups", t.name);
    for g in bench {
        let metrics: usize = g
            .as_object()
            .expect("group")
            .iter()
            .filter(|(k, _)| k.starts_with("backtest_"))
            .map(|(_, f)| f["metrics"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(
            metrics,
            FAMILIES * PER_FAMILY,
            "{}: metrics in {}",
            t.name,
            g["labels"]
        );
    }
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
        "{} missing: cargo build --release -p gateway",
        bin.display()
    );
    let bodies: Vec<Vec<u8>> = (0..64).map(body).collect();
    eprintln!(
        "push-bench: body {} bytes, {} metrics; {} rounds; sequential {}; {} clients x {}",
        bodies[0].len(),
        FAMILIES * PER_FAMILY,
        args.rounds,
        args.sequential,
        args.clients,
        args.per_client
    );
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start_bin(&bin, data.path(), "");
    let pgw = Pushgateway::start();
    let mut targets = vec![
        Target {
            name: "promgate",
            url: pg.url(),
            pid: pg.process().pid(),
            seq: Phase::default(),
            conc: Phase::default(),
        },
        Target {
            name: "pushgateway",
            url: pgw.url(),
            pid: pgw.process().pid(),
            seq: Phase::default(),
            conc: Phase::default(),
        },
    ];
    // Warm-up: creates the groups (and promgate's series), not measured.
    for t in &mut targets {
        let url = format!("{}/metrics/job/bench/instance/seq", t.url);
        push_all(&client(), &url, &bodies[..2]);
        for i in 0..args.clients {
            let url = format!("{}/metrics/job/bench/instance/c{i}", t.url);
            push_all(&client(), &url, &bodies[..1]);
        }
    }
    for round in 0..args.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for &i in &order {
            run_phase(&mut targets[i], false, &args, &bodies, round);
        }
        for &i in &order {
            run_phase(&mut targets[i], true, &args, &bodies, round);
        }
        eprintln!("round {} done", round + 1);
    }
    for t in &targets {
        verify(t, args.clients + 1);
    }
    let mut report = String::new();
    report.push_str(&format!(
        "push-bench: 1,000-metric PUT ({} bytes of text), {} rounds, medians over rounds\n\n",
        bodies[0].len(),
        args.rounds
    ));
    report.push_str("| phase | target | p50 ms | p99 ms | pushes/s | server CPU ms/push |\n|---|---|---|---|---|---|\n");
    for (label, pick) in [
        (
            "sequential",
            (|t: &Target| t.seq.clone()) as fn(&Target) -> Phase,
        ),
        ("8 concurrent", |t: &Target| t.conc.clone()),
    ] {
        for t in &targets {
            let p = pick(t);
            report.push_str(&format!(
                "| {label} | {} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
                t.name,
                median(&p.p50) * 1e3,
                median(&p.p99) * 1e3,
                median(&p.throughput),
                median(&p.cpu_per_push) * 1e3
            ));
        }
        let (a, b) = (pick(&targets[0]), pick(&targets[1]));
        report.push_str(&format!(
            "| {label} | **promgate / Pushgateway** | {:.2}x faster | {:.2}x faster | **{:.2}x** | {:.2}x less |\n",
            median(&b.p50) / median(&a.p50),
            median(&b.p99) / median(&a.p99),
            median(&a.throughput) / median(&b.throughput),
            median(&b.cpu_per_push) / median(&a.cpu_per_push),
        ));
    }
    println!("{report}");
    if let Some(out) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("open --out");
        f.write_all(report.as_bytes()).expect("write --out");
    }
}
