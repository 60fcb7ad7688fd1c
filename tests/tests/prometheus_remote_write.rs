//! A real Prometheus 2.42 scrapes itself every second and remote-writes to promgate. After a
//! few seconds, the samples of a set of Prometheus's own series must be in promgate with the
//! same label sets, timestamps and values as Prometheus's own TSDB returns for a range
//! selector (raw samples), and Prometheus must report no failed or dropped samples.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::http::{self, ExportSeries};
use e2e::{Prometheus, Promgate, VictoriaMetrics, now_ms};

/// Series with stable label sets, scraped from Prometheus itself: synthetic ones (`up`,
/// `scrape_*`), gauges, counters, and histogram buckets (`le` labels).
const SELECTOR: &str = r#"{__name__=~"up|scrape_samples_scraped|scrape_series_added|prometheus_build_info|prometheus_tsdb_head_series|go_goroutines|process_cpu_seconds_total|prometheus_http_requests_total|prometheus_tsdb_compaction_chunk_range_seconds_bucket"}"#;

fn by_key(series: Vec<ExportSeries>) -> BTreeMap<String, ExportSeries> {
    series.into_iter().map(|s| (s.key(), s)).collect()
}

/// Runs Prometheus with remote write to `write_url`, waits, and checks that `export` (a
/// target's export API over a time range) returns exactly Prometheus's raw samples. Returns the
/// Prometheus instance (still running) for further checks, and the compared range.
fn self_scrape_arrives_identical(
    write_url: &str,
    export: impl Fn((i64, i64)) -> Vec<ExportSeries>,
) -> (Prometheus, (i64, i64)) {
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:{{{{PORT}}}}']
remote_write:
  - url: {write_url}
    queue_config:
      batch_send_deadline: 500ms
      max_samples_per_send: 2000
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send_interval: 2s
"#
    );
    let prom = Prometheus::start(&config);

    // Let Prometheus scrape itself several times (its first scrape comes about 5s after start:
    // the scrape manager applies target updates every 5s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom.query("up[1m]", now_ms()).expect("query up");
        if up.first().is_some_and(|s| s.values.len() >= 6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape itself: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The window compared: the last 5s up to 1.5s ago (sent by now, given the 500ms batch
    // deadline; the poll below allows for more).
    let end = now_ms() - 1500;
    let window_s = 5;
    let want = by_key(
        prom.query(&format!("{SELECTOR}[{window_s}s]"), end)
            .expect("Prometheus query"),
    );
    let range = (end - window_s * 1000 + 1, end);
    for name in [
        "up",
        "prometheus_build_info",
        "go_goroutines",
        "process_cpu_seconds_total",
        "prometheus_tsdb_compaction_chunk_range_seconds_bucket",
    ] {
        assert!(
            want.values()
                .any(|s| s.metric["__name__"] == name && s.values.len() >= 3),
            "Prometheus itself has no samples of {name} in the window: {:?}",
            want.keys().collect::<Vec<_>>()
        );
    }

    // The target must hold exactly those samples; allow up to 30s for the remote-write queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = by_key(export(range));
        if got == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "label sets differ: missing in the target {missing:?}, only in the target {extra:?}"
    );
    for (key, w) in &want {
        let g = &got[key];
        assert_eq!(g.timestamps, w.timestamps, "timestamps of {key}");
        let same = g.values.len() == w.values.len()
            && g.values
                .iter()
                .zip(&w.values)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
        assert!(
            same,
            "values of {key}: target {:?}, Prometheus {:?}",
            g.values, w.values
        );
    }

    // Prometheus saw every send accepted: nothing failed, was retried or dropped.
    let now = now_ms();
    for metric in [
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_dropped_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_metadata_failed_total",
    ] {
        let r = prom.query(metric, now).expect("query");
        let total: f64 = r.iter().flat_map(|s| s.values.iter()).sum();
        assert_eq!(total, 0.0, "Prometheus reports {metric} = {total}");
    }
    let sent = prom
        .query("prometheus_remote_storage_samples_total", now)
        .expect("query");
    let sent: f64 = sent.iter().flat_map(|s| s.values.iter()).sum();
    assert!(sent > 100.0, "Prometheus sent only {sent} samples");
    (prom, range)
}

#[test]
fn prometheus_self_scrape_arrives_identical_in_promgate() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let (prom, range) = self_scrape_arrives_identical(&pg.write_url(), |range| {
        pg.export(SELECTOR, Some(range), false)
            .unwrap_or_else(|e| panic!("promgate export: {e}\nlog:\n{}", pg.process().log_tail()))
    });

    // The series API agrees on the label sets.
    let labels = http::series(&pg.url(), "up", Some(range)).expect("series");
    assert_eq!(
        labels.len(),
        1,
        "promgate /api/v1/series?match[]=up: {labels:?}"
    );
    assert_eq!(labels[0]["job"], "prometheus");
    assert_eq!(
        labels[0]["instance"],
        format!("127.0.0.1:{}", prom.process().port())
    );

    // Metric metadata (type, help, unit) sent by Prometheus every 2s is what Prometheus
    // itself reports for the same families.
    for metric in [
        "go_goroutines",
        "process_cpu_seconds_total",
        "prometheus_tsdb_compaction_chunk_range_seconds",
    ] {
        let want = metadata(&prom.url(), metric);
        assert!(!want.is_null(), "Prometheus has no metadata for {metric}");
        e2e::eventually(Duration::from_secs(20), || {
            let got = metadata(&pg.url(), metric);
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "metadata of {metric}: promgate {got}, Prometheus {want}"
                ))
            }
        });
    }
    assert!(pg.is_healthy(), "promgate died");
}

/// `GET /api/v1/metadata?metric=M`: the entries for M (JSON), or null.
fn metadata(base: &str, metric: &str) -> serde_json::Value {
    let url = http::url_with_query(base, "/api/v1/metadata", &[("metric", metric.to_string())]);
    let r = http::get(&url).expect("GET /api/v1/metadata");
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    r.json().expect("JSON")["data"][metric].clone()
}

/// Control: the same check against VictoriaMetrics, so a failure of the promgate test above is
/// promgate's and not the method's.
#[test]
fn control_prometheus_self_scrape_arrives_identical_in_victoria_metrics() {
    let vm = VictoriaMetrics::start();
    self_scrape_arrives_identical(&vm.write_url(), |range| {
        vm.force_flush();
        vm.export(SELECTOR, Some(range))
            .expect("VictoriaMetrics export")
    });
}

/// Prometheus scrapes a second target (a VictoriaMetrics process, for its `/metrics`) and
/// remote-writes to promgate; when that target dies, Prometheus writes stale markers for its
/// series, and promgate stores them bit-exact (0x7ff0000000000002), after the live samples.
#[test]
fn prometheus_stale_markers_arrive_bit_exact() {
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let mut target = VictoriaMetrics::start();
    let config = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: doomed
    static_configs:
      - targets: ['127.0.0.1:{}']
remote_write:
  - url: {}
    queue_config:
      batch_send_deadline: 500ms
"#,
        target.process().port(),
        pg.write_url()
    );
    let _prom = Prometheus::start(&config);
    let selector = r#"go_goroutines{job="doomed"}"#;
    e2e::eventually(Duration::from_secs(60), || {
        let got = pg.export(selector, None, true)?;
        match got.as_slice() {
            [s] if s.values.len() >= 3 => Ok(()),
            other => Err(format!("live samples of {selector}: {other:?}")),
        }
    });
    target.kill_9();
    let series = e2e::eventually(Duration::from_secs(30), || {
        let got = pg.export(selector, None, true)?;
        match got.as_slice() {
            [s] if s.bits.as_ref().and_then(|b| b.last()) == Some(&STALE_NAN) => Ok(s.clone()),
            other => Err(format!("no stale marker ending {selector}: {other:?}")),
        }
    });
    let bits = series.bits.expect("bits");
    assert!(
        bits[..bits.len() - 1]
            .iter()
            .all(|b| f64::from_bits(*b).is_finite()),
        "live samples before the stale marker: {bits:x?}"
    );
    // `up` for the dead target turns 0.
    e2e::eventually(Duration::from_secs(30), || {
        let got = pg.export(r#"up{job="doomed"}"#, None, false)?;
        match got.as_slice() {
            [s] if s.values.last() == Some(&0.0) => Ok(()),
            other => Err(format!("up of the dead target: {other:?}")),
        }
    });
}
