//! Pushed groups as Pushgateway 1.5 shows them: `GET /metrics` in the text format 0.0.4 (all
//! groups merged per family name, families sorted by name, metrics sorted as client_golang
//! sorts them: fewer labels first, then by label values) and `GET /api/v1/metrics` in its JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Value as Json, json};

use super::family::{Kind, Metric, Value, format_go_g};
use super::groups::{
    Group, Groups, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP,
};

/// A family merged across groups for the exposition.
struct Merged<'a> {
    help: Option<&'a str>,
    kind: Kind,
    metrics: Vec<MetricRef<'a>>,
}

enum MetricRef<'a> {
    Pushed(&'a Metric),
    Own(Vec<(String, String)>, f64),
}

impl MetricRef<'_> {
    fn labels(&self) -> &[(String, String)] {
        match self {
            MetricRef::Pushed(m) => &m.labels,
            MetricRef::Own(l, _) => l,
        }
    }
}

/// Appends every group's families to `out` in the text format 0.0.4.
pub fn text(groups: &Groups, out: &mut String) {
    let mut merged: BTreeMap<&str, Merged<'_>> = BTreeMap::new();
    for g in groups.iter() {
        for (name, s) in &g.families {
            let e = merged.entry(name.as_str()).or_insert_with(|| Merged {
                help: s.family.help.as_deref(),
                kind: s.family.kind,
                metrics: Vec::new(),
            });
            e.metrics
                .extend(s.family.metrics.iter().map(MetricRef::Pushed));
        }
        let own = g.own_labels();
        for (name, help, v) in [
            (PUSH_TIME, PUSH_TIME_HELP, g.push_ns),
            (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, g.failure_ns),
        ] {
            merged
                .entry(name)
                .or_insert_with(|| Merged {
                    help: Some(help),
                    kind: Kind::Gauge,
                    metrics: Vec::new(),
                })
                .metrics
                .push(MetricRef::Own(own.clone(), v as f64 / 1e9));
        }
    }
    for (name, mut f) in merged {
        f.metrics.sort_by(|a, b| {
            let (a, b) = (a.labels(), b.labels());
            a.len()
                .cmp(&b.len())
                .then_with(|| a.iter().map(|x| &x.1).cmp(b.iter().map(|x| &x.1)))
        });
        if let Some(h) = f.help {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape(out, h, false);
            out.push('\n');
        }
        let _ = writeln!(out, "# TYPE {name} {}", f.kind.text());
        for m in &f.metrics {
            match m {
                MetricRef::Own(labels, v) => sample(out, name, "", labels, None, *v),
                MetricRef::Pushed(m) => match &m.value {
                    Value::Simple(v) => sample(out, name, "", &m.labels, None, *v),
                    Value::Summary {
                        count,
                        sum,
                        quantiles,
                    } => {
                        for (q, v) in quantiles {
                            sample(out, name, "", &m.labels, Some(("quantile", *q)), *v);
                        }
                        sample(out, name, "_sum", &m.labels, None, *sum);
                        sample(out, name, "_count", &m.labels, None, *count as f64);
                    }
                    Value::Histogram {
                        count,
                        sum,
                        buckets,
                    } => {
                        for (le, n) in buckets {
                            sample(
                                out,
                                name,
                                "_bucket",
                                &m.labels,
                                Some(("le", *le)),
                                *n as f64,
                            );
                        }
                        if !buckets.last().is_some_and(|(le, _)| *le == f64::INFINITY) {
                            sample(
                                out,
                                name,
                                "_bucket",
                                &m.labels,
                                Some(("le", f64::INFINITY)),
                                *count as f64,
                            );
                        }
                        sample(out, name, "_sum", &m.labels, None, *sum);
                        sample(out, name, "_count", &m.labels, None, *count as f64);
                    }
                },
            }
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    extra: Option<(&str, f64)>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        for (n, val) in labels {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(n);
            out.push_str("=\"");
            escape(out, val, true);
            out.push('"');
        }
        if let Some((n, x)) = extra {
            if !first {
                out.push(',');
            }
            out.push_str(n);
            out.push_str("=\"");
            out.push_str(&format_go_g(x));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_go_g(v));
    out.push('\n');
}

/// The text format's escaping: `\\` and `\n`, and `\"` in label values.
fn escape(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn labels_json(labels: &[(String, String)]) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(n, v)| (n.clone(), Json::String(v.clone())))
            .collect(),
    )
}

fn floats_json(pairs: impl Iterator<Item = (f64, String)>) -> Json {
    Json::Object(
        pairs
            .map(|(k, v)| (format_go_g(k), Json::String(v)))
            .collect(),
    )
}

/// One group as an element of `/api/v1/metrics`' `data`.
fn group_json(g: &Group) -> Json {
    let mut obj = Map::new();
    obj.insert("labels".into(), labels_json(&g.key));
    obj.insert(
        "last_push_successful".into(),
        Json::Bool(g.last_push_successful()),
    );
    for (name, s) in &g.families {
        let f = &s.family;
        let metrics: Vec<Json> = f
            .metrics
            .iter()
            .map(|m| {
                let mut e = Map::new();
                e.insert("labels".into(), labels_json(&m.labels));
                match &m.value {
                    Value::Simple(v) => {
                        e.insert("value".into(), Json::String(format_go_g(*v)));
                    }
                    Value::Summary {
                        count,
                        sum,
                        quantiles,
                    } => {
                        e.insert(
                            "quantiles".into(),
                            floats_json(quantiles.iter().map(|(q, v)| (*q, format_go_g(*v)))),
                        );
                        e.insert("count".into(), Json::String(count.to_string()));
                        e.insert("sum".into(), Json::String(format_go_g(*sum)));
                    }
                    Value::Histogram {
                        count,
                        sum,
                        buckets,
                    } => {
                        e.insert(
                            "buckets".into(),
                            floats_json(buckets.iter().map(|(le, n)| (*le, n.to_string()))),
                        );
                        e.insert("count".into(), Json::String(count.to_string()));
                        e.insert("sum".into(), Json::String(format_go_g(*sum)));
                    }
                }
                Json::Object(e)
            })
            .collect();
        let mut fam = Map::new();
        fam.insert("time_stamp".into(), Json::String(rfc3339(s.at_ns)));
        fam.insert("type".into(), Json::String(f.kind.proto_name().into()));
        if let Some(h) = f.help.as_deref().filter(|h| !h.is_empty()) {
            fam.insert("help".into(), Json::String(h.into()));
        }
        fam.insert("metrics".into(), Json::Array(metrics));
        obj.insert(name.clone(), Json::Object(fam));
    }
    let own = labels_json(&g.own_labels());
    for (name, help, v, at) in [
        (PUSH_TIME, PUSH_TIME_HELP, g.push_ns, g.push_set_ns),
        (
            PUSH_FAILURE_TIME,
            PUSH_FAILURE_TIME_HELP,
            g.failure_ns,
            g.failure_set_ns,
        ),
    ] {
        obj.insert(
            name.into(),
            json!({
                "time_stamp": rfc3339(at),
                "type": "GAUGE",
                "help": help,
                "metrics": [{"labels": own.clone(), "value": format_go_g(v as f64 / 1e9)}],
            }),
        );
    }
    Json::Object(obj)
}

/// The body of `GET /api/v1/metrics`.
pub fn api_json(groups: &Groups) -> Json {
    json!({
        "status": "success",
        "data": groups.iter().map(group_json).collect::<Vec<_>>(),
    })
}
