//! Helpers shared by the router-level tests: an app over a temporary store, request helpers,
//! and payloads encoded with prost as real senders encode them.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset; unwrap fails the test

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use gateway::app::{AppState, router};
use gateway::config::Config;
use gateway::ingest::remote_write::IngestMetrics;
use gateway::store::{Store, StoreMetrics};
use gateway::telemetry::HttpMetrics;
use prometheus_client::registry::Registry;
use proto::{Message, v1};
use tower::ServiceExt;

pub struct App {
    pub router: axum::Router,
    _dir: tempfile::TempDir,
}

pub fn app(config_yaml: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(config_yaml, "test.yml", |_| None).unwrap();
    config.storage.path = dir.path().to_path_buf();
    let config = Arc::new(config);
    let mut registry = Registry::with_prefix("promgate");
    let ingest = IngestMetrics::register(&mut registry);
    let http = HttpMetrics::register(&mut registry);
    let sm = StoreMetrics::register(&mut registry);
    let state = Arc::new(AppState::new(config.clone(), registry, ingest, http));
    let store = Store::open(&config.storage, state.limits.clone(), sm, now(), &[]).unwrap();
    state.set_store(Arc::new(store));
    App {
        router: router(state),
        _dir: dir,
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| v1::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

pub fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

pub fn v1_body(ts: Vec<v1::TimeSeries>) -> Vec<u8> {
    snappy(
        &v1::WriteRequest {
            timeseries: ts,
            metadata: vec![],
        }
        .encode_to_vec(),
    )
}

pub async fn send(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub async fn write(app: &App, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::post("/api/v1/write")
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(Body::from(body))
        .unwrap();
    let (s, _, b) = send(app, req).await;
    (s, b)
}

pub async fn get(app: &App, uri: &str) -> (StatusCode, String) {
    let (s, _, b) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, b)
}

pub async fn export(app: &App, selector: &str) -> Vec<serde_json::Value> {
    let uri = format!("/api/v1/export?raw_bits=1&match[]={}", urlencode(selector));
    let (s, body) = get(app, &uri).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
