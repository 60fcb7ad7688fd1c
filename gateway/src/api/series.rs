//! `/api/v1/series` (Prometheus) and `/api/v1/export` (VictoriaMetrics' raw-sample export, so
//! tests and users can read back exactly what was stored).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rules_engine::Labels;
use rules_engine::storage::{Queryable, Series, TimeRange};

use super::error::{ApiError, success};
use super::params::Params;
use crate::app::AppState;
use crate::store::Store;

fn range(p: &Params) -> Result<TimeRange, ApiError> {
    let start = p.time_ms("start", i64::MIN)?;
    let end = p.time_ms("end", i64::MAX)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    Ok(TimeRange::new(start, end))
}

/// Series matched by any selector, deduplicated, in label order.
fn select_union(store: &Store, p: &Params, with_samples: bool) -> Result<Vec<Series>, ApiError> {
    let r = range(p)?;
    let mut out: BTreeMap<Labels, Series> = BTreeMap::new();
    for ms in p.selectors()? {
        if with_samples {
            for s in store.select_series(&ms, r) {
                out.entry(s.labels.clone()).or_insert(s);
            }
        } else {
            let labels = store
                .series(&ms, r)
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            for l in labels {
                out.entry(l.clone()).or_insert(Series {
                    labels: l,
                    samples: Vec::new(),
                });
            }
        }
    }
    Ok(out.into_values().collect())
}

fn labels_json(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter()
        .map(|x| (x.name.as_str(), x.value.as_str()))
        .collect()
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    form: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &form);
    let store = super::open_store(&state)?;
    let series = select_union(&store, &p, false)?;
    let data: Vec<BTreeMap<&str, &str>> = series.iter().map(|s| labels_json(&s.labels)).collect();
    Ok(success(data))
}

fn json_value(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else if v.is_nan() {
        serde_json::json!("NaN")
    } else if v > 0.0 {
        serde_json::json!("+Inf")
    } else {
        serde_json::json!("-Inf")
    }
}

/// `GET /api/v1/export`: one JSON line per series,
/// `{"metric":{...},"values":[...],"timestamps":[...]}`; with `raw_bits=1` also the values'
/// bit patterns in hex, so staleness markers can be told from other NaNs.
pub async fn export(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    form: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &form);
    let raw_bits = matches!(p.get("raw_bits"), Some("1" | "true"));
    let store = super::open_store(&state)?;
    let series = select_union(&store, &p, true)?;
    let mut body = String::new();
    for s in &series {
        let mut line = serde_json::json!({
            "metric": labels_json(&s.labels),
            "values": s.samples.iter().map(|x| json_value(x.v)).collect::<Vec<_>>(),
            "timestamps": s.samples.iter().map(|x| x.t.0).collect::<Vec<_>>(),
        });
        if raw_bits {
            line["bits"] = s
                .samples
                .iter()
                .map(|x| format!("{:016x}", x.v.to_bits()))
                .collect();
        }
        let _ = writeln!(body, "{line}");
    }
    Ok(([(header::CONTENT_TYPE, "application/stream+json")], body).into_response())
}
