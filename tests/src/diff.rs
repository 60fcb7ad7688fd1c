//! Differential checks of the Prometheus HTTP API: the same request to two servers (Prometheus
//! 2.42 as the reference, promgate under test), answers compared as Prometheus's API defines
//! them.
//!
//! - Query results (`/api/v1/query`, `/api/v1/query_range`): same HTTP status; for errors the
//!   same `errorType`; otherwise the same `resultType` and the same series (label sets), with
//!   equal timestamps and values equal within [`EPSILON`] relative (NaN equals NaN, infinities
//!   must match exactly). Order is compared only where PromQL defines it ([`Order::Defined`]:
//!   `sort`, `sort_desc`, `topk`, ...): the values must come in the same order, ties in either
//!   order.
//! - Metadata (`/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`): the same
//!   status and the same set of entries.
//! - Both: the same JSON shape ([`shape`]: the keys of the envelope, of `data` and of a
//!   result entry).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::http::{self, labels_key, ms_to_secs, url_with_query};

/// Relative tolerance on sample values.
pub const EPSILON: f64 = 1e-9;

/// One API call.
#[derive(Debug, Clone)]
pub enum Call {
    /// `/api/v1/query?query=&time=`.
    Instant { query: String, time_ms: i64 },
    /// `/api/v1/query_range?query=&start=&end=&step=`.
    Range {
        query: String,
        start_ms: i64,
        end_ms: i64,
        /// Sent verbatim (seconds, or a duration such as `15s`).
        step: String,
    },
    /// Any GET path with query pairs (metadata endpoints).
    Get {
        path: String,
        pairs: Vec<(String, String)>,
    },
    /// A POST of the pairs as an `application/x-www-form-urlencoded` body.
    PostForm {
        path: String,
        pairs: Vec<(String, String)>,
    },
}

impl Call {
    /// The endpoint path and its parameters, in order.
    pub fn parts(&self) -> (String, Vec<(String, String)>) {
        let pairs = |v: &[(&str, String)]| -> Vec<(String, String)> {
            v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        match self {
            Call::Instant { query, time_ms } => (
                "/api/v1/query".to_string(),
                pairs(&[("query", query.clone()), ("time", ms_to_secs(*time_ms))]),
            ),
            Call::Range {
                query,
                start_ms,
                end_ms,
                step,
            } => (
                "/api/v1/query_range".to_string(),
                pairs(&[
                    ("query", query.clone()),
                    ("start", ms_to_secs(*start_ms)),
                    ("end", ms_to_secs(*end_ms)),
                    ("step", step.clone()),
                ]),
            ),
            Call::Get { path, pairs } | Call::PostForm { path, pairs } => {
                (path.clone(), pairs.clone())
            }
        }
    }

    /// The same call as a POST with the parameters in a form body (as Grafana sends queries).
    pub fn as_post(&self) -> Call {
        let (path, pairs) = self.parts();
        Call::PostForm { path, pairs }
    }

    /// The GET URL (for a POST, the URL without parameters).
    pub fn url(&self, base: &str) -> String {
        let (path, pairs) = self.parts();
        if matches!(self, Call::PostForm { .. }) {
            return format!("{base}{path}");
        }
        let pairs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        url_with_query(base, &path, &pairs)
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            Call::Instant { query, time_ms } => format!("instant {query:?} @ {time_ms}"),
            Call::Range {
                query,
                start_ms,
                end_ms,
                step,
            } => format!("range {query:?} [{start_ms}, {end_ms}] step {step}"),
            Call::Get { path, pairs } => format!("GET {path} {pairs:?}"),
            Call::PostForm { path, pairs } => format!("POST {path} {pairs:?}"),
        }
    }
}

/// Whether the order of a vector result is part of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Compare as sets of series.
    Any,
    /// Values must come in the same order (as `eval_ordered` in Prometheus's test scripts).
    Defined,
}

/// A server's answer: HTTP status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// `errorType` of an error answer.
    pub fn error_type(&self) -> Option<&str> {
        (self.body["status"] == "error").then(|| self.body["errorType"].as_str().unwrap_or("?"))
    }

    pub fn summary(&self) -> String {
        let text = self.body.to_string();
        let cut: String = text.chars().take(600).collect();
        if cut.len() < text.len() {
            format!("{} {cut}…", self.status)
        } else {
            format!("{} {cut}", self.status)
        }
    }
}

/// Sends `call` to `base`; `Err` only when no HTTP answer or no JSON came back.
pub fn call(base: &str, call: &Call) -> Result<Answer, String> {
    let url = call.url(base);
    let r = match call {
        Call::PostForm { pairs, .. } => {
            let mut form = reqwest::Url::parse("http://x/").expect("valid URL");
            form.query_pairs_mut().extend_pairs(pairs);
            let body = form.query().unwrap_or("").as_bytes().to_vec();
            http::post(
                &url,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body,
            )?
        }
        _ => http::get(&url)?,
    };
    let body = r.json()?;
    Ok(Answer {
        status: r.status,
        body,
    })
}

/// Prometheus's `almostEqual` with a relative tolerance: NaN equals NaN, infinities must match.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    if !a.is_finite() || !b.is_finite() {
        return false;
    }
    (a - b).abs() <= EPSILON * a.abs().max(b.abs())
}

type Labels = BTreeMap<String, String>;

/// One series of a vector or matrix result: labels and (ms, value) points.
#[derive(Debug, Clone)]
struct SeriesOut {
    labels: Labels,
    points: Vec<(i64, f64)>,
}

fn parse_point(p: &Value) -> Result<(i64, f64), String> {
    let arr = p
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or("point is not [t, v]")?;
    let t = arr[0].as_f64().ok_or("timestamp is not a number")?;
    let v = match arr[1].as_str().ok_or("value is not a string")? {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().map_err(|e| format!("value {s:?}: {e}"))?,
    };
    Ok(((t * 1000.0).round() as i64, v))
}

fn parse_series(result: &Value, key: &str) -> Result<Vec<SeriesOut>, String> {
    result
        .as_array()
        .ok_or("result is not an array")?
        .iter()
        .map(|s| {
            let labels: Labels = s["metric"]
                .as_object()
                .ok_or("metric is not an object")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("label value")?.to_string())))
                .collect::<Result<_, String>>()?;
            let points = if key == "value" {
                vec![parse_point(&s["value"])?]
            } else {
                s["values"]
                    .as_array()
                    .ok_or("values is not an array")?
                    .iter()
                    .map(parse_point)
                    .collect::<Result<_, _>>()?
            };
            Ok(SeriesOut { labels, points })
        })
        .collect()
}

fn fmt_points(p: &[(i64, f64)]) -> String {
    let shown: Vec<String> = p.iter().take(6).map(|(t, v)| format!("{t}:{v}")).collect();
    if p.len() > 6 {
        format!("[{} … {} points]", shown.join(" "), p.len())
    } else {
        format!("[{}]", shown.join(" "))
    }
}

fn compare_points(key: &str, want: &[(i64, f64)], got: &[(i64, f64)]) -> Result<(), String> {
    let same = want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
    if same {
        return Ok(());
    }
    let first = want
        .iter()
        .zip(got)
        .position(|(a, b)| a.0 != b.0 || !almost_equal(a.1, b.1));
    Err(match first {
        Some(i) => format!(
            "{key}: point {i} differs: Prometheus {}:{} promgate {}:{} ({} vs {} points)",
            want[i].0,
            want[i].1,
            got[i].0,
            got[i].1,
            want.len(),
            got.len()
        ),
        None => format!(
            "{key}: Prometheus {} promgate {}",
            fmt_points(want),
            fmt_points(got)
        ),
    })
}

fn compare_series(want: &[SeriesOut], got: &[SeriesOut], order: Order) -> Result<(), String> {
    if order == Order::Defined {
        let wv: Vec<f64> = want.iter().map(|s| s.points[0].1).collect();
        let gv: Vec<f64> = got.iter().map(|s| s.points[0].1).collect();
        let same = wv.len() == gv.len() && wv.iter().zip(&gv).all(|(a, b)| almost_equal(*a, *b));
        if !same {
            return Err(format!(
                "order differs: Prometheus values {wv:?}, promgate values {gv:?}"
            ));
        }
    }
    let want: BTreeMap<String, &SeriesOut> =
        want.iter().map(|s| (labels_key(&s.labels), s)).collect();
    let got: BTreeMap<String, &SeriesOut> =
        got.iter().map(|s| (labels_key(&s.labels), s)).collect();
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        let cut = |v: Vec<&String>| -> String {
            let n = v.len();
            let shown: Vec<String> = v.into_iter().take(5).map(|s| s.to_string()).collect();
            format!("{n} {shown:?}")
        };
        return Err(format!(
            "series differ: only in Prometheus: {}; only in promgate: {}",
            cut(missing),
            cut(extra)
        ));
    }
    let mut errors = Vec::new();
    for (k, w) in &want {
        if let Err(e) = compare_points(k, &w.points, &got[k].points) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let n = errors.len();
        errors.truncate(3);
        Err(format!("{n} series differ: {}", errors.join("; ")))
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// The JSON shape of an answer: the keys of the envelope, of `data`, and of the first entry
/// of `data.result` (or of `data`, for metadata lists).
pub fn shape(a: &Answer) -> String {
    let mut parts = vec![format!("{:?}", keys(&a.body))];
    let data = &a.body["data"];
    if data.is_object() {
        parts.push(format!("data {:?}", keys(data)));
    }
    let first = data["result"]
        .as_array()
        .or_else(|| data.as_array())
        .and_then(|r| r.first());
    if let Some(first) = first.filter(|f| f.is_object() && f.get("metric").is_some()) {
        parts.push(format!("entry {:?}", keys(first)));
    }
    parts.join(" ")
}

fn same_status_and_shape(want: &Answer, got: &Answer) -> Result<(), String> {
    if want.status != got.status || want.error_type() != got.error_type() {
        return Err(format!(
            "status differs: Prometheus {}, promgate {}",
            want.summary(),
            got.summary()
        ));
    }
    let (ws, gs) = (shape(want), shape(got));
    if ws != gs {
        return Err(format!(
            "JSON shape differs: Prometheus {ws}, promgate {gs}"
        ));
    }
    Ok(())
}

/// Compares two query answers (`want` from Prometheus).
pub fn compare_query(want: &Answer, got: &Answer, order: Order) -> Result<(), String> {
    same_status_and_shape(want, got)?;
    if want.error_type().is_some() {
        return Ok(());
    }
    let (wt, gt) = (
        &want.body["data"]["resultType"],
        &got.body["data"]["resultType"],
    );
    if wt != gt {
        return Err(format!(
            "resultType differs: Prometheus {wt}, promgate {gt}; promgate: {}",
            got.summary()
        ));
    }
    let (wr, gr) = (&want.body["data"]["result"], &got.body["data"]["result"]);
    match wt.as_str() {
        Some("scalar") => {
            let (a, b) = (parse_point(wr)?, parse_point(gr)?);
            if a.0 == b.0 && almost_equal(a.1, b.1) {
                Ok(())
            } else {
                Err(format!("scalar: Prometheus {a:?}, promgate {b:?}"))
            }
        }
        Some("string") => {
            if wr == gr {
                Ok(())
            } else {
                Err(format!("string: Prometheus {wr}, promgate {gr}"))
            }
        }
        Some("vector") => compare_series(
            &parse_series(wr, "value")?,
            &parse_series(gr, "value").map_err(|e| format!("promgate: {e}"))?,
            order,
        ),
        Some("matrix") => compare_series(
            &parse_series(wr, "values")?,
            &parse_series(gr, "values").map_err(|e| format!("promgate: {e}"))?,
            Order::Any,
        ),
        other => Err(format!("unknown resultType {other:?}")),
    }
}

/// Compares two metadata answers (`data` is an array of strings or of label objects): the same
/// status, and the same entries in any order.
pub fn compare_list(want: &Answer, got: &Answer) -> Result<(), String> {
    same_status_and_shape(want, got)?;
    if want.error_type().is_some() {
        return Ok(());
    }
    let entries = |a: &Answer| -> Result<Vec<String>, String> {
        let mut v: Vec<String> = a.body["data"]
            .as_array()
            .ok_or_else(|| format!("data is not an array: {}", a.summary()))?
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => {
                    // Label objects: canonical order of keys.
                    let m: BTreeMap<&str, &Value> = other
                        .as_object()
                        .map(|o| o.iter().map(|(k, v)| (k.as_str(), v)).collect())
                        .unwrap_or_default();
                    serde_json::to_string(&m).unwrap_or_default()
                }
            })
            .collect();
        v.sort();
        Ok(v)
    };
    let (w, g) = (entries(want)?, entries(got)?);
    if w == g {
        return Ok(());
    }
    let missing: Vec<&String> = w.iter().filter(|x| !g.contains(x)).take(5).collect();
    let extra: Vec<&String> = g.iter().filter(|x| !w.contains(x)).take(5).collect();
    Err(format!(
        "entries differ ({} vs {}): only in Prometheus {missing:?}; only in promgate {extra:?}",
        w.len(),
        g.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance() {
        assert!(almost_equal(f64::NAN, f64::NAN));
        assert!(almost_equal(1.0, 1.0 + 1e-12));
        assert!(!almost_equal(1.0, 1.0 + 1e-6));
        assert!(!almost_equal(f64::INFINITY, 1e308));
        assert!(!almost_equal(0.0, 1e-300));
    }

    #[test]
    fn ordered_vectors_allow_ties_only() {
        let v = |pairs: &[(&str, f64)]| -> Vec<SeriesOut> {
            pairs
                .iter()
                .map(|(l, v)| SeriesOut {
                    labels: [("a".to_string(), l.to_string())].into(),
                    points: vec![(0, *v)],
                })
                .collect()
        };
        let want = v(&[("x", 2.0), ("y", 1.0), ("z", 1.0)]);
        assert!(
            compare_series(
                &want,
                &v(&[("x", 2.0), ("z", 1.0), ("y", 1.0)]),
                Order::Defined
            )
            .is_ok()
        );
        assert!(
            compare_series(
                &want,
                &v(&[("y", 1.0), ("x", 2.0), ("z", 1.0)]),
                Order::Defined
            )
            .is_err()
        );
        assert!(
            compare_series(&want, &v(&[("y", 1.0), ("x", 2.0), ("z", 1.0)]), Order::Any).is_ok()
        );
    }
}
