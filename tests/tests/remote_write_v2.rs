//! Remote write 2.0 on the same endpoint: a v2 request lands, reads back exactly, and is
//! answered with the `X-Prometheus-Remote-Write-*-Written` headers counting what was written;
//! a v2 request with an invalid series is answered 400 and the headers count only the valid
//! samples, which are stored.

use e2e::http::post_rw_v2;
use e2e::payload::{self, METRIC, STEP_MS, encode_v2, labels, series, v1_to_v2, value_of};
use e2e::{Promgate, Response, now_ms, rw_v2};
use proto::headers::{EXEMPLARS_WRITTEN, HISTOGRAMS_WRITTEN, SAMPLES_WRITTEN};

#[track_caller]
fn written(r: &Response, header: &str) -> u64 {
    r.header(header)
        .unwrap_or_else(|| panic!("no {header} header; headers {:?}", r.headers))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{header}: {e}"))
}

#[test]
fn v2_request_lands_with_written_headers() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let ts = now_ms() - 60_000;
    let (n_series, n_samples) = (40, 5);
    let r = post_rw_v2(&pg.write_url(), rw_v2(n_series, n_samples, ts)).expect("POST");
    assert!(
        r.status == 204 || r.status == 200,
        "v2 write: {} {}",
        r.status,
        r.text()
    );
    assert_eq!(written(&r, SAMPLES_WRITTEN), (n_series * n_samples) as u64);
    assert_eq!(written(&r, HISTOGRAMS_WRITTEN), 0);
    assert_eq!(written(&r, EXEMPLARS_WRITTEN), 0);

    let got = pg
        .export(METRIC, Some((ts, ts + 60_000)), false)
        .expect("export");
    assert_eq!(got.len(), n_series);
    for s in &got {
        let i: usize = s.metric["series"].parse().expect("series label");
        assert_eq!(s.metric.len(), 3, "labels of {}", s.key());
        assert_eq!(s.metric["job"], "e2e");
        let want_ts: Vec<i64> = (0..n_samples).map(|j| ts + j as i64 * STEP_MS).collect();
        let want_v: Vec<f64> = (0..n_samples).map(|j| value_of(i, j)).collect();
        assert_eq!(s.timestamps, want_ts, "{}", s.key());
        assert_eq!(s.values, want_v, "{}", s.key());
    }
}

#[test]
fn v2_partial_rejection_counts_only_written_samples() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let ts = now_ms() - 60_000;
    let mut req = payload::v1_request(3, 2, ts);
    req.timeseries.insert(
        1,
        series(
            labels(&[("__name__", "v2-bad name"), ("job", "e2e")]),
            &[(ts, 1.0), (ts + 1000, 2.0)],
        ),
    );
    let r = post_rw_v2(&pg.write_url(), encode_v2(&v1_to_v2(&req))).expect("POST");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("invalid_metric_name"), "{}", r.text());
    assert_eq!(
        written(&r, SAMPLES_WRITTEN),
        6,
        "only the valid samples are written"
    );
    let got = pg
        .export(METRIC, Some((ts, ts + 60_000)), false)
        .expect("export");
    assert_eq!(got.len(), 3, "the valid series are stored: {got:?}");
}

#[test]
fn v2_symbol_reference_out_of_range_is_rejected() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let ts = now_ms() - 60_000;
    let mut req = v1_to_v2(&payload::v1_request(2, 1, ts));
    req.timeseries[0].labels_refs[1] = 9999;
    let r = post_rw_v2(&pg.write_url(), encode_v2(&req)).expect("POST");
    assert!(
        (400..500).contains(&r.status),
        "a label reference past the symbols table: {} {}",
        r.status,
        r.text()
    );
    assert!(pg.is_healthy());
}
