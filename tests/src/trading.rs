//! A deterministic, trading-stack data set for query tests and benchmarks: what a Prometheus
//! scraping a fleet of trading services every 15s would remote-write over the last hour.
//!
//! Per instance (`job="trading"`, `instance="trader-K:9100"`), 198 series:
//! - `orders_total{venue,symbol,side}` (48 counters, with occasional resets to 0);
//! - `order_errors_total{venue,reason}` (12 sparse counters, often flat);
//! - `order_latency_seconds_bucket{venue,order_type,le}` with `_sum` and `_count`
//!   (8 classic histograms of 10 buckets; a histogram resets as a whole);
//! - `trading_ws_connection_status{venue,stream}` (12 gauges, 1 = up, sometimes 0);
//! - `cryptofunk_current_drawdown{strategy}` (6 gauges between 0 and 0.35);
//! - `position_notional_usd{venue,symbol}` (24 gauges, signed, in cents).
//!
//! Plus `venue_info{venue,region,tier}` (4 series, value 1, no `instance`) for `group_left`
//! joins, and `maintenance_window{venue="kraken",ticket="OPS-1234"}`, present from 20% to 40%
//! of the span only (the one series with a `ticket` label). Some series end early with a stale marker ([`STALE_NAN_BITS`]) at the next scrape, one
//! series restarts after a stale gap, and some start late, as they do when a target or a
//! symbol comes and goes. Each instance has its own scrape offset and a few milliseconds of
//! jitter, as real scrapes do. Everything comes from a fixed-seed generator, so a data set is a
//! function of (instances, end, span).

use proto::v1::{Label, TimeSeries, WriteRequest};

use crate::payload::{encode_v1, labels};

/// The bit pattern Prometheus writes as a staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Scrape interval of the data set.
pub const INTERVAL_MS: i64 = 15_000;
/// Series per instance (without `venue_info`).
pub const SERIES_PER_INSTANCE: usize = 198;

pub const VENUES: [&str; 4] = ["binance", "coinbase", "kraken", "okx"];
pub const SYMBOLS: [&str; 6] = [
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
];
const SIDES: [&str; 2] = ["buy", "sell"];
const ORDER_TYPES: [&str; 2] = ["limit", "market"];
const LE: [f64; 10] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    f64::INFINITY,
];
const STREAMS: [&str; 3] = ["trades", "book", "user"];
const STRATEGIES: [&str; 6] = [
    "momentum",
    "mean_reversion",
    "arb",
    "market_making",
    "trend",
    "grid",
];
const ERROR_REASONS: [&str; 3] = ["rejected", "timeout", "insufficient_funds"];
const REGIONS: [(&str, &str, &str); 4] = [
    ("binance", "ap-northeast-1", "1"),
    ("coinbase", "us-east-1", "1"),
    ("kraken", "eu-west-1", "2"),
    ("okx", "ap-southeast-1", "2"),
];

/// SplitMix64: small, fast, deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The generated data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The first scrape's nominal time (instances scrape at small offsets after it).
    pub start_ms: i64,
    /// No sample is later than this.
    pub end_ms: i64,
    pub series: Vec<TimeSeries>,
}

/// Which scrapes (by index) a series has samples at: `[from, to)` intervals; a stale marker
/// follows each interval that ends before the last scrape.
type Life = Vec<(usize, usize)>;

fn pct(n: usize, p: usize) -> usize {
    n * p / 100
}

impl Dataset {
    /// `instances` × [`SERIES_PER_INSTANCE`] series plus `venue_info`, scraped every 15s from
    /// `end_ms - span_ms` to `end_ms`.
    pub fn generate(instances: usize, end_ms: i64, span_ms: i64) -> Self {
        Self::generate_part(0..instances, end_ms, span_ms, true)
    }

    /// The series of instances `instances` only (each instance's series depend on its index
    /// alone), plus `venue_info` when `with_info`: a large data set in parts.
    pub fn generate_part(
        instances: std::ops::Range<usize>,
        end_ms: i64,
        span_ms: i64,
        with_info: bool,
    ) -> Self {
        let start_ms = end_ms - span_ms;
        let mut series = Vec::with_capacity(instances.len() * SERIES_PER_INSTANCE + REGIONS.len());
        for k in instances {
            let mut rng = Rng::new(0x5eed_0000 + k as u64);
            let offset = (k as i64 * 1_237) % INTERVAL_MS;
            // Scrape times of this instance: offset, plus jitter of up to ±3 ms.
            let n = ((span_ms - offset - 3) / INTERVAL_MS + 1).max(1) as usize;
            let times: Vec<i64> = (0..n)
                .map(|j| start_ms + offset + j as i64 * INTERVAL_MS + rng.below(7) as i64 - 3)
                .collect();
            let instance = format!("trader-{k}:9100");
            let base = |name: &str, extra: &[(&str, &str)]| -> Vec<Label> {
                let mut pairs: Vec<(&str, &str)> = vec![
                    ("__name__", name),
                    ("job", "trading"),
                    ("instance", &instance),
                ];
                pairs.extend_from_slice(extra);
                labels(&pairs)
            };
            let full: Life = vec![(0, n)];

            for venue in VENUES {
                for symbol in SYMBOLS {
                    for side in SIDES {
                        let life = match (venue, symbol) {
                            ("kraken", "DOGEUSDT") => vec![(0, pct(n, 60))],
                            ("okx", "XRPUSDT") => vec![(pct(n, 33), n)],
                            _ => full.clone(),
                        };
                        let mult = 1.0 + rng.f64() * 20.0;
                        let mut v = (rng.below(5000)) as f64;
                        let values = counter(&mut rng, n, &mut v, |r| (r.f64() * mult).floor());
                        series.push(build(
                            base(
                                "orders_total",
                                &[("venue", venue), ("symbol", symbol), ("side", side)],
                            ),
                            &times,
                            &values,
                            &life,
                        ));
                    }
                }
                for reason in ERROR_REASONS {
                    let mut v = rng.below(20) as f64;
                    let values =
                        counter(
                            &mut rng,
                            n,
                            &mut v,
                            |r| {
                                if r.f64() < 0.05 { 1.0 } else { 0.0 }
                            },
                        );
                    series.push(build(
                        base(
                            "order_errors_total",
                            &[("venue", venue), ("reason", reason)],
                        ),
                        &times,
                        &values,
                        &full,
                    ));
                }
                for order_type in ORDER_TYPES {
                    histogram(&mut rng, &times, &base, venue, order_type, &mut series);
                }
                for stream in STREAMS {
                    let life = if (venue, stream) == ("okx", "user") {
                        vec![(0, pct(n, 70))]
                    } else {
                        full.clone()
                    };
                    let mut down = 0;
                    let values: Vec<f64> = (0..n)
                        .map(|_| {
                            if down > 0 {
                                down -= 1;
                                0.0
                            } else if rng.f64() < 0.02 {
                                down = rng.below(4);
                                0.0
                            } else {
                                1.0
                            }
                        })
                        .collect();
                    series.push(build(
                        base(
                            "trading_ws_connection_status",
                            &[("venue", venue), ("stream", stream)],
                        ),
                        &times,
                        &values,
                        &life,
                    ));
                }
                for symbol in SYMBOLS {
                    let life = if (venue, symbol) == ("coinbase", "ADAUSDT") {
                        vec![(0, pct(n, 50)), (pct(n, 75), n)]
                    } else {
                        full.clone()
                    };
                    let mut p = (rng.f64() - 0.5) * 200_000.0;
                    let values: Vec<f64> = (0..n)
                        .map(|_| {
                            p += (rng.f64() - 0.5) * 5_000.0;
                            (p * 100.0).round() / 100.0
                        })
                        .collect();
                    series.push(build(
                        base(
                            "position_notional_usd",
                            &[("venue", venue), ("symbol", symbol)],
                        ),
                        &times,
                        &values,
                        &life,
                    ));
                }
            }
            for strategy in STRATEGIES {
                let mut d = rng.f64() * 0.15;
                let values: Vec<f64> = (0..n)
                    .map(|_| {
                        d = (d + (rng.f64() - 0.5) * 0.02).clamp(0.0, 0.35);
                        d
                    })
                    .collect();
                series.push(build(
                    base("cryptofunk_current_drawdown", &[("strategy", strategy)]),
                    &times,
                    &values,
                    &full,
                ));
            }
        }
        // venue_info: scraped with instance 0's timing.
        let offset = 0;
        let n = ((span_ms - offset - 3) / INTERVAL_MS + 1).max(1) as usize;
        let times: Vec<i64> = (0..n)
            .map(|j| start_ms + offset + j as i64 * INTERVAL_MS)
            .collect();
        for (venue, region, tier) in REGIONS.iter().filter(|_| with_info) {
            series.push(build(
                labels(&[
                    ("__name__", "venue_info"),
                    ("job", "trading"),
                    ("venue", venue),
                    ("region", region),
                    ("tier", tier),
                ]),
                &times,
                &vec![1.0; n],
                &vec![(0, n)],
            ));
        }
        if with_info {
            series.push(build(
                labels(&[
                    ("__name__", "maintenance_window"),
                    ("job", "trading"),
                    ("venue", "kraken"),
                    ("ticket", "OPS-1234"),
                ]),
                &times,
                &vec![1.0; n],
                &vec![(pct(n, 20), pct(n, 40))],
            ));
        }
        Dataset {
            start_ms,
            end_ms,
            series,
        }
    }

    /// `order_fill_ratio{venue}` (4 gauges, scraped like `venue_info`): filled / submitted
    /// orders, a plain NaN (0/0, not a stale marker) in about one scrape in six, and NaN for a
    /// stretch of `okx`'s. Not part of [`Dataset::generate`]: tests of NaN handling add it.
    pub fn nan_gauges(end_ms: i64, span_ms: i64) -> Vec<TimeSeries> {
        let start_ms = end_ms - span_ms;
        let n = ((span_ms - 3) / INTERVAL_MS + 1).max(1) as usize;
        let mut rng = Rng::new(0xf111);
        VENUES
            .iter()
            .map(|venue| {
                let samples: Vec<(i64, f64)> = (0..n)
                    .map(|j| {
                        let outage = *venue == "okx" && (pct(n, 40)..pct(n, 55)).contains(&j);
                        let v = if outage || rng.f64() < 0.16 {
                            f64::NAN
                        } else {
                            (rng.f64() * 1000.0).round() / 1000.0
                        };
                        (start_ms + j as i64 * INTERVAL_MS, v)
                    })
                    .collect();
                crate::payload::series(
                    labels(&[
                        ("__name__", "order_fill_ratio"),
                        ("job", "trading"),
                        ("venue", venue),
                    ]),
                    &samples,
                )
            })
            .collect()
    }

    /// `symbol_alias_info` (3 series, value 1, scraped like `venue_info`) whose label values
    /// hold what JSON and regexes must escape or decode: a slash, quotes, a backslash, a
    /// newline, non-ASCII text. Not part of [`Dataset::generate`].
    pub fn odd_labels(end_ms: i64, span_ms: i64) -> Vec<TimeSeries> {
        let start_ms = end_ms - span_ms;
        let n = ((span_ms - 3) / INTERVAL_MS + 1).max(1) as usize;
        let samples: Vec<(i64, f64)> = (0..n)
            .map(|j| (start_ms + j as i64 * INTERVAL_MS, 1.0))
            .collect();
        [
            ("BTC/USDT", "spot \"majors\"", "東京"),
            ("ETH-PERP", "back\\slash and\nnewline", "Zürich"),
            ("1000PEPE", "tab\there; emoji 🚀", "São Paulo"),
        ]
        .iter()
        .map(|(alias, note, city)| {
            crate::payload::series(
                labels(&[
                    ("__name__", "symbol_alias_info"),
                    ("job", "trading"),
                    ("alias", alias),
                    ("note", note),
                    ("city", city),
                ]),
                &samples,
            )
        })
        .collect()
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// The data set as remote-write 1.0 bodies (snappy-compressed protobuf) of whole series,
    /// each of at most about `max_samples` samples.
    pub fn requests(&self, max_samples: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut req = WriteRequest::default();
        let mut samples = 0;
        for s in &self.series {
            if samples > 0 && samples + s.samples.len() > max_samples {
                out.push(encode_v1(&req));
                req = WriteRequest::default();
                samples = 0;
            }
            samples += s.samples.len();
            req.timeseries.push(s.clone());
        }
        if samples > 0 {
            out.push(encode_v1(&req));
        }
        out
    }
}

/// A counter's values over `n` scrapes from `v`: each scrape adds `inc(rng)`, and about one
/// scrape in 200 resets it (to the increment alone, as a restarted process counts again).
fn counter(rng: &mut Rng, n: usize, v: &mut f64, mut inc: impl FnMut(&mut Rng) -> f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            if rng.f64() < 0.005 {
                *v = 0.0;
            }
            *v += inc(rng);
            *v
        })
        .collect()
}

type HistogramRow = ([f64; LE.len()], f64, f64);

/// Builds a series' labels from its name and extra pairs.
type LabelsFn<'a> = &'a dyn Fn(&str, &[(&str, &str)]) -> Vec<Label>;

/// One classic histogram: buckets, `_sum` and `_count`, resetting together.
fn histogram(
    rng: &mut Rng,
    times: &[i64],
    base: LabelsFn<'_>,
    venue: &str,
    order_type: &str,
    out: &mut Vec<TimeSeries>,
) {
    let n = times.len();
    let mut buckets = [0.0f64; LE.len()];
    let mut sum = 0.0;
    let mut count = 0.0;
    // Per scrape: cumulative bucket counts, sum, count.
    let mut rows: Vec<HistogramRow> = Vec::with_capacity(n);
    let scale = if order_type == "market" { 0.5 } else { 2.0 };
    for _ in 0..n {
        if rng.f64() < 0.003 {
            buckets = [0.0; LE.len()];
            sum = 0.0;
            count = 0.0;
        }
        for _ in 0..rng.below(30) {
            let lat = 0.0005 * scale * (rng.f64() * 7.0).exp();
            for (b, le) in buckets.iter_mut().zip(LE) {
                if lat <= le {
                    *b += 1.0;
                }
            }
            sum += lat;
            count += 1.0;
        }
        rows.push((buckets, sum, count));
    }
    let full = vec![(0, n)];
    for (i, le) in LE.iter().enumerate() {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let values: Vec<f64> = rows.iter().map(|r| r.0[i]).collect();
        out.push(build(
            base(
                "order_latency_seconds_bucket",
                &[("venue", venue), ("order_type", order_type), ("le", &le)],
            ),
            times,
            &values,
            &full,
        ));
    }
    let sums: Vec<f64> = rows.iter().map(|r| r.1).collect();
    let counts: Vec<f64> = rows.iter().map(|r| r.2).collect();
    for (name, values) in [
        ("order_latency_seconds_sum", sums),
        ("order_latency_seconds_count", counts),
    ] {
        out.push(build(
            base(name, &[("venue", venue), ("order_type", order_type)]),
            times,
            &values,
            &full,
        ));
    }
}

/// A series with the samples of `life`, a stale marker after each interval that ends early.
fn build(labels: Vec<Label>, times: &[i64], values: &[f64], life: &Life) -> TimeSeries {
    let mut samples = Vec::new();
    for &(from, to) in life {
        for j in from..to {
            samples.push((times[j], values[j]));
        }
        if to < times.len() {
            samples.push((times[to], f64::from_bits(STALE_NAN_BITS)));
        }
    }
    crate::payload::series(labels, &samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let end = 1_700_000_000_000;
        let d = Dataset::generate(2, end, 3_300_000);
        assert_eq!(d.series.len(), 2 * SERIES_PER_INSTANCE + 5);
        for s in &d.series {
            let ts: Vec<i64> = s.samples.iter().map(|x| x.timestamp).collect();
            assert!(ts.windows(2).all(|w| w[0] < w[1]), "ordered");
            assert!(ts.iter().all(|&t| t >= d.start_ms - 3 && t <= end));
        }
        let stale = d
            .series
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|x| x.value.to_bits() == STALE_NAN_BITS)
            .count();
        // kraken DOGEUSDT ×2 sides, okx user stream, coinbase ADAUSDT position: per instance;
        // and maintenance_window.
        assert_eq!(stale, 2 * 4 + 1);
        // Deterministic (compared as bytes: stale markers are NaN).
        assert!(Dataset::generate(2, end, 3_300_000).requests(10_000) == d.requests(10_000));
    }
}
