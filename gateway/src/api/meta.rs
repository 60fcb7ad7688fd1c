//! Prometheus API endpoints about the window rather than its samples: label names and values,
//! metric metadata, the cardinality view (`/api/v1/status/tsdb`) and build information.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use rules_engine::model::is_valid_label_name;
use rules_engine::storage::TimeRange;
use serde::Serialize;

use super::error::{ApiError, success};
use super::params::Params;
use crate::app::AppState;
use crate::store::Store;
use crate::store::head::MemSeries;

/// The series `match[]` selects (all series when absent) that have samples in the range.
fn matching(store: &Store, p: &Params) -> Result<Vec<Arc<MemSeries>>, ApiError> {
    let start = p.time_ms("start", i64::MIN)?;
    let end = p.time_ms("end", i64::MAX)?;
    let range = TimeRange::new(start, end);
    let all_time = start == i64::MIN && end == i64::MAX;
    let mut out: BTreeMap<u64, Arc<MemSeries>> = BTreeMap::new();
    if p.all("match[]").next().is_none() {
        for s in store.head().all() {
            out.insert(s.id, s);
        }
    } else {
        for ms in p.selectors()? {
            for s in store.head().select(&ms) {
                out.insert(s.id, s);
            }
        }
    }
    Ok(out
        .into_values()
        .filter(|s| all_time || s.has_samples_in(range.start.0, range.end.0))
        .collect())
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
    form: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &form);
    let store = super::open_store(&state)?;
    let names: BTreeSet<String> = matching(&store, &p)?
        .iter()
        .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
        .collect();
    Ok(success(names))
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let p = Params::parse(q.as_deref(), &[]);
    let store = super::open_store(&state)?;
    let values: BTreeSet<String> = matching(&store, &p)?
        .iter()
        .filter_map(|s| s.labels.get(&name).map(str::to_string))
        .collect();
    Ok(success(values))
}

#[derive(Serialize)]
struct MetadataEntry<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    help: &'a str,
    unit: &'a str,
}

/// `GET /api/v1/metadata[?metric=&limit=]`: what senders declared, per metric family.
pub async fn metadata(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &[]);
    let limit = match p.get("limit") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_data(format!("limit must be a number, got {v:?}")))?,
        )
        .filter(|l| *l >= 0),
    };
    let store = super::open_store(&state)?;
    let all = store.metadata();
    let mut out: BTreeMap<&str, Vec<MetadataEntry<'_>>> = BTreeMap::new();
    for (metric, md) in &all {
        if p.get("metric")
            .is_some_and(|m| !m.is_empty() && m != metric)
        {
            continue;
        }
        if limit.is_some_and(|l| out.len() as i64 >= l) {
            break;
        }
        out.entry(metric.as_str()).or_default().push(MetadataEntry {
            kind: md.kind,
            help: &md.help,
            unit: &md.unit,
        });
    }
    Ok(success(out))
}

#[derive(Serialize)]
struct Stat {
    name: String,
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Stat>,
    label_value_count_by_label_name: Vec<Stat>,
    memory_in_bytes_by_label_name: Vec<Stat>,
    series_count_by_label_value_pair: Vec<Stat>,
}

fn top(counts: HashMap<String, u64>, n: usize) -> Vec<Stat> {
    let mut v: Vec<Stat> = counts
        .into_iter()
        .map(|(name, value)| Stat { name, value })
        .collect();
    v.sort_unstable_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(n);
    v
}

/// `GET /api/v1/status/tsdb[?limit=N]`: Prometheus's cardinality view of the window (top
/// metrics by series, labels by distinct values and bytes, label pairs by series).
pub async fn tsdb_status(
    State(state): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref(), &[]);
    let limit = match p.get("limit") {
        None | Some("") => 10,
        Some(v) => v.parse::<usize>().ok().filter(|l| *l > 0).ok_or_else(|| {
            ApiError::bad_data(format!("limit must be a positive number, got {v:?}"))
        })?,
    };
    let store = super::open_store(&state)?;
    let series = store.head().all();
    let (mut by_metric, mut pairs, mut bytes) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut values: HashMap<String, BTreeSet<String>> = HashMap::new();
    let (mut min_t, mut max_t, mut label_pairs) = (i64::MAX, i64::MIN, 0u64);
    for s in &series {
        if let Some(m) = s.labels.metric_name() {
            *by_metric.entry(m.to_string()).or_insert(0u64) += 1;
        }
        for l in &s.labels {
            label_pairs += 1;
            *pairs
                .entry(format!("{}={}", l.name, l.value))
                .or_insert(0u64) += 1;
            *bytes.entry(l.name.clone()).or_insert(0u64) += l.value.len() as u64;
            values
                .entry(l.name.clone())
                .or_default()
                .insert(l.value.clone());
        }
        if let Some((first, last)) = s.time_bounds() {
            min_t = min_t.min(first);
            max_t = max_t.max(last);
        }
    }
    let status = TsdbStatus {
        head_stats: HeadStats {
            num_series: series.len() as u64,
            num_label_pairs: label_pairs,
            chunk_count: 0,
            min_time: if series.is_empty() { 0 } else { min_t },
            max_time: if series.is_empty() { 0 } else { max_t },
        },
        series_count_by_metric_name: top(by_metric, limit),
        label_value_count_by_label_name: top(
            values
                .into_iter()
                .map(|(k, v)| (k, v.len() as u64))
                .collect(),
            limit,
        ),
        memory_in_bytes_by_label_name: top(bytes, limit),
        series_count_by_label_value_pair: top(pairs, limit),
    };
    Ok(success(status))
}

/// `GET /api/v1/status/buildinfo`. The version is the Prometheus API version promgate
/// implements (so Grafana enables the matching features); `application` says what answers.
pub async fn buildinfo() -> Response {
    success(serde_json::json!({
        "version": "2.42.0",
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "promgate",
        "promgateVersion": env!("CARGO_PKG_VERSION"),
    }))
}
