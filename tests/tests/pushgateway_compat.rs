//! Pushgateway compatibility, measured against the real Pushgateway 1.5: the same sequence of
//! pushes, replaces, deletes, base64 grouping keys, invalid bodies, conflicts and odd paths is
//! sent to both, and after every step the status codes, `/api/v1/metrics` and `/metrics`
//! (timestamps and each server's own metrics taken out) must be equal. The few places where
//! promgate answers differently on purpose are listed in `DIVERGES` with the reason, and the
//! test checks that they still differ exactly that way.

use e2e::Promgate;
use e2e::pushgateway::{Pushgateway, normalize_api, normalize_exposition, send};
use proto::Message;
use proto::client::{self, MetricType};

const TEXT: &str = "text/plain; version=0.0.4";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

struct Step {
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Compare `/metrics` after this step (not when Pushgateway's answer is random, as its
    /// choice of HELP among groups that disagree).
    exposition: bool,
}

fn step(method: &'static str, path: &'static str, body: &str) -> Step {
    Step {
        method,
        path,
        content_type: TEXT,
        body: body.as_bytes().to_vec(),
        exposition: true,
    }
}

fn label(n: &str, v: &str) -> client::LabelPair {
    client::LabelPair {
        name: Some(n.into()),
        value: Some(v.into()),
    }
}

fn protobuf(families: &[client::MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut out).expect("encode");
    }
    out
}

fn protobuf_body(with_timestamp: bool) -> Vec<u8> {
    protobuf(&[
        client::MetricFamily {
            name: Some("pb_gauge".into()),
            help: Some("A gauge sent as protobuf.".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![client::Metric {
                label: vec![label("shard", "3"), label("job", "body-job")],
                gauge: Some(client::Gauge { value: Some(0.25) }),
                timestamp_ms: with_timestamp.then_some(1_700_000_000_000),
                ..Default::default()
            }],
            unit: None,
        },
        client::MetricFamily {
            name: Some("pb_requests_total".into()),
            help: None,
            r#type: Some(MetricType::Counter as i32),
            metric: vec![client::Metric {
                counter: Some(client::Counter { value: Some(1e6) }),
                ..Default::default()
            }],
            unit: None,
        },
        client::MetricFamily {
            name: Some("pb_latency_seconds".into()),
            help: Some("Latency.".into()),
            r#type: Some(MetricType::Histogram as i32),
            metric: vec![client::Metric {
                histogram: Some(client::Histogram {
                    sample_count: Some(7),
                    sample_count_float: None,
                    sample_sum: Some(1.5),
                    bucket: vec![
                        client::Bucket {
                            cumulative_count: Some(3),
                            cumulative_count_float: None,
                            upper_bound: Some(0.1),
                        },
                        client::Bucket {
                            cumulative_count: Some(6),
                            cumulative_count_float: None,
                            upper_bound: Some(1.0),
                        },
                    ],
                    schema: None,
                }),
                ..Default::default()
            }],
            unit: None,
        },
    ])
}

const FULL: &str = "# HELP foo_total A counter.\n# TYPE foo_total counter\nfoo_total{a=\"1\"} 3\nfoo_total{a=\"2\"} 4\nbar 1.5\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.99\"} 2.5\ns_sum 10\ns_count 3\n# TYPE h histogram\n# HELP h A histogram.\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# HELP esc Back\\\\slash and\\nnewline.\nesc{v=\"q\\\"uote\\\\back\\nline\"} -0.5\nbig 123456789\nsmall 0.00001\n";

/// Steps where promgate answers differently on purpose: (method, path, Pushgateway's status,
/// promgate's status, why).
const DIVERGES: &[(&str, &str, u16, u16, &str)] = &[
    (
        "POST",
        "/metrics/job/",
        307,
        400,
        "Go's router redirects; the issue asks for 400 on an empty job",
    ),
    (
        "PUT",
        "/metrics/job//a/b",
        301,
        400,
        "Go's router cleans the path with a redirect; promgate refuses it",
    ),
    ("DELETE", "/metrics/job/x//b", 301, 400, "as above"),
    ("POST", "/metrics/job/x/a//", 301, 400, "as above"),
];

#[test]
fn pushgateway_and_promgate_agree_on_the_same_sequence() {
    let pgw = Pushgateway::start();
    let data = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(data.path(), "push:\n  enable_admin_api: true\n");

    let mut steps = vec![
        step("PUT", "/metrics/job/j1/instance/i1", FULL),
        step("POST", "/metrics/job/j2/x@base64/=", "g 1\n"),
        step("POST", "/metrics/job@base64/YWJj/y@base64/L3Y", "g 2\n"),
        // Labels in the path override the same labels in the body.
        step(
            "POST",
            "/metrics/job/j3",
            "g{job=\"other\",z=\"zz\",instance=\"body\"} 3\n",
        ),
        step(
            "POST",
            "/metrics/job/j3/instance/path",
            "g{instance=\"body\"} 4\n",
        ),
        // Timestamps, type conflicts, duplicates: refused, the failure time set.
        step("POST", "/metrics/job/j4", "g 1 123\n"),
        step("POST", "/metrics/job/j5", "# TYPE g counter\ng 1\n"),
        step("POST", "/metrics/job/j7", "g 1\ng 2\n"),
        step("POST", "/metrics/job/j7", "g{__reserved=\"1\"} 1\n"),
        // Parse errors: refused, nothing recorded.
        step("POST", "/metrics/job/j8", "g{a=\"1\" 1\n"),
        step("POST", "/metrics/job/j8", "1abc 1\n"),
        step("POST", "/metrics/job/j8", "g 1\n# TYPE g gauge\n"),
        step("POST", "/metrics/job/j8", "g{a=\"\u{ff}\"} 1\n"),
        step("POST", "/metrics/job/j8", "g{a=\"1\",a=\"2\"} 1\n"),
        step("POST", "/metrics/job/j8", "g 1e400\n"),
        step(
            "POST",
            "/metrics/job/j8",
            "# TYPE q summary\nq{quantile=\"x\"} 1\n",
        ),
        // Suffix collision with the summary `s` of group j1.
        step("POST", "/metrics/job/j10", "s_count 1\n"),
        // POST replaces only the families it names; PUT the whole group.
        step(
            "POST",
            "/metrics/job/j1/instance/i1",
            "bar 2.5\nnew_one 1\n",
        ),
        step("PUT", "/metrics/job/j3", "other 1\n"),
        step("DELETE", "/metrics/job/j2/x@base64/=", ""),
        step("DELETE", "/metrics/job/nonexistent", ""),
        step("PUT", "/metrics/job/j9", ""),
        step("PUT", "/metrics/job/j9/a@base64/%3D%3D", "g 9\n"),
        step("POST", "/metrics/job/x/a/b/a/c", "g 10\n"),
        step("POST", "/metrics/job/x/job/y", "g 11\n"),
        step("POST", "/metrics/job/a%2Fb", "g 1\n"),
        step("POST", "/metrics/job/x/__a/b", "g 1\n"),
        step("POST", "/metrics/job/x/a/b/", "g 1\n"),
        step("POST", "/metrics/job@base64/=", "g 1\n"),
        step("POST", "/metrics/job@base64/!!", "g 1\n"),
        step("POST", "/metrics/jobs/x", "g 1\n"),
        step("POST", "/metrics/job/", "g 1\n"),
        step("PUT", "/metrics/job//a/b", "g 1\n"),
        step("DELETE", "/metrics/job/x//b", ""),
        step("POST", "/metrics/job/x/a//", "g 1\n"),
        // Binary garbage: neither text nor protobuf.
        Step {
            method: "PUT",
            path: "/metrics/job/garbage",
            content_type: "application/octet-stream",
            body: (0..200u32).map(|i| (i * 7919 % 251) as u8).collect(),
            exposition: true,
        },
        Step {
            method: "PUT",
            path: "/metrics/job/pb/instance/x",
            content_type: PROTOBUF,
            body: protobuf_body(false),
            exposition: true,
        },
        Step {
            method: "POST",
            path: "/metrics/job/pb2",
            content_type: PROTOBUF,
            body: protobuf_body(true),
            exposition: true,
        },
        Step {
            method: "POST",
            path: "/metrics/job/pb3",
            content_type: PROTOBUF,
            body: vec![0x05, 0x0a, 0xff],
            exposition: true,
        },
        // The same body as text with the protobuf parameters incomplete: parsed as text.
        Step {
            method: "PUT",
            path: "/metrics/job/pb4",
            content_type: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily",
            body: b"g 4\n".to_vec(),
            exposition: true,
        },
    ];
    // Help differing between groups: accepted by both; which HELP /metrics shows is random in
    // Pushgateway, so only the JSON (per group) is compared.
    steps.push(Step {
        exposition: false,
        ..step("POST", "/metrics/job/j6", "# HELP g other help\ng 1\n")
    });
    steps.push(Step {
        exposition: false,
        ..step("PUT", "/api/v1/admin/wipe", "")
    });

    let mut diverged = 0;
    for (i, s) in steps.iter().enumerate() {
        let what = format!("step {i}: {} {}", s.method, s.path);
        let headers = [("Content-Type", s.content_type)];
        let a = send(
            s.method,
            &format!("{}{}", pgw.url(), s.path),
            &headers,
            s.body.clone(),
        )
        .unwrap_or_else(|e| panic!("{what}: Pushgateway: {e}"));
        let b = send(
            s.method,
            &format!("{}{}", pg.url(), s.path),
            &headers,
            s.body.clone(),
        )
        .unwrap_or_else(|e| panic!("{what}: promgate: {e}"));
        match DIVERGES.iter().find(|d| d.0 == s.method && d.1 == s.path) {
            Some(d) => {
                assert_eq!(
                    (a.status, b.status),
                    (d.2, d.3),
                    "{what}: expected the documented divergence ({}); promgate said {}",
                    d.4,
                    b.text()
                );
                diverged += 1;
            }
            None => assert_eq!(
                a.status,
                b.status,
                "{what}: status differs; Pushgateway: {} | promgate: {}",
                a.text(),
                b.text()
            ),
        }
        if b.status == 400 {
            assert!(!b.text().trim().is_empty(), "{what}: a 400 must say why");
        }
        // Pushgateway applies writes asynchronously after answering; give it a moment.
        let pgw_api = e2e::eventually(std::time::Duration::from_secs(5), || {
            let want =
                normalize_api(&e2e::http::get(&format!("{}/api/v1/metrics", pg.url()))?.json()?);
            let got =
                normalize_api(&e2e::http::get(&format!("{}/api/v1/metrics", pgw.url()))?.json()?);
            if got == want {
                Ok(got)
            } else {
                Err(format!(
                    "{what}: /api/v1/metrics differs\nPushgateway: {}\npromgate:    {}",
                    serde_json::to_string_pretty(&got).unwrap_or_default(),
                    serde_json::to_string_pretty(&want).unwrap_or_default()
                ))
            }
        });
        assert_eq!(pgw_api["status"], "success");
        if s.exposition {
            let a = normalize_exposition(
                &e2e::http::get(&format!("{}/metrics", pgw.url()))
                    .expect("pgw /metrics")
                    .text(),
            );
            let b = normalize_exposition(
                &e2e::http::get(&format!("{}/metrics", pg.url()))
                    .expect("promgate /metrics")
                    .text(),
            );
            assert_eq!(a, b, "{what}: /metrics differs (left: Pushgateway)");
        }
    }
    assert_eq!(
        diverged,
        DIVERGES.len(),
        "every documented divergence was exercised"
    );
    // The sequence left groups behind before the wipe; the final state is empty on both.
    let after = normalize_api(
        &e2e::http::get(&format!("{}/api/v1/metrics", pg.url()))
            .expect("api")
            .json()
            .expect("json"),
    );
    assert_eq!(after["data"], serde_json::json!([]));
}
