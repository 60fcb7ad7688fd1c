//! What was ingested reads back through the metadata API as Prometheus 2.42 returns it: the
//! same remote-write requests go to promgate and to a real Prometheus, then
//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values` are asked the same
//! questions (every matcher type, several `match[]`, invalid selectors) and must give the same
//! answers (as sets; an invalid selector is a 400 from both).

use std::collections::BTreeSet;

use e2e::http::{self, post_rw_v1, url_with_query};
use e2e::payload::{encode_v1, labels, series};
use e2e::{Prometheus, Promgate, now_ms};
use proto::v1::WriteRequest;

const EXCHANGES: [&str; 4] = ["binance", "coinbase", "kraken", "cme"];
const STRATEGIES: [&str; 3] = ["momentum", "mean_reversion", "stat_arb"];
const METRICS: [&str; 3] = [
    "orders_submitted_total",
    "orders_filled_total",
    "position_notional_usd",
];

fn request(ts: i64) -> WriteRequest {
    let mut timeseries = Vec::new();
    for (m, metric) in METRICS.iter().enumerate() {
        for sym in 0..40 {
            for side in ["buy", "sell"] {
                let exchange = EXCHANGES[sym % 4];
                let strategy = STRATEGIES[(sym / 4) % 3];
                let symbol = format!("S{sym:03}");
                let instance = format!("trader-{:02}:9102", sym % 5);
                let job = if m == 2 {
                    "risk-service"
                } else {
                    "execution-engine"
                };
                let mut pairs = vec![
                    ("__name__", *metric),
                    ("job", job),
                    ("instance", instance.as_str()),
                    ("exchange", exchange),
                    ("symbol", symbol.as_str()),
                    ("strategy", strategy),
                    ("side", side),
                ];
                // Some series carry a label the others lack.
                if sym % 7 == 0 {
                    pairs.push(("venue", "dark-pool"));
                }
                timeseries.push(series(
                    labels(&pairs),
                    &[(ts, sym as f64), (ts + 15_000, sym as f64 + 1.0)],
                ));
            }
        }
    }
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// (status, the `data` array as a set of JSON strings) of a metadata API call.
fn ask(base: &str, path: &str, pairs: &[(&str, String)]) -> (u16, BTreeSet<String>) {
    let r = http::get(&url_with_query(base, path, pairs)).expect("an HTTP answer");
    if r.status != 200 {
        return (r.status, BTreeSet::new());
    }
    let v = r.json().expect("JSON");
    assert_eq!(v["status"], "success", "{path}: {}", r.text());
    let data = v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: {}", r.text()));
    (200, data.iter().map(|x| x.to_string()).collect())
}

#[test]
fn series_labels_and_values_match_prometheus() {
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "");
    let prom = Prometheus::start("global: {scrape_interval: 1h}\n");
    let ts = now_ms() - 120_000;
    for target in [pg.write_url(), prom.write_url()] {
        let r = post_rw_v1(&target, encode_v1(&request(ts))).expect("write");
        assert_eq!(r.status, 204, "{target}: {}", r.text());
    }
    let range = [
        ("start", http::ms_to_secs(ts - 60_000)),
        ("end", http::ms_to_secs(ts + 60_000)),
    ];
    let selectors: &[&[&str]] = &[
        &["orders_submitted_total"],
        &[r#"{job="risk-service"}"#],
        &[r#"{__name__=~"orders_.*",side!="buy"}"#],
        &[r#"{exchange=~"b.*|c.*",strategy!~"mom.*"}"#],
        &[r#"{__name__=~".+",symbol=~"S0(1|2)."}"#],
        &[r#"{venue="dark-pool"}"#],
        &[r#"orders_filled_total{venue=""}"#],
        &[r#"orders_filled_total{venue!=""}"#],
        &[r#"{job=~"execution-engine|risk-service",instance="trader-03:9102"}"#],
        &[
            r#"position_notional_usd{exchange="cme"}"#,
            r#"{symbol="S007"}"#,
        ],
        &[r#"{symbol=~"(?i)s01.*"}"#],
        &[r#"{__name__="no_such_metric"}"#],
        // Invalid: a selector matching every series, and a syntax error.
        &[r#"{venue=""}"#],
        &[r#"up{"#],
    ];
    let mut checked = 0;
    for sel in selectors {
        let mut pairs: Vec<(&str, String)> =
            sel.iter().map(|s| ("match[]", s.to_string())).collect();
        pairs.extend(range.iter().cloned());
        let want = ask(&prom.url(), "/api/v1/series", &pairs);
        let got = ask(&pg.url(), "/api/v1/series", &pairs);
        assert_eq!(
            got.0 == 200,
            want.0 == 200,
            "/api/v1/series {sel:?}: promgate {} vs Prometheus {}",
            got.0,
            want.0
        );
        assert_eq!(got.1, want.1, "/api/v1/series {sel:?}");
        if want.0 == 200 && !sel[0].contains("no_such_metric") {
            assert!(!want.1.is_empty(), "Prometheus found nothing for {sel:?}");
        }
        if want.0 == 200 {
            let got = ask(&pg.url(), "/api/v1/labels", &pairs);
            let want = ask(&prom.url(), "/api/v1/labels", &pairs);
            assert_eq!(got, want, "/api/v1/labels {sel:?}");
            for name in ["exchange", "symbol", "__name__", "venue"] {
                let path = format!("/api/v1/label/{name}/values");
                let got = ask(&pg.url(), &path, &pairs);
                let want = ask(&prom.url(), &path, &pairs);
                assert_eq!(got, want, "{path} {sel:?}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, selectors.len() - 2);
    // Without match[]: every label name and value.
    let got = ask(&pg.url(), "/api/v1/labels", &range);
    let want = ask(&prom.url(), "/api/v1/labels", &range);
    assert_eq!(got, want, "/api/v1/labels");
    for name in ["job", "instance", "strategy", "side"] {
        let path = format!("/api/v1/label/{name}/values");
        assert_eq!(
            ask(&pg.url(), &path, &range),
            ask(&prom.url(), &path, &range),
            "{path}"
        );
    }
}
