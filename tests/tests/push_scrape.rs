//! The Prometheus side of the drop-in claim: a real Prometheus 2.42 scrape job with
//! `honor_labels: true`, as users point it at a Pushgateway, scrapes promgate and the real
//! Pushgateway 1.5 after the same pushes, and stores the same series from both (the scrape
//! succeeds on promgate's `/metrics`, which carries its own metrics too).

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::http::prom_query;
use e2e::pushgateway::{Pushgateway, send};
use e2e::{Prometheus, Promgate, eventually, now_ms};

#[test]
fn prometheus_scraping_with_honor_labels_sees_the_same_series() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let pgw = Pushgateway::start();
    let body = "# HELP done_total Batches done.\n# TYPE done_total counter\ndone_total{stage=\"load\"} 3\n# TYPE lag_seconds histogram\nlag_seconds_bucket{le=\"1\"} 1\nlag_seconds_bucket{le=\"+Inf\"} 2\nlag_seconds_sum 2.5\nlag_seconds_count 2\n";
    for base in [pg.url(), pgw.url()] {
        for path in [
            "/metrics/job/batch/instance/i1",
            "/metrics/job/batch/shard@base64/MQ",
        ] {
            let r = send(
                "PUT",
                &format!("{base}{path}"),
                &[],
                body.as_bytes().to_vec(),
            )
            .expect("push");
            assert_eq!(r.status, 200, "{base}{path}: {}", r.text());
        }
    }
    let host = |url: String| url.trim_start_matches("http://").to_string();
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['{}']\n        labels: {{source: promgate}}\n      - targets: ['{}']\n        labels: {{source: pushgateway}}\n",
        host(pg.url()),
        host(pgw.url())
    );
    let prom = Prometheus::start(&config);
    let series = |source: &str| -> Result<BTreeSet<String>, String> {
        let q = format!(
            r#"{{__name__=~"done_total|lag_seconds.*|push_time_seconds|push_failure_time_seconds",source="{source}"}}"#
        );
        let got = prom_query(&prom.url(), &q, now_ms())?;
        Ok(got
            .into_iter()
            .map(|mut s| {
                s.metric.remove("source");
                e2e::http::labels_key(&s.metric)
            })
            .collect())
    };
    let (a, b) = eventually(Duration::from_secs(30), || {
        let up = prom_query(&prom.url(), "up", now_ms())?;
        if up.len() != 2 || up.iter().any(|s| s.values.last() != Some(&1.0)) {
            return Err(format!("targets not both up: {up:?}"));
        }
        let (a, b) = (series("promgate")?, series("pushgateway")?);
        if a.is_empty() || b.len() < 10 {
            return Err(format!("not scraped yet: {a:?} / {b:?}"));
        }
        Ok((a, b))
    });
    assert_eq!(a, b, "left: from promgate, right: from Pushgateway");
    assert!(
        a.contains(r#"done_total{instance="i1",job="batch",stage="load"}"#),
        "{a:?}"
    );
    assert!(
        a.contains(r#"done_total{job="batch",shard="1",stage="load"}"#),
        "{a:?}"
    );
}
