//! The Prometheus API endpoints over the window that need no PromQL: series, labels, label
//! values, metadata, the cardinality view and build information.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use axum::http::StatusCode;
use common::*;
use proto::{Message, v1};
use serde_json::{Value, json};

async fn json_of(app: &App, uri: &str) -> Value {
    let (s, body) = get(app, uri).await;
    assert_eq!(s, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn loaded() -> (App, i64) {
    let app = app("");
    let t = now();
    let req = v1::WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "up"), ("instance", "a:1"), ("job", "api")],
                &[(t - 60_000, 1.0)],
            ),
            series(
                &[("__name__", "up"), ("instance", "b:1"), ("job", "api")],
                &[(t, 0.0)],
            ),
            series(
                &[("__name__", "fills_total"), ("venue", "binance")],
                &[(t, 3.0)],
            ),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "fills_total".into(),
            help: "Orders filled.".into(),
            unit: "".into(),
        }],
    };
    let (s, b) = write(&app, snappy(&req.encode_to_vec())).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    (app, t)
}

#[tokio::test]
async fn labels_and_values_follow_match_and_time_range() {
    let (app, t) = loaded().await;
    assert_eq!(
        json_of(&app, "/api/v1/labels").await,
        json!({"status": "success", "data": ["__name__", "instance", "job", "venue"]})
    );
    assert_eq!(
        json_of(&app, "/api/v1/labels?match[]=fills_total").await["data"],
        json!(["__name__", "venue"])
    );
    assert_eq!(
        json_of(&app, "/api/v1/label/__name__/values").await["data"],
        json!(["fills_total", "up"])
    );
    // Only b:1 has a sample in the last 30 seconds.
    let since = (t - 30_000) as f64 / 1000.0;
    assert_eq!(
        json_of(
            &app,
            &format!("/api/v1/label/instance/values?start={since}")
        )
        .await["data"],
        json!(["b:1"])
    );
    let (s, _) = get(&app, "/api/v1/label/not-a-name/values").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn metadata_is_what_senders_declared() {
    let (app, _) = loaded().await;
    assert_eq!(
        json_of(&app, "/api/v1/metadata").await["data"],
        json!({"fills_total": [{"type": "counter", "help": "Orders filled.", "unit": ""}]})
    );
    assert_eq!(
        json_of(&app, "/api/v1/metadata?metric=up").await["data"],
        json!({})
    );
}

#[tokio::test]
async fn tsdb_status_counts_cardinality() {
    let (app, t) = loaded().await;
    let d = json_of(&app, "/api/v1/status/tsdb").await["data"].clone();
    assert_eq!(d["headStats"]["numSeries"], 3);
    assert_eq!(d["headStats"]["minTime"], t - 60_000);
    assert_eq!(d["headStats"]["maxTime"], t);
    assert_eq!(
        d["seriesCountByMetricName"][0],
        json!({"name": "up", "value": 2})
    );
    assert_eq!(
        d["labelValueCountByLabelName"][0],
        json!({"name": "__name__", "value": 2})
    );
    assert_eq!(
        json_of(&app, "/api/v1/status/tsdb?limit=1").await["data"]["seriesCountByLabelValuePair"],
        json!([{"name": "__name__=up", "value": 2}])
    );
}

#[tokio::test]
async fn buildinfo_names_the_api_version() {
    let (app, _) = loaded().await;
    let d = json_of(&app, "/api/v1/status/buildinfo").await["data"].clone();
    assert_eq!(d["version"], "2.42.0");
    assert_eq!(d["application"], "promgate");
}

#[tokio::test]
async fn instant_and_range_queries_evaluate_over_the_window() {
    let (app, t) = loaded().await;
    let at = t as f64 / 1000.0;
    let v = json_of(&app, &format!("/api/v1/query?query=sum(up)&time={at}")).await;
    assert_eq!(v["data"]["resultType"], "vector");
    // up{instance="a:1"} is 60s old, inside the 5m lookback: 1 + 0.
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    let v = json_of(
        &app,
        &format!(
            "/api/v1/query?query={}&time={at}",
            urlencode("up{instance=\"b:1\"} == bool 0")
        ),
    )
    .await;
    assert_eq!(
        v["data"]["result"][0]["metric"],
        json!({"instance": "b:1", "job": "api"})
    );
    assert_eq!(v["data"]["result"][0]["value"][1], "1");
    let (start, end) = ((t - 60_000) as f64 / 1000.0, at);
    let v = json_of(
        &app,
        &format!("/api/v1/query_range?query=count(up)&start={start}&end={end}&step=30"),
    )
    .await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let values = v["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0][1], "1", "only a:1 exists 60s ago");
    assert_eq!(values[2][1], "2");
    let v = json_of(&app, "/api/v1/query?query=1%2F0&time=5").await;
    assert_eq!(
        v["data"],
        json!({"resultType": "scalar", "result": [5, "+Inf"]})
    );
}

#[tokio::test]
async fn query_errors_use_prometheus_types_and_codes() {
    let (app, _) = loaded().await;
    let cases = [
        (
            "/api/v1/query?query=sum(",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query?query=up&time=noon",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=0&step=1",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1",
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
    ];
    for (uri, status, kind) in cases {
        let (s, body) = get(&app, uri).await;
        assert_eq!(s, status, "{uri}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["errorType"], kind, "{uri}: {body}");
        assert_eq!(v["status"], "error");
    }
    // Many-to-many matching is an execution error (422), as in Prometheus.
    let q = urlencode("up + on(job) up");
    let (s, body) = get(&app, &format!("/api/v1/query?query={q}")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("many-to-many matching not allowed"), "{body}");
}
