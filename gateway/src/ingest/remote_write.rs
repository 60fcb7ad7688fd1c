//! `POST /api/v1/write`: remote write 1.0 and 2.0 on one endpoint.
//!
//! The request is checked in order of cost: framing (content type, encoding, size), decoding,
//! the rate limit, then per series the name rules and limits (only for series the head does
//! not know yet: a known series passed them when it was created) and per sample the time
//! bounds. What survives goes to the store as one batch; stateful checks (out-of-order,
//! duplicates, series limits) happen there. Valid series are stored even when others in the
//! same request are rejected, as the remote-write spec allows, and the answer is then 400
//! with counts per reason and the first offending series.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rules_engine::model::METRIC_NAME;
use rules_engine::{Label, Labels};

use super::body::{FramingError, Protocol, decompress_snappy, negotiate, read_capped};
use super::decode::{Decoded, MetadataType, decode_v1, decode_v2, labels_as_str};
use crate::app::AppState;
use crate::store::head::{Head, SeriesKey, series_key};
use crate::store::{Entry, MetricMetadata, ReceivedBody, Target, WriteBatch, WriteOutcome};
use crate::validate::{
    LimitsConfig, LintMode, Reason, Rejections, check_labels, describe_pairs, lint_metric_name,
};

/// Why a whole request was refused (the `reason` of `promgate_ingest_rejected_requests_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RequestReason {
    unsupported_media_type,
    body_too_large,
    invalid_body,
    malformed_protobuf,
    too_many_samples,
    rate_limited,
    unavailable,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestReasonLabel {
    reason: RequestReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ProtocolValue {
    v1,
    v2,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: ProtocolValue,
}

/// Ingest self-metrics.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    samples: Family<ProtocolLabel, Counter>,
    rejected_samples: Family<ReasonLabel, Counter>,
    rejected_requests: Family<RequestReasonLabel, Counter>,
    lint_violations: Counter,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ingest");
        r.register(
            "samples",
            "Samples accepted and committed, by remote-write protocol",
            m.samples.clone(),
        );
        r.register(
            "rejected_samples",
            "Samples (and histograms, exemplars) rejected, by reason",
            m.rejected_samples.clone(),
        );
        r.register(
            "rejected_requests",
            "Requests refused whole, by reason",
            m.rejected_requests.clone(),
        );
        r.register(
            "naming_lint_violations",
            "New series whose metric name breaks the naming conventions",
            m.lint_violations.clone(),
        );
        m
    }

    pub fn count_rejections(&self, r: &Rejections) {
        for (reason, n) in &r.counts {
            self.rejected_samples
                .get_or_create(&ReasonLabel { reason: *reason })
                .inc_by(*n);
        }
    }

    fn count_request(&self, reason: RequestReason) {
        self.rejected_requests
            .get_or_create(&RequestReasonLabel { reason })
            .inc();
    }
}

/// The ingestion-rate limit: a token bucket of samples. A request is admitted when the bucket
/// holds at least `min(n, burst)` tokens, and may take it below zero, so a request larger than
/// the burst is not refused forever; the debt delays the next ones.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens, or says how long until they are there.
    pub fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let need = n.min(self.burst);
        if self.tokens >= need {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - self.tokens) / self.rate))
        }
    }
}

/// A request's failure, answered with its status.
enum WriteError {
    Framing(FramingError),
    Malformed(super::decode::DecodeError),
    TooManySamples(usize, usize),
    RateLimited(Duration),
    Unavailable(String),
}

impl WriteError {
    fn reason(&self) -> RequestReason {
        match self {
            WriteError::Framing(FramingError::UnsupportedMediaType(_)) => {
                RequestReason::unsupported_media_type
            }
            WriteError::Framing(FramingError::TooLarge(_)) => RequestReason::body_too_large,
            WriteError::Malformed(_) => RequestReason::malformed_protobuf,
            WriteError::Framing(FramingError::Invalid(_)) => RequestReason::invalid_body,
            WriteError::TooManySamples(..) => RequestReason::too_many_samples,
            WriteError::RateLimited(_) => RequestReason::rate_limited,
            WriteError::Unavailable(_) => RequestReason::unavailable,
        }
    }
}

impl IntoResponse for WriteError {
    fn into_response(self) -> Response {
        match self {
            WriteError::Framing(FramingError::UnsupportedMediaType(m)) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, m).into_response()
            }
            WriteError::Framing(FramingError::TooLarge(m)) => {
                (StatusCode::PAYLOAD_TOO_LARGE, m).into_response()
            }
            WriteError::Framing(FramingError::Invalid(m)) => {
                (StatusCode::BAD_REQUEST, m).into_response()
            }
            WriteError::Malformed(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            WriteError::TooManySamples(n, max) => (
                StatusCode::BAD_REQUEST,
                format!("request holds {n} samples, over limits.max_samples_per_request ({max})"),
            )
                .into_response(),
            WriteError::RateLimited(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, secs.to_string())],
                    format!(
                        "ingestion rate limit (limits.ingestion_rate) exceeded; retry in {secs}s"
                    ),
                )
                    .into_response()
            }
            WriteError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1".to_string())],
                m,
            )
                .into_response(),
        }
    }
}

/// The handler.
pub async fn remote_write(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let content_length = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    match handle(
        &state,
        header(header::CONTENT_TYPE),
        header(header::CONTENT_ENCODING),
        content_length,
        body,
    )
    .await
    {
        Ok((protocol, out)) => {
            let m = &state.ingest;
            let label = match protocol {
                Protocol::V1 => ProtocolValue::v1,
                Protocol::V2 => ProtocolValue::v2,
            };
            m.samples
                .get_or_create(&ProtocolLabel { protocol: label })
                .inc_by(out.accepted);
            m.count_rejections(&out.rejected);
            let mut resp = if out.rejected.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                (StatusCode::BAD_REQUEST, out.rejected.message()).into_response()
            };
            if protocol == Protocol::V2 {
                let h = resp.headers_mut();
                // An identical retry counts as written, as Prometheus's receiver counts it.
                h.insert(
                    proto::headers::SAMPLES_WRITTEN,
                    HeaderValue::from(out.accepted + out.unchanged),
                );
                h.insert(proto::headers::HISTOGRAMS_WRITTEN, HeaderValue::from(0));
                h.insert(proto::headers::EXEMPLARS_WRITTEN, HeaderValue::from(0));
            }
            resp
        }
        Err(e) => {
            state.ingest.count_request(e.reason());
            e.into_response()
        }
    }
}

async fn handle(
    state: &AppState,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    content_length: Option<u64>,
    body: Body,
) -> Result<(Protocol, WriteOutcome), WriteError> {
    let limits = &state.limits;
    let protocol = negotiate(content_type, content_encoding).map_err(WriteError::Framing)?;
    let store = state.store().ok_or_else(|| {
        WriteError::Unavailable("promgate is starting: the store is not open yet".into())
    })?;
    let compressed = read_capped(body, content_length, limits.max_body_bytes)
        .await
        .map_err(WriteError::Framing)?;
    let raw =
        decompress_snappy(&compressed, limits.max_decoded_bytes).map_err(WriteError::Framing)?;
    let decoded = match protocol {
        Protocol::V1 => decode_v1(&raw),
        Protocol::V2 => decode_v2(&raw),
    }
    .map_err(WriteError::Malformed)?;
    let n = decoded.sample_count();
    if n > limits.max_samples_per_request {
        return Err(WriteError::TooManySamples(
            n,
            limits.max_samples_per_request,
        ));
    }
    if let Some(bucket) = &state.rate_limit {
        bucket
            .lock()
            .take(n as f64, Instant::now())
            .map_err(WriteError::RateLimited)?;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let retention_ms = state.config.storage.retention.as_millis() as i64;
    let mut prepared = prepare(&decoded, store.head(), limits, now_ms, retention_ms);
    // A 1.0 body of labels and samples only, all of which passed: the store keeps it for the
    // targets sent bodies as received, if it also stores every sample.
    if protocol == Protocol::V1
        && store.keeps_bodies()
        && prepared.rejected.is_empty()
        && decoded.metadata.is_empty()
        && prepared.batch.entries.len() == decoded.series.len()
        && prepared.batch.samples.len() == n
        && let Ok(samples) = u32::try_from(n)
    {
        prepared.batch.body = Some(ReceivedBody {
            data: compressed.clone(),
            samples,
            newest: prepared
                .batch
                .samples
                .iter()
                .map(|s| s.t.0)
                .max()
                .unwrap_or(0),
        });
    }
    if prepared.lint_violations > 0 {
        state
            .ingest
            .lint_violations
            .inc_by(prepared.lint_violations);
        if let Some(example) = &prepared.lint_example {
            state.warn_throttled(|| {
                tracing::warn!(series = %example.0, problem = %example.1, "Metric name breaks the naming conventions.");
            });
        }
    }
    drop(raw);
    let mut out = store
        .write(prepared.batch)
        .await
        .map_err(|e| WriteError::Unavailable(format!("store unavailable, retry: {e}")))?;
    let mut rejected = prepared.rejected;
    rejected.merge(std::mem::take(&mut out.rejected));
    out.rejected = rejected;
    Ok((protocol, out))
}

/// A decoded request turned into a store batch.
pub struct Prepared {
    pub batch: WriteBatch,
    pub rejected: Rejections,
    pub lint_violations: u64,
    /// One violating series and its problem, for the log.
    pub lint_example: Option<(String, String)>,
}

/// Validates and resolves a decoded request against the head. Pure apart from reading the
/// head, so it is shared by every ingest path (remote write, push).
pub fn prepare(
    decoded: &Decoded<'_>,
    head: &Head,
    limits: &LimitsConfig,
    now_ms: i64,
    retention_ms: i64,
) -> Prepared {
    let max_t = now_ms.saturating_add(limits.future_tolerance.as_millis() as i64);
    let min_t = now_ms.saturating_sub(retention_ms);
    let mut p = Prepared {
        batch: WriteBatch::default(),
        rejected: Rejections::default(),
        lint_violations: 0,
        lint_example: None,
    };
    p.batch.samples.reserve(decoded.sample_count());
    // Metadata declared for 1.0 arrives per family; 2.0 carries it per series.
    let kinds: HashMap<&str, MetadataType> = decoded
        .metadata
        .iter()
        .map(|m| (m.family, m.kind))
        .collect();
    for md in &decoded.metadata {
        p.batch.metadata.push((
            md.family.to_string(),
            MetricMetadata {
                kind: md.kind.as_str(),
                help: md.help.to_string(),
                unit: md.unit.to_string(),
            },
        ));
    }
    let reader = head.reader();
    let mut scratch = Vec::with_capacity(256);
    for s in &decoded.series {
        let pairs = decoded.series_labels(s);
        let samples = decoded.series_samples(s);
        let describe = || (describe_pairs(pairs), String::new());
        p.rejected.add(
            Reason::native_histogram_unsupported,
            s.histograms.into(),
            || {
                (
                    describe_pairs(pairs),
                    "native histograms are not stored yet".into(),
                )
            },
        );
        p.rejected
            .add(Reason::exemplar_unsupported, s.exemplars.into(), || {
                (describe_pairs(pairs), "exemplars are not stored yet".into())
            });
        if let Some(defect) = s.defect {
            p.rejected
                .add(defect, samples.len().max(1) as u64, describe);
            continue;
        }
        if samples.is_empty() {
            continue;
        }
        let hash = series_key(pairs.iter().copied(), &mut scratch);
        let target = match reader.lookup(hash, &scratch, pairs.len()) {
            Some(series) => Target::Known(series),
            None => {
                let Some(pairs) = labels_as_str(pairs) else {
                    p.rejected
                        .add(Reason::invalid_utf8, samples.len() as u64, || {
                            (describe_pairs(pairs), utf8_detail(pairs))
                        });
                    continue;
                };
                if let Err(reason) = check_labels(limits, pairs.iter().copied()) {
                    p.rejected.add(reason, samples.len() as u64, || {
                        (describe_pairs(&pairs), String::new())
                    });
                    continue;
                }
                if limits.naming_lint != LintMode::Off {
                    let name = pairs
                        .iter()
                        .find(|(n, _)| *n == METRIC_NAME)
                        .map_or("", |(_, v)| *v);
                    let kind = s.kind.or_else(|| family_kind(&kinds, name));
                    if let Some(problem) = lint_metric_name(name, kind) {
                        p.lint_violations += 1;
                        if limits.naming_lint == LintMode::Reject {
                            p.rejected
                                .add(Reason::naming_convention, samples.len() as u64, || {
                                    (describe_pairs(&pairs), problem.clone())
                                });
                            continue;
                        }
                        p.lint_example
                            .get_or_insert_with(|| (describe_pairs(&pairs), problem));
                    }
                }
                let labels =
                    Labels::from_sorted(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect());
                Target::New(
                    labels,
                    SeriesKey {
                        bytes: scratch.clone(),
                        hash,
                    },
                )
            }
        };
        let start = p.batch.samples.len() as u32;
        for smp in samples {
            let t = smp.t.0;
            if t > max_t {
                p.rejected.add(Reason::too_far_in_future, 1, || {
                    (describe_pairs(pairs), format!("sample at {t} is more than limits.future_tolerance ahead of now ({now_ms})"))
                });
            } else if t < min_t {
                p.rejected.add(Reason::too_old, 1, || {
                    (
                        describe_pairs(pairs),
                        format!(
                            "sample at {t} is older than the retention (oldest accepted: {min_t})"
                        ),
                    )
                });
            } else {
                p.batch.samples.push(*smp);
            }
        }
        let end = p.batch.samples.len() as u32;
        if end > start {
            p.batch.entries.push(Entry {
                target,
                samples: start..end,
            });
        }
    }
    p
}

/// Which label is not UTF-8, with its bytes in hex.
fn utf8_detail(pairs: &[super::decode::RawLabel<'_>]) -> String {
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (n, v) in pairs {
        if std::str::from_utf8(n).is_err() {
            return format!("a label name is not valid UTF-8 (bytes: {})", hex(n));
        }
        if std::str::from_utf8(v).is_err() {
            return format!(
                "the value of label {} is not valid UTF-8 (bytes: {})",
                String::from_utf8_lossy(n),
                hex(v)
            );
        }
    }
    String::new()
}

/// The declared type of the family a series belongs to (`x_bucket` → `x`).
fn family_kind(
    kinds: &HashMap<&str, MetadataType>,
    name: &str,
) -> Option<crate::validate::MetricKind> {
    if kinds.is_empty() {
        return None;
    }
    let family = kinds.get(name).or_else(|| {
        ["_bucket", "_sum", "_count", "_total", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).and_then(|f| kinds.get(f)))
    })?;
    family.lint_kind()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_admits_burst_then_waits() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 200.0);
        assert!(b.take(150.0, t0).is_ok());
        let wait = b.take(100.0, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(b.take(100.0, t0 + Duration::from_millis(500)).is_ok());
        // Larger than the burst: admitted when the bucket is full, leaving a debt.
        let mut b = TokenBucket::new(10.0, 20.0);
        assert!(b.take(50.0, t0).is_ok());
        assert!(b.take(1.0, t0 + Duration::from_secs(1)).is_err());
    }
}
