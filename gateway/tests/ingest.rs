//! `POST /api/v1/write` through the router: framing, validation, partial acceptance, limits,
//! and the read-back endpoints, with payloads encoded by prost as real senders encode them.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use proto::{Message, v1, v2};

#[tokio::test]
async fn v1_write_is_stored_bit_exact() {
    let app = app("");
    let t = now();
    let stale = f64::from_bits(0x7ff0000000000002);
    let body = v1_body(vec![
        series(
            &[("__name__", "up"), ("job", "a")],
            &[(t - 2000, 1.0), (t - 1000, stale)],
        ),
        series(
            &[("__name__", "pnl_usd"), ("strategy", "mm")],
            &[(t, -12.5)],
        ),
    ]);
    let (s, b) = write(&app, body).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let got = export(&app, "up").await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0]["metric"],
        serde_json::json!({"__name__": "up", "job": "a"})
    );
    assert_eq!(
        got[0]["timestamps"],
        serde_json::json!([t - 2000, t - 1000])
    );
    assert_eq!(got[0]["bits"][1], "7ff0000000000002");
    let (s, body) = get(&app, "/api/v1/series?match[]=pnl_usd").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"status": "success", "data": [{"__name__": "pnl_usd", "strategy": "mm"}]})
    );
}

#[tokio::test]
async fn v2_write_reports_written_counts() {
    let app = app("");
    let t = now();
    let req = v2::Request {
        symbols: [
            "",
            "__name__",
            "orders_total",
            "venue",
            "binance",
            "Orders sent.",
        ]
        .map(String::from)
        .to_vec(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![
                v2::Sample {
                    value: 1.0,
                    timestamp: t - 1,
                },
                v2::Sample {
                    value: 2.0,
                    timestamp: t,
                },
            ],
            metadata: Some(v2::Metadata {
                r#type: 1,
                help_ref: 5,
                unit_ref: 0,
            }),
            ..Default::default()
        }],
    };
    let http = || {
        Request::post("/api/v1/write")
            .header("Content-Type", proto::headers::CONTENT_TYPE_V2)
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "2.0.0")
            .body(Body::from(snappy(&req.encode_to_vec())))
            .unwrap()
    };
    let (s, h, b) = send(&app, http()).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(h["X-Prometheus-Remote-Write-Samples-Written"], "2");
    assert_eq!(h["X-Prometheus-Remote-Write-Histograms-Written"], "0");
    assert_eq!(h["X-Prometheus-Remote-Write-Exemplars-Written"], "0");
    // A retry of the same request is written too (stored once).
    let (s, h, _) = send(&app, http()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h["X-Prometheus-Remote-Write-Samples-Written"], "2");
    assert_eq!(
        export(&app, "orders_total").await[0]["values"],
        serde_json::json!([1.0, 2.0])
    );
}

#[tokio::test]
async fn a_partly_invalid_request_stores_the_valid_series_and_says_what_failed() {
    let app = app("");
    let t = now();
    let body = v1_body(vec![
        series(&[("__name__", "ok_a")], &[(t, 1.0)]),
        series(&[("__name__", "bad-name")], &[(t, 1.0), (t + 1, 1.0)]),
        series(&[("__name__", "ok_b"), ("a", "1"), ("a", "2")], &[(t, 1.0)]),
        series(&[("__name__", "ok_c")], &[(t + 3_600_000, 1.0)]),
        series(&[("__name__", "ok_d")], &[(t, 4.0)]),
    ]);
    let (s, b) = write(&app, body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        b,
        "4 samples rejected (invalid_metric_name: 2, duplicate_label_name: 1, too_far_in_future: 1); \
         first: series {__name__=\"bad-name\"}: invalid_metric_name"
    );
    assert_eq!(export(&app, "ok_a").await.len(), 1);
    assert_eq!(export(&app, "ok_d").await.len(), 1);
    assert!(export(&app, "ok_c").await.is_empty());
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics
            .contains("promgate_ingest_rejected_samples_total{reason=\"invalid_metric_name\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("promgate_ingest_samples_total{protocol=\"v1\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_requests_are_4xx_with_a_reason_and_the_next_write_lands() {
    let app = app("limits:\n  max_body_bytes: 1048576\n  max_decoded_bytes: 2097152\n");
    let t = now();
    let post = |ct: &'static str, enc: &'static str, body: Vec<u8>| {
        Request::post("/api/v1/write")
            .header("Content-Type", ct)
            .header("Content-Encoding", enc)
            .body(Body::from(body))
            .unwrap()
    };
    let pb = "application/x-protobuf";
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post(pb, "snappy", snappy(&[0x0a, 0x05, 0x01])),
            StatusCode::BAD_REQUEST,
            "malformed WriteRequest protobuf at byte 1",
        ),
        (
            post(pb, "snappy", b"not snappy at all".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid snappy",
        ),
        (
            post(pb, "snappy", vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "declares 4294967296 decoded bytes",
        ),
        (
            post(pb, "snappy", vec![]),
            StatusCode::BAD_REQUEST,
            "empty request body",
        ),
        (
            post(pb, "gzip", v1_body(vec![])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding \"gzip\"",
        ),
        (
            post("text/plain", "snappy", v1_body(vec![])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type \"text/plain\"",
        ),
        (
            post(pb, "snappy", vec![0u8; 2 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limits.max_body_bytes",
        ),
    ];
    for (req, want, msg) in cases {
        let (s, _, b) = send(&app, req).await;
        assert_eq!(s, want, "{b}");
        assert!(b.contains(msg), "expected {msg:?} in {b:?}");
        let (s, b) = write(
            &app,
            v1_body(vec![series(&[("__name__", "still_ok")], &[(t, 1.0)])]),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::NO_CONTENT,
            "valid write after a bad one: {b}"
        );
    }
    // Series-level problems: 400 naming the series.
    let long = "x".repeat(2049);
    let many: Vec<(String, String)> = (0..500)
        .map(|i| (format!("l{i:03}"), "v".to_string()))
        .collect();
    let mut many_refs: Vec<(&str, &str)> = vec![("__name__", "m")];
    many_refs.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let cases: Vec<(v1::TimeSeries, &str)> = vec![
        (
            series(&[("__name__", "a b")], &[(t, 1.0)]),
            "invalid_metric_name",
        ),
        (
            series(&[("__name__", "m"), ("1x", "v")], &[(t, 1.0)]),
            "invalid_label_name",
        ),
        (
            series(&[("__name__", "m"), ("j", "1"), ("j", "2")], &[(t, 1.0)]),
            "duplicate_label_name",
        ),
        (
            series(&[("__name__", "m"), ("j", &long)], &[(t, 1.0)]),
            "label_value_too_long",
        ),
        (series(&many_refs, &[(t, 1.0)]), "too_many_labels"),
    ];
    for (ts, reason) in cases {
        let (s, b) = write(&app, v1_body(vec![ts])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b.contains(reason), "expected {reason} in {b}");
    }
    // A non-UTF-8 label value.
    let mut raw = v1::WriteRequest {
        timeseries: vec![series(&[("__name__", "m"), ("j", "zz")], &[(t, 1.0)])],
        metadata: vec![],
    }
    .encode_to_vec();
    let at = raw.windows(2).position(|w| w == b"zz").unwrap();
    raw[at] = 0xc3;
    raw[at + 1] = 0x28;
    let (s, b) = write(&app, snappy(&raw)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b.contains("invalid_utf8: the value of label j is not valid UTF-8 (bytes: c3 28)"),
        "{b}"
    );
    assert_eq!(
        export(&app, "still_ok").await[0]["timestamps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn out_of_order_and_histograms_are_rejected_with_reasons() {
    let app = app("");
    let t = now();
    let (s, _) = write(
        &app,
        v1_body(vec![series(&[("__name__", "m")], &[(t, 1.0)])]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = write(
        &app,
        v1_body(vec![series(&[("__name__", "m")], &[(t - 10, 1.0)])]),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b.contains("out_of_order: 1") && b.contains("older than the newest sample"),
        "{b}"
    );
    // The same sample again is an idempotent retry.
    let (s, _) = write(
        &app,
        v1_body(vec![series(&[("__name__", "m")], &[(t, 1.0)])]),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut h = series(&[("__name__", "lat_seconds")], &[]);
    h.histograms.push(v1::Histogram::default());
    let (s, b) = write(&app, v1_body(vec![h])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("native_histogram_unsupported: 1"), "{b}");
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let app = app("limits:\n  ingestion_rate: 10\n  ingestion_burst: 10\n");
    let t = now();
    let body = || {
        v1_body(vec![series(
            &[("__name__", "m")],
            &(0..10).map(|i| (t - 100 + i, 1.0)).collect::<Vec<_>>(),
        )])
    };
    let (s, _) = write(&app, body()).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let req = Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .body(Body::from(body()))
        .unwrap();
    let (s, h, b) = send(&app, req).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(h["Retry-After"], "1");
}

#[tokio::test]
async fn naming_lint_reject_mode_uses_declared_types() {
    let app = app("limits:\n  naming_lint: reject\n");
    let t = now();
    let req = v1::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "orders")], &[(t, 1.0)]),
            series(&[("__name__", "latency_ms")], &[(t, 1.0)]),
            series(&[("__name__", "fills_total")], &[(t, 1.0)]),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "orders".into(),
            help: "".into(),
            unit: "".into(),
        }],
    };
    let (s, b) = write(&app, snappy(&req.encode_to_vec())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b.starts_with("2 samples rejected (naming_convention: 2)"),
        "{b}"
    );
    assert!(b.contains("counter name does not end in _total"), "{b}");
    assert_eq!(export(&app, "fills_total").await.len(), 1);
}

#[tokio::test]
async fn api_errors_use_the_prometheus_envelope() {
    let app = app("");
    let (s, b) = get(&app, "/api/v1/series").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let (s, _) = get(&app, "/api/v1/series?match[]=up&start=yesterday").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(&app, "/-/ready").await;
    assert_eq!(s, StatusCode::OK);
}
