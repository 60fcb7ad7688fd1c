//! The harness against the peers alone: the payload builders produce requests that Prometheus
//! 2.42 and VictoriaMetrics accept, and what they store reads back through the harness's
//! parsers with exact label sets and values. If this fails, the other e2e tests' payloads or
//! parsers are wrong, not promgate.

use e2e::http::{self, post_rw_v1};
use e2e::payload::{METRIC, STEP_MS, value_of};
use e2e::{Prometheus, VictoriaMetrics, cpu_seconds, now_ms, rw_v1};

const SERIES: usize = 50;
const SAMPLES: usize = 5;

fn check_synthetic(got: &[e2e::ExportSeries], ts: i64) {
    assert_eq!(got.len(), SERIES, "series read back: {got:?}");
    for s in got {
        let i: usize = s.metric["series"].parse().expect("series label");
        assert_eq!(s.metric["__name__"], METRIC);
        assert_eq!(s.metric["job"], "e2e");
        assert_eq!(s.metric.len(), 3, "labels of {}", s.key());
        let want_ts: Vec<i64> = (0..SAMPLES).map(|j| ts + j as i64 * STEP_MS).collect();
        let want_v: Vec<f64> = (0..SAMPLES).map(|j| value_of(i, j)).collect();
        assert_eq!(s.timestamps, want_ts, "timestamps of {}", s.key());
        assert_eq!(s.values, want_v, "values of {}", s.key());
    }
}

#[test]
fn prometheus_accepts_and_returns_the_synthetic_request() {
    let prom = Prometheus::start("global: {scrape_interval: 1m}\n");
    let ts = now_ms() - 60_000;
    let r = post_rw_v1(&prom.write_url(), rw_v1(SERIES, SAMPLES, ts)).expect("POST");
    assert_eq!(r.status, 204, "{}", r.text());
    let got = prom
        .query(&format!("{METRIC}[1m]"), ts + 30_000)
        .expect("query");
    check_synthetic(&got, ts);
    assert!(cpu_seconds(prom.pid()) > 0.0);
}

#[test]
fn victoria_metrics_accepts_and_returns_the_synthetic_request() {
    let vm = VictoriaMetrics::start();
    let ts = now_ms() - 60_000;
    let r = post_rw_v1(&vm.write_url(), rw_v1(SERIES, SAMPLES, ts)).expect("POST");
    assert_eq!(r.status, 204, "{}", r.text());
    vm.force_flush();
    let got = vm.export(METRIC, None).expect("export");
    check_synthetic(&got, ts);
    let labels = http::series(&vm.url(), METRIC, Some((ts - 1000, ts + 60_000))).expect("series");
    assert_eq!(labels.len(), SERIES);
}
