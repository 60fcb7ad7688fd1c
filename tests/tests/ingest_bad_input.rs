//! Bad remote-write input: every case is answered 4xx (never 5xx, a hang or a crash) with a body
//! that says what was wrong, the rejected samples are counted by reason, and a valid write right
//! after still lands. A request mixing valid and invalid series is answered 400 naming the first
//! bad series with counts per reason, and its valid series are stored.

use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::http::{self, post, post_rw_v1};
use e2e::payload::{
    self, METRIC, RawLabel, STEP_MS, encode_v1, labels, raw_v1, series, snappy, value_of,
};
use e2e::{Promgate, Response, now_ms, rw_v1};
use proto::Message;
use proto::v1::WriteRequest;

const V1_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", proto::headers::CONTENT_TYPE_V1),
    ("Content-Encoding", proto::headers::ENCODING_SNAPPY),
    (proto::headers::VERSION, "0.1.0"),
];

/// A fresh promgate with its data directory.
fn promgate() -> (Promgate, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    (Promgate::start(data.path(), ""), data)
}

/// Asserts the answer's status is one of `statuses` and its body mentions one of `words`
/// (case-insensitive), then that promgate is alive and a valid write lands.
#[track_caller]
fn assert_rejected(pg: &Promgate, r: &Response, statuses: &[u16], words: &[&str]) {
    let body = r.text();
    eprintln!("answer: {} {body}", r.status);
    assert!(
        statuses.contains(&r.status),
        "status {} (want one of {statuses:?}), body {body:?}; log:\n{}",
        r.status,
        pg.process().log_tail()
    );
    let lower = body.to_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(&w.to_lowercase())),
        "body {body:?} does not say what was wrong (expected one of {words:?})"
    );
    assert_valid_write_lands(pg);
}

/// promgate is healthy, and a valid write is accepted and reads back exactly. Each call writes
/// its own series (`job="after-N"`), so repeated calls never overlap.
#[track_caller]
fn assert_valid_write_lands(pg: &Promgate) {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let job = format!("after-{}", CALLS.fetch_add(1, Ordering::Relaxed));
    assert!(
        pg.is_healthy(),
        "promgate not healthy; log:\n{}",
        pg.process().log_tail()
    );
    let ts = now_ms() - 60_000;
    let mut req = payload::v1_request(2, 3, ts);
    for s in &mut req.timeseries {
        for l in &mut s.labels {
            if l.name == "job" {
                l.value = job.clone();
            }
        }
    }
    let r = post_rw_v1(&pg.write_url(), encode_v1(&req)).expect("valid write");
    assert_eq!(r.status, 204, "valid write after a bad one: {}", r.text());
    let got = pg
        .export(&format!(r#"{{job="{job}"}}"#), None, false)
        .expect("export");
    assert_eq!(got.len(), 2, "valid series read back: {got:?}");
    for s in &got {
        assert_eq!(s.metric["__name__"], METRIC);
        let i: usize = s.metric["series"].parse().expect("series label");
        assert_eq!(s.timestamps, vec![ts, ts + STEP_MS, ts + 2 * STEP_MS]);
        assert_eq!(s.values, (0..3).map(|j| value_of(i, j)).collect::<Vec<_>>());
    }
}

/// The rejected-samples counter for `reason`.
fn rejected(pg: &Promgate, reason: &str) -> f64 {
    pg.metric_value(&format!(
        "promgate_ingest_rejected_samples_total{{reason=\"{reason}\"}}"
    ))
    .unwrap_or(0.0)
}

fn post_v1_raw(pg: &Promgate, protobuf: &[u8]) -> Response {
    post(&pg.write_url(), &V1_HEADERS, snappy(protobuf)).expect("an HTTP answer")
}

/// Sends one invalid series (3 samples) and expects 400 naming `reason`, counted as 3
/// rejected samples.
#[track_caller]
fn assert_series_rejected(series_labels: Vec<RawLabel>, reason: &str) {
    let (pg, _data) = promgate();
    let ts = now_ms() - 30_000;
    let samples = vec![(ts, 1.0), (ts + 1000, 2.0), (ts + 2000, 3.0)];
    let before = rejected(&pg, reason);
    let r = post_v1_raw(&pg, &raw_v1(&[(series_labels, samples)]));
    assert_rejected(&pg, &r, &[400], &[reason]);
    assert_eq!(
        rejected(&pg, reason) - before,
        3.0,
        "promgate_ingest_rejected_samples_total{{reason=\"{reason}\"}} must count the 3 samples"
    );
}

fn raw(pairs: &[(&str, &str)]) -> Vec<RawLabel> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn malformed_protobuf() {
    let (pg, _data) = promgate();
    // A length-delimited field (timeseries) claiming 100 bytes with 3 present.
    let r = post_v1_raw(&pg, &[0x0a, 100, 1, 2, 3]);
    assert_rejected(&pg, &r, &[400], &["protobuf", "decode", "malformed"]);
    // Wire type 7 does not exist.
    let r = post_v1_raw(&pg, &[0x0f, 0x01]);
    assert_rejected(&pg, &r, &[400], &["protobuf", "decode", "malformed"]);
}

#[test]
fn invalid_snappy() {
    let (pg, _data) = promgate();
    let valid = rw_v1(3, 2, now_ms());
    // Declares the right length but the body is cut in half.
    let cut = valid[..valid.len() / 2].to_vec();
    let r = post(&pg.write_url(), &V1_HEADERS, cut).expect("an HTTP answer");
    assert_rejected(&pg, &r, &[400], &["snappy", "decompress"]);
    // Not snappy at all: the raw protobuf.
    let plain = payload::v1_request(3, 2, now_ms()).encode_to_vec();
    let r = post(&pg.write_url(), &V1_HEADERS, plain).expect("an HTTP answer");
    assert_rejected(&pg, &r, &[400], &["snappy", "decompress"]);
}

#[test]
fn snappy_header_declaring_4_gib() {
    let (pg, _data) = promgate();
    for declared in [u64::from(u32::MAX), 1u64 << 32] {
        // Varint uncompressed length, then a tiny literal.
        let mut body = Vec::new();
        let mut v = declared;
        while v >= 0x80 {
            body.push((v as u8) | 0x80);
            v >>= 7;
        }
        body.push(v as u8);
        body.extend_from_slice(&[0x08, b'a', b'b', b'c']);
        let r = post(&pg.write_url(), &V1_HEADERS, body).expect("an HTTP answer");
        assert_rejected(
            &pg,
            &r,
            &[400, 413],
            &[
                "snappy",
                "decoded",
                "decompress",
                "too large",
                "size",
                "limit",
            ],
        );
    }
}

#[test]
fn empty_body() {
    let (pg, _data) = promgate();
    let r = post(&pg.write_url(), &V1_HEADERS, Vec::new()).expect("an HTTP answer");
    assert_rejected(&pg, &r, &[400], &["empty", "snappy", "body"]);
}

#[test]
fn wrong_content_encoding() {
    let (pg, _data) = promgate();
    for encoding in ["gzip", "identity", "zstd"] {
        let r = post(
            &pg.write_url(),
            &[
                ("Content-Type", proto::headers::CONTENT_TYPE_V1),
                ("Content-Encoding", encoding),
            ],
            rw_v1(1, 1, now_ms()),
        )
        .expect("an HTTP answer");
        assert_rejected(&pg, &r, &[415], &["encoding", encoding]);
    }
}

#[test]
fn unknown_content_type() {
    let (pg, _data) = promgate();
    for content_type in [
        "application/json",
        "text/plain",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
    ] {
        let r = post(
            &pg.write_url(),
            &[
                ("Content-Type", content_type),
                ("Content-Encoding", proto::headers::ENCODING_SNAPPY),
            ],
            rw_v1(1, 1, now_ms()),
        )
        .expect("an HTTP answer");
        assert_rejected(&pg, &r, &[415], &["content type", "content-type", "proto"]);
    }
}

#[test]
fn invalid_metric_name() {
    assert_series_rejected(
        raw(&[("__name__", "0bad-metric"), ("job", "x")]),
        "invalid_metric_name",
    );
}

#[test]
fn invalid_label_name() {
    assert_series_rejected(
        raw(&[("__name__", "ok_metric"), ("bad-label", "x")]),
        "invalid_label_name",
    );
}

#[test]
fn duplicate_label_names() {
    assert_series_rejected(
        raw(&[("__name__", "ok_metric"), ("job", "a"), ("job", "b")]),
        "duplicate_label_name",
    );
}

#[test]
fn label_value_over_the_limit() {
    // The default limit is 2048 bytes.
    let long = "v".repeat(2049);
    assert_series_rejected(
        raw(&[("__name__", "ok_metric"), ("job", &long)]),
        "label_value_too_long",
    );
}

#[test]
fn five_hundred_labels_on_one_series() {
    let names: Vec<String> = (0..499).map(|i| format!("l{i:03}")).collect();
    let mut pairs = vec![("__name__", "ok_metric")];
    pairs.extend(names.iter().map(|n| (n.as_str(), "v")));
    assert_eq!(pairs.len(), 500);
    assert_series_rejected(raw(&pairs), "too_many_labels");
}

#[test]
fn non_utf8_label_value() {
    let mut labels = raw(&[("__name__", "ok_metric")]);
    labels.push((b"job".to_vec(), vec![b'a', 0xff, 0xfe, b'z']));
    assert_series_rejected(labels, "invalid_utf8");
}

#[test]
fn sixty_four_mib_body() {
    let (pg, _data) = promgate();
    // Default max_body_bytes is 32 MiB.
    let body = vec![0u8; 64 << 20];
    let r = post(&pg.write_url(), &V1_HEADERS, body)
        .expect("an HTTP answer (413), not a reset connection");
    assert_rejected(&pg, &r, &[413], &["too large", "body", "limit", "bytes"]);
}

/// Whether `body` says `count` next to `reason` (e.g. `invalid_metric_name: 2`,
/// `2 invalid_metric_name`, `"invalid_metric_name":2`).
fn mentions_count(body: &str, reason: &str, count: usize) -> bool {
    body.match_indices(reason).any(|(i, _)| {
        let before = &body[i.saturating_sub(16)..i];
        let after = &body[i + reason.len()..(i + reason.len() + 16).min(body.len())];
        let first_number = |s: &str| {
            s.split(|c: char| !c.is_ascii_digit())
                .find(|t| !t.is_empty())
                .map(str::to_string)
        };
        let last_number = |s: &str| {
            s.split(|c: char| !c.is_ascii_digit())
                .rfind(|t| !t.is_empty())
                .map(str::to_string)
        };
        let want = Some(count.to_string());
        first_number(after) == want || last_number(before) == want
    })
}

#[test]
fn mixed_valid_and_invalid_series() {
    let (pg, _data) = promgate();
    let ts = now_ms() - 30_000;
    let samples: Vec<(i64, f64)> = (0..4).map(|j| (ts + j * STEP_MS, j as f64)).collect();
    let long = "v".repeat(3000);
    let valid = |i: usize| {
        series(
            labels(&[
                ("__name__", "mixed_ok"),
                ("job", "mixed"),
                ("i", &i.to_string()),
            ]),
            &samples,
        )
    };
    let req = WriteRequest {
        timeseries: vec![
            valid(0),
            series(
                labels(&[("__name__", "0first_bad"), ("job", "mixed")]),
                &samples,
            ),
            valid(1),
            series(
                labels(&[("__name__", "mixed_ok"), ("job", &long)]),
                &samples,
            ),
            series(
                labels(&[("__name__", "9second_bad"), ("job", "mixed")]),
                &samples,
            ),
            valid(2),
        ],
        metadata: Vec::new(),
    };
    let before_name = rejected(&pg, "invalid_metric_name");
    let before_long = rejected(&pg, "label_value_too_long");
    let r = post(&pg.write_url(), &V1_HEADERS, encode_v1(&req)).expect("an HTTP answer");
    let body = r.text();
    assert_eq!(r.status, 400, "body {body:?}");
    assert!(
        body.contains("0first_bad"),
        "must name the first bad series: {body:?}"
    );
    assert!(
        mentions_count(&body, "invalid_metric_name", 2)
            || mentions_count(&body, "invalid_metric_name", 8),
        "must count 2 series (or 8 samples) as invalid_metric_name: {body:?}"
    );
    assert!(
        mentions_count(&body, "label_value_too_long", 1)
            || mentions_count(&body, "label_value_too_long", 4),
        "must count label_value_too_long: {body:?}"
    );
    // The counters count samples.
    assert_eq!(rejected(&pg, "invalid_metric_name") - before_name, 8.0);
    assert_eq!(rejected(&pg, "label_value_too_long") - before_long, 4.0);

    // The valid series were stored, exactly, and only they.
    let got = pg
        .export(r#"{job="mixed"}"#, Some((ts, ts + 10 * STEP_MS)), false)
        .expect("export");
    let keys: Vec<String> = got.iter().map(|s| s.key()).collect();
    assert_eq!(
        keys,
        vec![
            r#"mixed_ok{i="0",job="mixed"}"#,
            r#"mixed_ok{i="1",job="mixed"}"#,
            r#"mixed_ok{i="2",job="mixed"}"#,
        ],
    );
    for s in &got {
        assert_eq!(
            s.timestamps,
            samples.iter().map(|p| p.0).collect::<Vec<_>>()
        );
        assert_eq!(s.values, samples.iter().map(|p| p.1).collect::<Vec<_>>());
    }
    let everything = http::export(&pg.url(), r#"{__name__=~".+"}"#, None, false).expect("export");
    assert!(
        everything.iter().all(|s| s.metric["job"].len() < 100),
        "the long-label series was stored"
    );
    assert_valid_write_lands(&pg);
}
