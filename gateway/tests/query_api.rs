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
