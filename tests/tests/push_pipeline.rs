//! Pushes into promgate's pipeline: the real Python `prometheus_client` pushing
//! (`push_to_gateway`, `pushadd_to_gateway`, `delete_from_gateway`) with the results read back
//! through `/api/v1/query`; staleness markers when a group loses series; TTL expiry;
//! counter aggregation under concurrent pushes (no lost increments); durability across
//! SIGKILL; a recording rule and remote-write forwarding (to VictoriaMetrics) fed by pushes;
//! per-request options; and bad input (100 MB body, 1 million series, invalid UTF-8, binary
//! garbage) refused with a clear 4xx while what was stored stays intact.

use std::time::Duration;

use e2e::http::{get, prom_query};
use e2e::pushgateway::{normalize_api, normalize_exposition, run_python, send};
use e2e::{Promgate, eventually, now_ms};

fn query(pg: &Promgate, q: &str) -> Vec<(String, f64)> {
    // A little ahead of now: a group's writes are stamped at least 1 ms apart, so a burst of
    // pushes into one group runs a few milliseconds ahead of the clock.
    let mut v: Vec<(String, f64)> = prom_query(&pg.url(), q, now_ms() + 2000)
        .unwrap_or_else(|e| panic!("query {q}: {e}"))
        .into_iter()
        .map(|s| (s.key(), s.values.last().copied().unwrap_or(f64::NAN)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn put(pg: &Promgate, path: &str, body: &str) -> e2e::Response {
    send(
        "PUT",
        &format!("{}{path}", pg.url()),
        &[],
        body.as_bytes().to_vec(),
    )
    .expect("PUT")
}

fn post(pg: &Promgate, path: &str, body: &str) -> e2e::Response {
    send(
        "POST",
        &format!("{}{path}", pg.url()),
        &[],
        body.as_bytes().to_vec(),
    )
    .expect("POST")
}

fn metric(pg: &Promgate, series: &str) -> Option<f64> {
    e2e::http::metric_value(
        &get(&format!("{}/metrics", pg.url()))
            .expect("/metrics")
            .text(),
        series,
    )
}

#[test]
fn python_client_pushes_and_the_series_answer_queries() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let gw = pg.url().trim_start_matches("http://").to_string();
    run_python(&format!(
        r#"
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway, pushadd_to_gateway, delete_from_gateway
r = CollectorRegistry()
c = Counter('backtest_trades', 'Trades simulated.', ['strategy'], registry=r)
c.labels('momentum').inc(42)
g = Gauge('backtest_sharpe_ratio', 'Sharpe ratio of the run.', registry=r)
g.set(1.75)
h = Histogram('backtest_step_seconds', 'Step time.', buckets=(0.1, 1.0), registry=r)
for v in (0.05, 0.5, 3): h.observe(v)
push_to_gateway('{gw}', job='backtest', grouping_key={{'run': 'r1'}}, registry=r)
r2 = CollectorRegistry()
Gauge('backtest_last_success_unixtime', 'Last success.', registry=r2).set(1700000000)
pushadd_to_gateway('{gw}', job='backtest', grouping_key={{'run': 'r1'}}, registry=r2)
r3 = CollectorRegistry()
Gauge('doomed', 'To be deleted.', registry=r3).set(1)
push_to_gateway('{gw}', job='doomed', registry=r3)
delete_from_gateway('{gw}', job='doomed')
"#
    ));
    assert_eq!(
        query(&pg, "backtest_trades_total"),
        vec![(
            r#"backtest_trades_total{job="backtest",run="r1",strategy="momentum"}"#.to_string(),
            42.0
        )]
    );
    assert_eq!(query(&pg, "backtest_sharpe_ratio")[0].1, 1.75);
    // pushadd kept the families of the first push and added its own.
    assert_eq!(query(&pg, "backtest_last_success_unixtime")[0].1, 1.7e9);
    let buckets = query(&pg, "backtest_step_seconds_bucket");
    assert_eq!(
        buckets.iter().map(|b| b.1).collect::<Vec<_>>(),
        vec![3.0, 1.0, 2.0], // le="+Inf", "0.1", "1" (re-rendered as Pushgateway renders it)
        "{buckets:?}"
    );
    assert_eq!(
        query(&pg, "histogram_quantile(0.5, backtest_step_seconds_bucket)").len(),
        1
    );
    assert!(query(&pg, r#"push_time_seconds{job="backtest"}"#)[0].1 > 1.7e9);
    // The deleted group ended with staleness markers: nothing left to query.
    assert!(query(&pg, "doomed").is_empty());
    assert!(query(&pg, r#"push_time_seconds{job="doomed"}"#).is_empty());
    // And the group is on /metrics for a scraping Prometheus.
    assert_eq!(
        metric(
            &pg,
            r#"backtest_sharpe_ratio{instance="",job="backtest",run="r1"}"#
        ),
        Some(1.75)
    );
    assert_eq!(
        metric(&pg, r#"promgate_push_accepted_total{method="delete"}"#),
        Some(1.0)
    );
}

#[test]
fn a_replaced_group_ends_its_old_series_with_staleness_markers() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    assert_eq!(put(&pg, "/metrics/job/j", "a 1\nb 2\n").status, 200);
    assert_eq!(query(&pg, "b").len(), 1);
    assert_eq!(put(&pg, "/metrics/job/j", "a 3\n").status, 200);
    assert!(
        query(&pg, "b").is_empty(),
        "b must be stale after the PUT without it"
    );
    assert_eq!(query(&pg, "a")[0].1, 3.0);
    // The marker is stored: the raw samples of b end with a staleness NaN.
    let raw = get(&format!(
        "{}/api/v1/query?query=b[1m]&time={}",
        pg.url(),
        now_ms() as f64 / 1000.0
    ))
    .expect("range")
    .json()
    .expect("json");
    let values = raw["data"]["result"][0]["values"]
        .as_array()
        .expect("values")
        .clone();
    assert_eq!(
        values.len(),
        1,
        "the stale marker is not returned, the sample is: {values:?}"
    );
}

#[test]
fn groups_expire_after_their_ttl() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        "push:\n  groups:\n    - match: {job: 'short-.*'}\n      ttl: 2s\n",
    );
    assert_eq!(put(&pg, "/metrics/job/short-1", "x 1\n").status, 200);
    assert_eq!(put(&pg, "/metrics/job/long", "y 1\n").status, 200);
    assert_eq!(query(&pg, "x").len(), 1);
    eventually(Duration::from_secs(10), || {
        let api = get(&format!("{}/api/v1/metrics", pg.url()))?.json()?;
        let jobs: Vec<String> = api["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["labels"]["job"].as_str().unwrap_or("").to_string())
            .collect();
        if jobs == ["long"] {
            Ok(())
        } else {
            Err(format!("groups: {jobs:?}"))
        }
    });
    let m = get(&format!("{}/metrics", pg.url()))
        .expect("/metrics")
        .text();
    assert!(
        !m.contains("job=\"short-1\""),
        "expired group still exposed:\n{m}"
    );
    assert!(m.contains("y{instance=\"\",job=\"long\"} 1"), "{m}");
    assert!(
        query(&pg, "x").is_empty(),
        "the expired group's series are stale"
    );
    assert_eq!(query(&pg, "y").len(), 1);
    assert_eq!(metric(&pg, "promgate_push_groups_expired_total"), Some(1.0));
}

#[test]
fn aggregation_adds_concurrent_pushes_without_losing_increments() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(
        data.path(),
        "push:\n  groups:\n    - match: {job: 'shards'}\n      aggregate: true\n",
    );
    let body = "# TYPE trades_total counter\ntrades_total{side=\"buy\"} 2\ntrades_total{side=\"sell\"} 1\n# TYPE pnl gauge\npnl 5\n# TYPE step_seconds histogram\nstep_seconds_bucket{le=\"0.5\"} 1\nstep_seconds_bucket{le=\"+Inf\"} 2\nstep_seconds_sum 1.25\nstep_seconds_count 2\n";
    let (threads, each) = (8, 25);
    let url = format!("{}/metrics/job/shards", pg.url());
    std::thread::scope(|s| {
        for t in 0..threads {
            let url = url.clone();
            s.spawn(move || {
                for _ in 0..each {
                    let method = if t % 2 == 0 { "PUT" } else { "POST" };
                    let r = send(method, &url, &[], body.as_bytes().to_vec()).expect("push");
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            });
        }
    });
    let n = f64::from(threads * each);
    assert_eq!(
        query(&pg, "trades_total"),
        vec![
            (r#"trades_total{job="shards",side="buy"}"#.into(), 2.0 * n),
            (r#"trades_total{job="shards",side="sell"}"#.into(), n),
        ]
    );
    assert_eq!(query(&pg, "pnl")[0].1, 5.0, "gauges keep the last value");
    assert_eq!(query(&pg, "step_seconds_count")[0].1, 2.0 * n);
    assert_eq!(query(&pg, "step_seconds_sum")[0].1, 1.25 * n);
    assert_eq!(
        metric(
            &pg,
            r#"step_seconds_bucket{instance="",job="shards",le="0.5"}"#
        ),
        Some(n)
    );
    // A group no rule matches still replaces, as in Pushgateway.
    assert_eq!(
        put(&pg, "/metrics/job/plain", "# TYPE c counter\nc 2\n").status,
        200
    );
    assert_eq!(
        put(&pg, "/metrics/job/plain", "# TYPE c counter\nc 2\n").status,
        200
    );
    assert_eq!(query(&pg, "c")[0].1, 2.0);
    // A type change inside an aggregating group is refused.
    let r = post(&pg, "/metrics/job/shards", "# TYPE pnl counter\npnl 1\n");
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn groups_survive_sigkill_and_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(
        data.path(),
        "push:\n  groups:\n    - match: {job: agg}\n      aggregate: true\n",
    );
    assert_eq!(
        put(&pg, "/metrics/job/j1/instance@base64/=", "# HELP a The a.\n# TYPE a gauge\na{x=\"1\"} NaN\n# TYPE s summary\ns{quantile=\"0.9\"} 2\ns_sum 3\ns_count 4\n").status,
        200
    );
    assert_eq!(post(&pg, "/metrics/job/j2", "g 1 5\n").status, 400);
    assert_eq!(
        put(
            &pg,
            "/metrics/job/agg",
            "# TYPE n_total counter\nn_total 5\n"
        )
        .status,
        200
    );
    let before_api = normalize_api(
        &get(&format!("{}/api/v1/metrics", pg.url()))
            .expect("api")
            .json()
            .expect("json"),
    );
    let before_raw = get(&format!("{}/api/v1/metrics", pg.url()))
        .expect("api")
        .text();
    let before_metrics = normalize_exposition(
        &get(&format!("{}/metrics", pg.url()))
            .expect("metrics")
            .text(),
    );
    pg.restart();
    let after_raw = get(&format!("{}/api/v1/metrics", pg.url()))
        .expect("api")
        .text();
    assert_eq!(
        normalize_api(&serde_json::from_str(&after_raw).expect("json")),
        before_api
    );
    // Push times and timestamps restored exactly, not re-stamped.
    let times = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).expect("json");
        let mut t: Vec<String> = v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{}", g["push_time_seconds"]))
            .collect();
        t.sort();
        t
    };
    assert_eq!(times(&after_raw), times(&before_raw));
    assert_eq!(
        normalize_exposition(
            &get(&format!("{}/metrics", pg.url()))
                .expect("metrics")
                .text()
        ),
        before_metrics
    );
    // Aggregation carries on from the restored value.
    assert_eq!(
        post(
            &pg,
            "/metrics/job/agg",
            "# TYPE n_total counter\nn_total 5\n"
        )
        .status,
        200
    );
    assert_eq!(query(&pg, "n_total")[0].1, 10.0);
}

#[test]
fn bad_pushes_get_a_clear_4xx_and_disturb_nothing() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    assert_eq!(put(&pg, "/metrics/job/keep", "kept 7\n").status, 200);
    let before = get(&format!("{}/api/v1/metrics", pg.url()))
        .expect("api")
        .text();

    // 100 MB: over limits.max_body_bytes (32 MiB).
    let big = vec![b'#'; 100 << 20];
    let r =
        send("PUT", &format!("{}/metrics/job/big", pg.url()), &[], big).expect("big push answered");
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("max_body_bytes"), "{}", r.text());

    // One million series in one push.
    let mut million = String::with_capacity(20 << 20);
    for i in 0..1_000_000 {
        million.push_str(&format!("m{{i=\"{i}\"}} 1\n"));
    }
    let r = send(
        "PUT",
        &format!("{}/metrics/job/million", pg.url()),
        &[],
        million.into_bytes(),
    )
    .expect("million answered");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("1000000 samples") && r.text().contains("max_samples_per_push"),
        "{}",
        r.text()
    );

    // Invalid UTF-8 in a label value, named with its line.
    let r = send(
        "PUT",
        &format!("{}/metrics/job/utf8", pg.url()),
        &[],
        b"ok 1\nbad{l=\"\xc3\x28\"} 1\n".to_vec(),
    )
    .expect("utf8 answered");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("line 2") && r.text().contains("UTF-8"),
        "{}",
        r.text()
    );

    // Neither text nor protobuf, as text and as protobuf.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let r = send(
        "PUT",
        &format!("{}/metrics/job/garbage", pg.url()),
        &[],
        garbage.clone(),
    )
    .expect("answered");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("line 1"), "{}", r.text());
    let r = send(
        "PUT",
        &format!("{}/metrics/job/garbage", pg.url()),
        &[("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")],
        garbage,
    )
    .expect("answered");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("protobuf"), "{}", r.text());
    // A gzip body that is not gzip, and an unknown encoding.
    let r = send(
        "PUT",
        &format!("{}/metrics/job/gz", pg.url()),
        &[("Content-Encoding", "gzip")],
        b"g 1\n".to_vec(),
    )
    .expect("answered");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = send(
        "PUT",
        &format!("{}/metrics/job/gz", pg.url()),
        &[("Content-Encoding", "br")],
        b"g 1\n".to_vec(),
    )
    .expect("answered");
    assert_eq!(r.status, 415, "{}", r.text());

    // Nothing else changed: the same groups, the stored series intact, still ready.
    assert_eq!(
        get(&format!("{}/api/v1/metrics", pg.url()))
            .expect("api")
            .text(),
        before
    );
    assert_eq!(query(&pg, "kept")[0].1, 7.0);
    assert!(query(&pg, "m").is_empty());
    assert_eq!(
        get(&format!("{}/-/ready", pg.url())).expect("ready").status,
        200
    );
    assert!(
        metric(
            &pg,
            r#"promgate_push_rejected_total{reason="too_many_samples"}"#
        ) == Some(1.0)
    );
}

#[test]
fn gzip_snappy_and_openmetrics_bodies_are_accepted() {
    use std::io::Write;
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let text = b"# TYPE zipped gauge\nzipped 1\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).expect("gzip");
    let r = send(
        "PUT",
        &format!("{}/metrics/job/gz", pg.url()),
        &[("Content-Encoding", "gzip")],
        gz.finish().expect("gzip"),
    )
    .expect("answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let sn = snap::raw::Encoder::new()
        .compress_vec(b"snapped 2\n")
        .expect("snappy");
    let r = send(
        "PUT",
        &format!("{}/metrics/job/sn", pg.url()),
        &[("Content-Encoding", "snappy")],
        sn,
    )
    .expect("answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let om = "# TYPE jobs counter\n# HELP jobs Jobs run.\njobs_total{k=\"v\"} 3 # {trace_id=\"a\"} 1\njobs_created{k=\"v\"} 1700000000\n# EOF\n";
    let r = send(
        "PUT",
        &format!("{}/metrics/job/om", pg.url()),
        &[(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        om.as_bytes().to_vec(),
    )
    .expect("answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(query(&pg, "zipped")[0].1, 1.0);
    assert_eq!(query(&pg, "snapped")[0].1, 2.0);
    assert_eq!(query(&pg, "jobs_total")[0].1, 3.0);
    let m = get(&format!("{}/metrics", pg.url()))
        .expect("metrics")
        .text();
    assert!(
        m.contains("# TYPE jobs_total counter\njobs_total{instance=\"\",job=\"om\",k=\"v\"} 3\n"),
        "{m}"
    );
    let r = send(
        "PUT",
        &format!("{}/metrics/job/om", pg.url()),
        &[(
            "Content-Type",
            "application/openmetrics-text; version=1.0.0",
        )],
        b"x 1\n".to_vec(),
    )
    .expect("answered");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("# EOF"), "{}", r.text());
}

#[test]
fn groups_are_republished_as_a_scrape_would_see_them() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "push:\n  republish_interval: 1s\n");
    assert_eq!(put(&pg, "/metrics/job/r", "kept_alive 4\n").status, 200);
    eventually(Duration::from_secs(10), || {
        let n = query(&pg, "count_over_time(kept_alive[1m])");
        match n.first() {
            Some((_, v)) if *v >= 3.0 => Ok(()),
            other => Err(format!("samples so far: {other:?}")),
        }
    });
    assert_eq!(query(&pg, "max_over_time(kept_alive[1m])")[0].1, 4.0);
}

#[test]
fn per_request_options_set_ttl_and_aggregation_and_are_kept() {
    let data = tempfile::tempdir().expect("tempdir");
    let off = Promgate::start(data.path(), "");
    let r = send(
        "PUT",
        &format!("{}/metrics/job/x", off.url()),
        &[("Promgate-Push-TTL", "1s")],
        b"x 1\n".to_vec(),
    )
    .expect("answered");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("push.request_options"), "{}", r.text());
    drop(off);

    let data = tempfile::tempdir().expect("tempdir");
    let mut pg = Promgate::start(data.path(), "push:\n  request_options: true\n");
    let push = |pg: &Promgate, path: &str, headers: &[(&str, &str)], body: &str| {
        let r = send(
            "PUT",
            &format!("{}{path}", pg.url()),
            headers,
            body.as_bytes().to_vec(),
        )
        .expect("answered");
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let bad = send(
        "PUT",
        &format!("{}/metrics/job/x", pg.url()),
        &[("Promgate-Push-TTL", "soon")],
        b"x 1\n".to_vec(),
    )
    .expect("answered");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("promgate-push-ttl"), "{}", bad.text());

    let counter = "# TYPE runs_total counter\nruns_total 1\n";
    push(
        &pg,
        "/metrics/job/agg",
        &[("Promgate-Push-Aggregate", "true")],
        counter,
    );
    push(&pg, "/metrics/job/agg", &[], counter);
    assert_eq!(query(&pg, "runs_total")[0].1, 2.0);
    // The group's setting is durable: after a restart, pushes without the header still add.
    pg.restart();
    push(&pg, "/metrics/job/agg", &[], counter);
    assert_eq!(query(&pg, "runs_total")[0].1, 3.0);

    push(
        &pg,
        "/metrics/job/brief",
        &[("Promgate-Push-TTL", "1s")],
        "brief 1\n",
    );
    eventually(Duration::from_secs(10), || {
        let api = get(&format!("{}/api/v1/metrics", pg.url()))?.text();
        if api.contains("brief") {
            Err("not expired yet".into())
        } else {
            Ok(())
        }
    });
    assert!(query(&pg, "brief").is_empty());
    assert_eq!(query(&pg, "runs_total")[0].1, 3.0, "other groups untouched");
}

#[test]
fn pushed_series_feed_rules_and_are_forwarded() {
    let vm = e2e::VictoriaMetrics::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: batch\n    rules:\n      - record: job:backtest_trades:sum\n        expr: sum by (job) (backtest_trades_total)\n",
    )
    .expect("rules");
    let pg = Promgate::start(
        &dir.path().join("data"),
        &format!(
            "rule_files: [{}]\nevaluation_interval: 1s\nremote_write:\n  - url: {}\n    name: vm\n",
            dir.path().join("rules.yml").display(),
            vm.write_url()
        ),
    );
    assert_eq!(
        put(
            &pg,
            "/metrics/job/bt/shard/1",
            "# TYPE backtest_trades_total counter\nbacktest_trades_total 4\n"
        )
        .status,
        200
    );
    assert_eq!(
        put(
            &pg,
            "/metrics/job/bt/shard/2",
            "# TYPE backtest_trades_total counter\nbacktest_trades_total 6\n"
        )
        .status,
        200
    );
    // The recording rule sees both groups' series.
    eventually(Duration::from_secs(15), || {
        match query(&pg, "job:backtest_trades:sum").first() {
            Some((_, v)) if *v == 10.0 => Ok(()),
            other => Err(format!("rule result: {other:?}")),
        }
    });
    // Forwarded by remote write: VictoriaMetrics has the pushed series and the push times.
    eventually(Duration::from_secs(20), || {
        let _ = get(&format!("{}/internal/force_flush", vm.url()));
        // The export API: VictoriaMetrics' queries hide the last 30 s (search.latencyOffset).
        let got = e2e::http::export(&vm.url(), r#"backtest_trades_total{job="bt"}"#, None, false)?;
        let times = e2e::http::export(&vm.url(), r#"push_time_seconds{job="bt"}"#, None, false)?;
        let last: Vec<Option<f64>> = got.iter().map(|s| s.values.last().copied()).collect();
        if last == [Some(4.0), Some(6.0)] && times.len() == 2 {
            Ok(())
        } else {
            Err(format!(
                "in VictoriaMetrics: {got:?} / {times:?}; forward status: {}",
                get(&format!("{}/api/v1/status/forward", pg.url()))?.text()
            ))
        }
    });
}
