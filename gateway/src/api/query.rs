//! `/api/v1/query` and `/api/v1/query_range`: the rules engine's PromQL over the window, with
//! Prometheus 2.42's parameters, limits, errors and JSON.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rules_engine::Timestamp;
use rules_engine::model::format_go_float;
use rules_engine::promql::{Engine, EvalError, EvalLimits, Stop, Value, parse_expr};
use rules_engine::storage::Series;

use super::error::{ApiError, ErrorType};
use super::params::Params;
use crate::app::AppState;

/// Prometheus's `--query.timeout` default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

fn now_ms() -> i64 {
    crate::serve::now_ms()
}

/// Parses a step or timeout: float seconds, or a Prometheus duration.
fn parse_duration(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    promql_parser::util::parse_duration(v).ok()
}

fn timeout(p: &Params) -> Result<Duration, ApiError> {
    match p.get("timeout") {
        None | Some("") => Ok(DEFAULT_TIMEOUT),
        Some(v) => parse_duration(v)
            .filter(|d| !d.is_zero())
            .map(|d| d.min(DEFAULT_TIMEOUT))
            .ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter \"timeout\": cannot parse {v:?} to a valid duration"
                ))
            }),
    }
}

/// A query-parameter error as Prometheus words it: `invalid parameter "query": ...`.
fn query_param_error(e: EvalError) -> ApiError {
    match e {
        EvalError::Parse(msg) => ApiError::bad_data(format!("invalid parameter \"query\": {msg}")),
        other => eval_error(other),
    }
}

fn eval_error(e: EvalError) -> ApiError {
    let kind = match &e {
        EvalError::Parse(_) => ErrorType::BadData,
        EvalError::Timeout => ErrorType::Timeout,
        EvalError::Canceled => ErrorType::Canceled,
        EvalError::Storage(_) => ErrorType::Internal,
        EvalError::TooManySamples | EvalError::Execution(_) => ErrorType::Execution,
    };
    ApiError {
        kind,
        message: e.to_string(),
    }
}

/// Runs a query on a blocking thread with a deadline.
async fn evaluate(
    state: &AppState,
    deadline: Duration,
    run: impl FnOnce(&Engine, &crate::store::Store) -> Result<Value, EvalError> + Send + 'static,
) -> Result<Value, ApiError> {
    let store = super::open_store(state)?;
    let started = Instant::now();
    let engine = Engine::new(EvalLimits::default()).with_stop_check(Arc::new(move || {
        (started.elapsed() > deadline).then_some(Stop::Timeout)
    }));
    tokio::task::spawn_blocking(move || run(&engine, &store))
        .await
        .map_err(|e| ApiError {
            kind: ErrorType::Internal,
            message: format!("query task failed: {e}"),
        })?
        .map_err(eval_error)
}

/// `GET|POST /api/v1/query`.
pub async fn instant(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    form: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &form);
    let query = p.get("query").unwrap_or("").to_string();
    let expr = parse_expr(&query).map_err(query_param_error)?;
    let ts = p.time_ms("time", now_ms())?;
    let value = evaluate(&state, timeout(&p)?, move |engine, store| {
        engine.instant(store, &expr, Timestamp(ts))
    })
    .await?;
    Ok(json_response(&value))
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    form: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &form);
    let start = required_time(&p, "start")?;
    let end = required_time(&p, "end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = match p.get("step") {
        None | Some("") => return Err(ApiError::bad_data("invalid parameter \"step\": missing")),
        // A negative number parses; it is refused below with Prometheus's words.
        Some(v) if v.parse::<f64>().is_ok_and(|s| s < 0.0) => Duration::ZERO,
        Some(v) => parse_duration(v).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"step\": cannot parse {v:?} to a valid duration"
            ))
        })?,
    };
    if step.is_zero() {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let step_ms = step.as_millis() as i64;
    if (end - start) / step_ms > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let query = p.get("query").unwrap_or("").to_string();
    let expr = parse_expr(&query).map_err(query_param_error)?;
    let value = evaluate(&state, timeout(&p)?, move |engine, store| {
        engine.range(store, &expr, Timestamp(start), Timestamp(end), step)
    })
    .await?;
    Ok(json_response(&value))
}

fn required_time(p: &Params, key: &str) -> Result<i64, ApiError> {
    if p.get(key).is_none_or(str::is_empty) {
        return Err(ApiError::bad_data(format!(
            "invalid parameter {key:?}: missing"
        )));
    }
    p.time_ms(key, 0)
}

/// Writes a value as Prometheus's JSON: sample values as strings formatted like Go's
/// `FormatFloat(v, 'f', -1, 64)`, timestamps as seconds.
fn json_response(value: &Value) -> Response {
    let mut out = String::from(r#"{"status":"success","data":{"resultType":"#);
    match value {
        Value::Scalar(s) => {
            out.push_str(r#""scalar","result":"#);
            point(&mut out, s.t.0, s.v);
        }
        Value::String { t, v } => {
            out.push_str(r#""string","result":["#);
            out.push_str(&format_ts(t.0));
            out.push(',');
            json_string(&mut out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str(r#""vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                metric(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                point(&mut out, s.t.0, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            let mut sorted: Vec<&Series> = series.iter().collect();
            sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.push_str(r#""matrix","result":["#);
            for (i, s) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                metric(&mut out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, x) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(&mut out, x.t.0, x.v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push_str("}}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

fn metric(out: &mut String, labels: &rules_engine::Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, &l.name);
        out.push(':');
        json_string(out, &l.value);
    }
    out.push('}');
}

fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    out.push_str(&format_ts(t));
    out.push_str(",\"");
    out.push_str(&format_go_float(v));
    out.push_str("\"]");
}

/// Milliseconds as seconds with no trailing zeros (`1435781451.781`, `1435781451`).
fn format_ts(t: i64) -> String {
    let sign = if t < 0 { "-" } else { "" };
    let abs = t.unsigned_abs();
    let (secs, ms) = (abs / 1000, abs % 1000);
    if ms == 0 {
        format!("{sign}{secs}")
    } else {
        let frac = format!("{ms:03}");
        format!("{sign}{secs}.{}", frac.trim_end_matches('0'))
    }
}

fn json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly what JSON requires.
    let _ = write!(out, "{}", serde_json::Value::from(s));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_like_prometheus() {
        assert_eq!(format_ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(format_ts(1_435_781_451_000), "1435781451");
        assert_eq!(format_ts(1_435_781_451_500), "1435781451.5");
        assert_eq!(format_ts(-1500), "-1.5");
        assert_eq!(format_go_float(1e21), "1000000000000000000000");
        assert_eq!(format_go_float(0.1), "0.1");
        assert_eq!(format_go_float(-0.0), "-0");
        assert_eq!(format_go_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_go_float(1e-7), "0.0000001");
    }
}
