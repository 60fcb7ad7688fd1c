//! A small blocking HTTP client (reqwest) and parsers for what the tests read back: the
//! VictoriaMetrics-style export (JSON lines), Prometheus query results, `/api/v1/series`, and
//! the text exposition of `/metrics`.
//!
//! Functions here must not be called from inside a tokio runtime (reqwest's blocking client
//! runs its own).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {}: invalid JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }
}

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("build HTTP client")
    })
}

/// The status, headers and whole body of an answer.
pub(crate) fn read(resp: reqwest::blocking::Response) -> Result<Response, String> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .bytes()
        .map_err(|e| format!("read body: {e}"))?
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `GET url`. `Err` only when no HTTP answer came (connection refused, reset, timeout).
pub fn get(url: &str) -> Result<Response, String> {
    let resp = client()
        .get(url)
        .send()
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    read(resp)
}

/// `POST url` with the given headers and body.
pub fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Response, String> {
    let mut req = client().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().map_err(|e| format!("POST {url}: {e:?}"))?;
    read(resp)
}

/// POSTs a snappy-compressed remote-write 1.0 body with the spec's headers.
pub fn post_rw_v1(url: &str, body: Vec<u8>) -> Result<Response, String> {
    post(
        url,
        &[
            ("Content-Type", proto::headers::CONTENT_TYPE_V1),
            ("Content-Encoding", proto::headers::ENCODING_SNAPPY),
            (proto::headers::VERSION, "0.1.0"),
        ],
        body,
    )
}

/// POSTs a snappy-compressed remote-write 2.0 body with the spec's headers.
pub fn post_rw_v2(url: &str, body: Vec<u8>) -> Result<Response, String> {
    post(
        url,
        &[
            ("Content-Type", proto::headers::CONTENT_TYPE_V2),
            ("Content-Encoding", proto::headers::ENCODING_SNAPPY),
            (proto::headers::VERSION, "2.0.0"),
        ],
        body,
    )
}

/// `base` + `path` + `?` + the percent-encoded query pairs.
pub fn url_with_query(base: &str, path: &str, pairs: &[(&str, String)]) -> String {
    let mut url = reqwest::Url::parse(&format!("{base}{path}")).expect("valid URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// One series with its samples, as read back from a store. Timestamps in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSeries {
    /// All labels, `__name__` included.
    pub metric: BTreeMap<String, String>,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// The exact bit patterns of the values, when the store gave them (promgate `raw_bits=1`).
    pub bits: Option<Vec<u64>>,
}

impl ExportSeries {
    /// `name{a="b",...}` with labels sorted, for messages and map keys.
    pub fn key(&self) -> String {
        labels_key(&self.metric)
    }
}

/// `name{a="b",...}` for a label map.
pub fn labels_key(metric: &BTreeMap<String, String>) -> String {
    let name = metric.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> = metric
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

/// A sample value as JSON gives it: a number, or a string ("NaN", "+Inf", "-Inf", "1.5").
fn parse_value(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "+Inf" | "Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|e| format!("bad value {other:?}: {e}")),
        },
        other => Err(format!("bad value {other}")),
    }
}

fn parse_metric(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("metric not an object: {v}"))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("label {k} not a string: {v}"))
        })
        .collect()
}

/// Parses VictoriaMetrics-style export JSON lines.
pub fn parse_export(text: &str) -> Result<Vec<ExportSeries>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("export line {line:?}: {e}"))?;
        let metric = parse_metric(&v["metric"])?;
        let values = v["values"]
            .as_array()
            .ok_or_else(|| format!("no values in {line}"))?
            .iter()
            .map(parse_value)
            .collect::<Result<Vec<_>, _>>()?;
        let timestamps = v["timestamps"]
            .as_array()
            .ok_or_else(|| format!("no timestamps in {line}"))?
            .iter()
            .map(|t| t.as_i64().ok_or_else(|| format!("bad timestamp {t}")))
            .collect::<Result<Vec<_>, _>>()?;
        let bits = match v.get("bits") {
            None | Some(Value::Null) => None,
            Some(b) => Some(
                b.as_array()
                    .ok_or_else(|| format!("bits not an array: {b}"))?
                    .iter()
                    .map(|h| {
                        h.as_str()
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                            .ok_or_else(|| format!("bad bits {h}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if values.len() != timestamps.len() {
            return Err(format!("values and timestamps differ in length: {line}"));
        }
        out.push(ExportSeries {
            metric,
            timestamps,
            values,
            bits,
        });
    }
    out.sort_by_key(ExportSeries::key);
    Ok(out)
}

/// `GET base/api/v1/export?match[]=SELECTOR[&start=&end=][&raw_bits=1]` (times in ms, sent as
/// seconds with millisecond precision), parsed and sorted by label set.
pub fn export(
    base: &str,
    selector: &str,
    range: Option<(i64, i64)>,
    raw_bits: bool,
) -> Result<Vec<ExportSeries>, String> {
    let mut pairs = vec![("match[]", selector.to_string())];
    if let Some((start, end)) = range {
        pairs.push(("start", ms_to_secs(start)));
        pairs.push(("end", ms_to_secs(end)));
    }
    if raw_bits {
        pairs.push(("raw_bits", "1".to_string()));
    }
    let url = url_with_query(base, "/api/v1/export", &pairs);
    let r = get(&url)?;
    if r.status != 200 {
        return Err(format!("GET {url}: {} {}", r.status, r.text()));
    }
    parse_export(&r.text())
}

/// Milliseconds as a decimal seconds string (`1700000000.123`).
pub fn ms_to_secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// `GET base/api/v1/query?query=Q&time=T`: vector or matrix results as series (a vector
/// result gives one sample per series).
pub fn prom_query(base: &str, query: &str, time_ms: i64) -> Result<Vec<ExportSeries>, String> {
    let url = url_with_query(
        base,
        "/api/v1/query",
        &[("query", query.to_string()), ("time", ms_to_secs(time_ms))],
    );
    let r = get(&url)?;
    let v = r.json()?;
    if r.status != 200 || v["status"] != "success" {
        return Err(format!("GET {url}: {} {}", r.status, r.text()));
    }
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no data.result: {}", r.text()))?;
    let mut out = Vec::new();
    for s in result {
        let metric = parse_metric(&s["metric"])?;
        let pairs: Vec<&Value> = match (s.get("values"), s.get("value")) {
            (Some(Value::Array(vs)), _) => vs.iter().collect(),
            (_, Some(v)) => vec![v],
            _ => return Err(format!("no values in {s}")),
        };
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        for p in pairs {
            let t = p[0].as_f64().ok_or_else(|| format!("bad time {p}"))?;
            timestamps.push((t * 1000.0).round() as i64);
            values.push(parse_value(&p[1])?);
        }
        out.push(ExportSeries {
            metric,
            timestamps,
            values,
            bits: None,
        });
    }
    out.sort_by_key(ExportSeries::key);
    Ok(out)
}

/// `GET base/api/v1/series?match[]=SEL&start=&end=`: the label sets.
pub fn series(
    base: &str,
    selector: &str,
    range: Option<(i64, i64)>,
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut pairs = vec![("match[]", selector.to_string())];
    if let Some((start, end)) = range {
        pairs.push(("start", ms_to_secs(start)));
        pairs.push(("end", ms_to_secs(end)));
    }
    let url = url_with_query(base, "/api/v1/series", &pairs);
    let r = get(&url)?;
    let v = r.json()?;
    if r.status != 200 || v["status"] != "success" {
        return Err(format!("GET {url}: {} {}", r.status, r.text()));
    }
    v["data"]
        .as_array()
        .ok_or_else(|| format!("no data: {}", r.text()))?
        .iter()
        .map(parse_metric)
        .collect()
}

/// The value of the sample line `series` (exactly as exposed, e.g.
/// `promgate_ingest_rejected_samples_total{reason="invalid_metric_name"}`) in a text exposition.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let mut parts = rest.split_whitespace();
        let first = parts.next()?;
        // The name must end exactly here: the rest is " value [timestamp]".
        if !rest.starts_with(' ') {
            return None;
        }
        parse_value(&Value::String(first.to_string())).ok()
    })
}
