//! Router-level tests of the push API: the admin switch, metadata, self-metrics by outcome,
//! config validation.

#![allow(clippy::unwrap_used)] // unwrap fails the test

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{app, get, send};

async fn push(app: &common::App, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, _, b) = send(app, req).await;
    (s, b)
}

#[tokio::test]
async fn wipe_needs_the_admin_switch() {
    let off = app("");
    assert_eq!(
        push(&off, "PUT", "/metrics/job/a", "x 1\n").await.0,
        StatusCode::OK
    );
    let (s, b) = push(&off, "PUT", "/api/v1/admin/wipe", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("enable_admin_api"), "{b}");
    let (_, groups) = get(&off, "/api/v1/metrics").await;
    assert!(groups.contains("\"job\":\"a\""), "{groups}");

    let on = app("push:\n  enable_admin_api: true\n");
    assert_eq!(
        push(&on, "PUT", "/metrics/job/a", "x 1\n").await.0,
        StatusCode::OK
    );
    assert_eq!(
        push(&on, "PUT", "/metrics/job/b", "y 1\n").await.0,
        StatusCode::OK
    );
    assert_eq!(
        push(&on, "PUT", "/api/v1/admin/wipe", "").await.0,
        StatusCode::ACCEPTED
    );
    let (_, groups) = get(&on, "/api/v1/metrics").await;
    assert_eq!(groups, r#"{"data":[],"status":"success"}"#);
}

#[tokio::test]
async fn pushed_families_declare_their_metadata() {
    let a = app("");
    let body = "# HELP jobs_total Jobs run.\n# TYPE jobs_total counter\njobs_total 3\n";
    assert_eq!(
        push(&a, "PUT", "/metrics/job/m", body).await.0,
        StatusCode::OK
    );
    let (s, md) = get(&a, "/api/v1/metadata?metric=jobs_total").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        md.contains("\"type\":\"counter\"") && md.contains("Jobs run."),
        "{md}"
    );
}

#[tokio::test]
async fn self_metrics_count_pushes_by_outcome() {
    let a = app("");
    assert_eq!(
        push(&a, "POST", "/metrics/job/m", "x 1\n").await.0,
        StatusCode::OK
    );
    assert_eq!(
        push(&a, "POST", "/metrics/job/m", "x 1 5\n").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        push(&a, "POST", "/metrics/job/m", "x{\n").await.0,
        StatusCode::BAD_REQUEST
    );
    let (_, m) = get(&a, "/metrics").await;
    for want in [
        "push_accepted_total{method=\"post\"} 1",
        "push_rejected_total{reason=\"timestamps\"} 1",
        "push_rejected_total{reason=\"parse_error\"} 1",
        "push_groups 1",
        "x{instance=\"\",job=\"m\"} 1",
    ] {
        assert!(m.contains(want), "missing {want:?} in:\n{m}");
    }
    assert!(!m.contains("# EOF"), "text format 0.0.4, not OpenMetrics");
}

#[test]
fn push_config_errors_name_the_field() {
    let e = gateway::config::Config::parse(
        "push:\n  groups:\n    - match: {job: '(('}\n      ttl: 1h\n",
        "p.yml",
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("push.groups[0].match.job"), "{e}");
    let e = gateway::config::Config::parse("push:\n  grups: []\n", "p.yml", |_| None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("grups"), "{e}");
}
