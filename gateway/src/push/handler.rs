//! The HTTP endpoints: `PUT|POST|DELETE /metrics/job/...`, `GET /api/v1/metrics`,
//! `PUT /api/v1/admin/wipe`, and `GET /metrics` (promgate's own metrics and every pushed
//! group, in the text format 0.0.4 that Pushgateway serves).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Applied, Method, PushError, RejectReason, body, grouping, render};
use crate::app::AppState;
use crate::ingest::body::{FramingError, read_capped};

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

fn unavailable(e: PushError) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        e.to_string(),
    )
        .into_response()
}

/// `PUT|POST|DELETE /metrics/{*rest}`.
pub async fn push(
    State(state): State<Arc<AppState>>,
    method: HttpMethod,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let push = &state.push;
    let key = match grouping::parse(&rest) {
        Ok(k) => k,
        Err(e) => {
            push.metrics.reject(RejectReason::bad_path);
            let status = if e.is_not_found() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            return text(status, e.0);
        }
    };
    let Some(store) = state.store() else {
        push.metrics.reject(RejectReason::unavailable);
        return unavailable(PushError::NotReady);
    };
    let limits = &state.limits;
    let retention_ms = state.config.storage.retention.as_millis() as i64;
    if method == HttpMethod::DELETE {
        return match push
            .delete(&store, limits, retention_ms, Some(vec![key]))
            .await
        {
            Ok(()) => {
                push.count_accepted(Method::delete);
                StatusCode::ACCEPTED.into_response()
            }
            Err(e) => {
                push.metrics.reject(RejectReason::unavailable);
                unavailable(e)
            }
        };
    }
    let header = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let overrides = match request_options(&headers, push.config.request_options) {
        Ok(o) => o,
        Err(msg) => {
            push.metrics.reject(RejectReason::invalid_body);
            return text(StatusCode::BAD_REQUEST, msg);
        }
    };
    let declared = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let framing = |e: FramingError| {
        let (status, reason) = match &e {
            FramingError::TooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, RejectReason::body_too_large)
            }
            FramingError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RejectReason::unsupported_encoding,
            ),
            FramingError::Invalid(_) => (StatusCode::BAD_REQUEST, RejectReason::invalid_body),
        };
        push.metrics.reject(reason);
        text(status, e.to_string())
    };
    let raw = match read_capped(body, declared, limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return framing(e),
    };
    let decoded = match body::decode_encoding(
        raw,
        header(header::CONTENT_ENCODING),
        limits.max_decoded_bytes,
    ) {
        Ok(b) => b,
        Err(e) => return framing(e),
    };
    let format = body::format_of(header(header::CONTENT_TYPE));
    let (limit, max) = if push.config.max_samples_per_push <= limits.max_samples_per_request {
        (
            "push.max_samples_per_push",
            push.config.max_samples_per_push,
        )
    } else {
        (
            "limits.max_samples_per_request",
            limits.max_samples_per_request,
        )
    };
    let too_many = |n: usize| {
        push.metrics.reject(RejectReason::too_many_samples);
        text(
            StatusCode::BAD_REQUEST,
            format!("push holds {n} samples, over {limit} ({max})"),
        )
    };
    if format != body::Format::Protobuf {
        let n = body::sample_lines(&decoded);
        if n > max {
            return too_many(n);
        }
    }
    // Parsing a large body is CPU work: off the async workers.
    let parsed = if decoded.len() > 256 << 10 {
        tokio::task::spawn_blocking(move || body::parse(format, &decoded))
            .await
            .unwrap_or_else(|e| {
                Err(body::BodyError::Text(super::text::ParseError {
                    line: 0,
                    message: format!("parser failed: {e}"),
                }))
            })
    } else {
        body::parse(format, &decoded)
    };
    let families = match parsed {
        Ok(f) => f,
        Err(e) => {
            push.metrics.reject(RejectReason::parse_error);
            return text(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let n: usize = families.iter().map(|f| f.sample_count()).sum();
    if n > max {
        return too_many(n);
    }
    let replace = method == HttpMethod::PUT;
    match push
        .push(
            &store,
            limits,
            retention_ms,
            super::PushRequest {
                key,
                families,
                replace,
                overrides,
            },
        )
        .await
    {
        Ok(Applied::Done) => {
            push.count_accepted(if replace { Method::put } else { Method::post });
            StatusCode::OK.into_response()
        }
        Ok(Applied::Refused(reason, msg)) => {
            push.metrics.reject(reason);
            text(StatusCode::BAD_REQUEST, msg)
        }
        Err(e) => {
            push.metrics.reject(RejectReason::unavailable);
            unavailable(e)
        }
    }
}

pub const TTL_HEADER: &str = "promgate-push-ttl";
pub const AGGREGATE_HEADER: &str = "promgate-push-aggregate";

/// The per-request options of a push, or why they are refused (`push.request_options`).
fn request_options(headers: &HeaderMap, allowed: bool) -> Result<super::config::Overrides, String> {
    let mut o = super::config::Overrides::default();
    for name in [TTL_HEADER, AGGREGATE_HEADER] {
        let Some(v) = headers.get(name) else {
            continue;
        };
        if !allowed {
            return Err(format!(
                "header {name} given, but per-request push options are off (set push.request_options: true)"
            ));
        }
        let v = v.to_str().unwrap_or("").trim();
        if name == TTL_HEADER {
            let d = promql_parser::util::parse_duration(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!("header {name}: {v:?} is not a positive duration (e.g. 90s, 1h)")
                })?;
            o.ttl_ms = Some(d.as_millis() as i64);
        } else {
            o.aggregate = Some(match v {
                "true" => true,
                "false" => false,
                _ => return Err(format!("header {name}: {v:?} is not true or false")),
            });
        }
    }
    Ok(o)
}

/// `GET /api/v1/metrics`: every group in Pushgateway's JSON.
pub async fn api_metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.push.with_groups(render::api_json);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `PUT /api/v1/admin/wipe`: deletes every group (404 unless `push.enable_admin_api`).
pub async fn wipe(State(state): State<Arc<AppState>>) -> Response {
    if !state.push.config.enable_admin_api {
        return text(
            StatusCode::NOT_FOUND,
            "the admin API is disabled (set push.enable_admin_api: true)",
        );
    }
    let Some(store) = state.store() else {
        return unavailable(PushError::NotReady);
    };
    let retention_ms = state.config.storage.retention.as_millis() as i64;
    match state
        .push
        .delete(&store, &state.limits, retention_ms, None)
        .await
    {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => unavailable(e),
    }
}

/// `GET /metrics`: promgate's own metrics, then the pushed groups, in the text format 0.0.4.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut own = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut own, &state.registry) {
        tracing::error!(error = %e, "Encoding metrics failed.");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut body = openmetrics_to_text(&own);
    state.push.with_groups(|g| render::text(g, &mut body));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// prometheus-client's OpenMetrics output as text 0.0.4: a counter family `x` (samples
/// `x_total`) is declared as `x_total`, `unknown` becomes `untyped`, `# UNIT` and `# EOF` go.
fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_string(), "untyped"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                k => (name.to_string(), k),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |x| x.1);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
