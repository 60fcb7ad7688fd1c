//! Ingest semantics and limits set through the config file: a retried (already acknowledged)
//! request is accepted again without storing anything twice, out-of-order and conflicting
//! duplicate samples are refused as Prometheus refuses them (unless an out-of-order window is
//! configured), samples too far in the future are refused, the ingestion rate limit answers
//! 429 with `Retry-After` and applies nothing, `max_samples_per_request` refuses a request
//! whole, `naming_lint: reject` refuses badly named metrics, and the samples counter counts
//! what was written.

use std::time::Duration;

use e2e::http::{self, post_rw_v1};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Promgate, Response, now_ms};
use proto::v1::WriteRequest;

fn start(config: &str) -> (Promgate, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    (Promgate::start(data.path(), config), data)
}

fn one_series(name: &str, samples: &[(i64, f64)]) -> Vec<u8> {
    encode_v1(&WriteRequest {
        timeseries: vec![series(
            labels(&[("__name__", name), ("job", "limits")]),
            samples,
        )],
        metadata: Vec::new(),
    })
}

fn write(pg: &Promgate, body: Vec<u8>) -> Response {
    post_rw_v1(&pg.write_url(), body).expect("an HTTP answer")
}

/// (timestamps, values) of the one series named `name`.
fn stored(pg: &Promgate, name: &str) -> (Vec<i64>, Vec<f64>) {
    let got = pg.export(name, None, false).expect("export");
    match got.as_slice() {
        [] => (Vec::new(), Vec::new()),
        [s] => (s.timestamps.clone(), s.values.clone()),
        more => panic!("{} series named {name}", more.len()),
    }
}

/// The sum over all series of a self-metric (`name{...} value` lines).
fn metric_sum(pg: &Promgate, name: &str) -> f64 {
    pg.metrics()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn retried_request_is_accepted_and_stored_once() {
    let (pg, _d) = start("");
    let t = now_ms() - 60_000;
    let body = one_series(
        "retried_metric",
        &[(t, 1.0), (t + 1000, 2.0), (t + 2000, 3.0)],
    );
    let first = write(&pg, body.clone());
    assert_eq!(first.status, 204, "{}", first.text());
    // A sender that lost the 204 sends the same request again (Prometheus accepts it).
    let retry = write(&pg, body);
    assert_eq!(
        retry.status,
        204,
        "retry of an acknowledged request: {}",
        retry.text()
    );
    assert_eq!(
        stored(&pg, "retried_metric"),
        (vec![t, t + 1000, t + 2000], vec![1.0, 2.0, 3.0])
    );
}

#[test]
fn out_of_order_and_conflicting_duplicates_are_refused() {
    let (pg, _d) = start("");
    let t = now_ms() - 60_000;
    let r = write(&pg, one_series("ooo_metric", &[(t, 1.0), (t + 2000, 2.0)]));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = write(&pg, one_series("ooo_metric", &[(t + 1000, 9.0)]));
    assert_eq!(r.status, 400, "older than the newest sample: {}", r.text());
    assert!(r.text().contains("out_of_order"), "{}", r.text());
    let r = write(&pg, one_series("ooo_metric", &[(t + 2000, 7.0)]));
    assert_eq!(r.status, 400, "same timestamp, other value: {}", r.text());
    assert!(r.text().contains("duplicate_sample"), "{}", r.text());
    assert_eq!(
        stored(&pg, "ooo_metric"),
        (vec![t, t + 2000], vec![1.0, 2.0])
    );
}

#[test]
fn out_of_order_window_accepts_and_orders() {
    let (pg, _d) = start("limits:\n  out_of_order_window: 10m\n");
    let t = now_ms() - 120_000;
    let r = write(&pg, one_series("ooo_ok", &[(t, 1.0), (t + 60_000, 3.0)]));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = write(&pg, one_series("ooo_ok", &[(t + 30_000, 2.0)]));
    assert_eq!(
        r.status,
        204,
        "within the out-of-order window: {}",
        r.text()
    );
    assert_eq!(
        stored(&pg, "ooo_ok"),
        (vec![t, t + 30_000, t + 60_000], vec![1.0, 2.0, 3.0])
    );
}

#[test]
fn samples_too_far_in_the_future_are_refused() {
    let (pg, _d) = start("");
    let t = now_ms() + 3_600_000;
    let r = write(&pg, one_series("future_metric", &[(t, 1.0)]));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("too_far_in_future"), "{}", r.text());
    assert_eq!(stored(&pg, "future_metric").0, Vec::<i64>::new());
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_applies_nothing() {
    let (pg, _d) = start("limits:\n  ingestion_rate: 1000\n  ingestion_burst: 2000\n");
    let t = now_ms() - 60_000;
    let batch = |from: i64| -> Vec<u8> {
        let samples: Vec<(i64, f64)> = (0..1500).map(|j| (t + from + j, j as f64)).collect();
        one_series("rate_metric", &samples)
    };
    let r = write(&pg, batch(0));
    assert_eq!(r.status, 204, "within the burst: {}", r.text());
    let r = write(&pg, batch(10_000));
    assert_eq!(r.status, 429, "over the rate: {}", r.text());
    let retry_after: u64 = r
        .header("Retry-After")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        stored(&pg, "rate_metric").0.len(),
        1500,
        "a 429 must apply nothing"
    );
    std::thread::sleep(Duration::from_secs(retry_after));
    let r = write(&pg, batch(10_000));
    assert_eq!(r.status, 204, "after Retry-After: {}", r.text());
    assert_eq!(stored(&pg, "rate_metric").0.len(), 3000);
}

#[test]
fn max_samples_per_request_refuses_the_whole_request() {
    let (pg, _d) = start("limits:\n  max_samples_per_request: 100\n");
    let t = now_ms() - 60_000;
    let samples: Vec<(i64, f64)> = (0..150).map(|j| (t + j, 1.0)).collect();
    let r = write(&pg, one_series("big_request", &samples));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("max_samples_per_request"), "{}", r.text());
    assert_eq!(stored(&pg, "big_request").0, Vec::<i64>::new());
}

#[test]
fn naming_lint_reject_refuses_non_base_units() {
    let (pg, _d) = start("limits:\n  naming_lint: reject\n");
    let t = now_ms() - 60_000;
    let r = write(&pg, one_series("order_latency_milliseconds", &[(t, 1.0)]));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("naming_convention"), "{}", r.text());
    let r = write(&pg, one_series("order_latency_seconds", &[(t, 1.0)]));
    assert_eq!(r.status, 204, "a well-named metric: {}", r.text());
}

#[test]
fn naming_lint_warn_stores_and_counts() {
    let (pg, _d) = start("limits:\n  naming_lint: warn\n");
    let t = now_ms() - 60_000;
    let r = write(&pg, one_series("order_latency_milliseconds", &[(t, 1.0)]));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(stored(&pg, "order_latency_milliseconds").0, vec![t]);
    assert!(
        metric_sum(&pg, "promgate_ingest_naming_lint_violations_total") >= 1.0,
        "the violation is counted"
    );
}

#[test]
fn samples_counter_counts_written_samples() {
    let (pg, _d) = start("");
    let before = metric_sum(&pg, "promgate_ingest_samples_total");
    let r = write(&pg, e2e::rw_v1(7, 3, now_ms() - 60_000));
    assert_eq!(r.status, 204, "{}", r.text());
    let after = metric_sum(&pg, "promgate_ingest_samples_total");
    assert_eq!(after - before, 21.0, "promgate_ingest_samples_total");
    let r = http::get(&format!("{}/metrics", pg.url())).expect("GET /metrics");
    assert_eq!(r.status, 200);
}
