//! A group as time series for the window: what a Prometheus scraping a Pushgateway with
//! `honor_labels: true` would store (summaries and histograms expanded into `quantile`, `le`,
//! `_sum` and `_count` series, empty labels dropped), plus the group's `push_time_seconds` and
//! `push_failure_time_seconds`. Series a change ends get a staleness marker, as a scrape target
//! whose series disappear would.

use hashbrown::HashSet;

use rules_engine::Sample;
use rules_engine::model::{METRIC_NAME, stale_nan};

use super::family::{Value, format_go_g};
use super::groups::{Group, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::ingest::decode::{Decoded, DecodedSeries, Metadata, MetadataType};

/// One series: sorted label pairs (`__name__` included) and its value.
pub struct Point {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

fn point(
    name: String,
    base: &[(String, String)],
    extra: Option<(&str, String)>,
    value: f64,
) -> Point {
    let mut labels = Vec::with_capacity(base.len() + 2);
    labels.push((METRIC_NAME.to_string(), name));
    labels.extend(base.iter().filter(|(_, v)| !v.is_empty()).cloned());
    if let Some((n, v)) = extra {
        labels.push((n.to_string(), v));
    }
    labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Point { labels, value }
}

/// The series of one family with their current values.
fn family_points(name: &str, f: &super::family::Family, out: &mut Vec<Point>) {
    for m in &f.metrics {
        match &m.value {
            Value::Simple(v) => out.push(point(name.to_string(), &m.labels, None, *v)),
            Value::Summary {
                count,
                sum,
                quantiles,
            } => {
                for (q, v) in quantiles {
                    out.push(point(
                        name.to_string(),
                        &m.labels,
                        Some(("quantile", format_go_g(*q))),
                        *v,
                    ));
                }
                out.push(point(format!("{name}_sum"), &m.labels, None, *sum));
                out.push(point(
                    format!("{name}_count"),
                    &m.labels,
                    None,
                    *count as f64,
                ));
            }
            Value::Histogram {
                count,
                sum,
                buckets,
            } => {
                let bucket = format!("{name}_bucket");
                for (le, n) in buckets {
                    out.push(point(
                        bucket.clone(),
                        &m.labels,
                        Some(("le", format_go_g(*le))),
                        *n as f64,
                    ));
                }
                if !buckets.last().is_some_and(|(le, _)| *le == f64::INFINITY) {
                    out.push(point(
                        bucket,
                        &m.labels,
                        Some(("le", "+Inf".into())),
                        *count as f64,
                    ));
                }
                out.push(point(format!("{name}_sum"), &m.labels, None, *sum));
                out.push(point(
                    format!("{name}_count"),
                    &m.labels,
                    None,
                    *count as f64,
                ));
            }
        }
    }
}

/// Every series of a group with its current value.
pub fn points(g: &Group, out: &mut Vec<Point>) {
    for (name, s) in &g.families {
        family_points(name, &s.family, out);
    }
    let own = g.own_labels();
    out.push(point(PUSH_TIME.into(), &own, None, g.push_ns as f64 / 1e9));
    out.push(point(
        PUSH_FAILURE_TIME.into(),
        &own,
        None,
        g.failure_ns as f64 / 1e9,
    ));
}

/// Whether two versions of a family expose the same series (values aside), so a change
/// between them ends none.
fn same_series(a: &super::family::Family, b: &super::family::Family) -> bool {
    a.kind == b.kind
        && a.metrics.len() == b.metrics.len()
        && a.metrics.iter().zip(&b.metrics).all(|(x, y)| {
            x.labels == y.labels
                && match (&x.value, &y.value) {
                    (Value::Simple(_), Value::Simple(_)) => true,
                    (Value::Summary { quantiles: p, .. }, Value::Summary { quantiles: q, .. }) => {
                        p.len() == q.len()
                            && p.iter().zip(q).all(|(u, v)| u.0.to_bits() == v.0.to_bits())
                    }
                    (Value::Histogram { buckets: p, .. }, Value::Histogram { buckets: q, .. }) => {
                        p.len() == q.len()
                            && p.iter().zip(q).all(|(u, v)| u.0.to_bits() == v.0.to_bits())
                    }
                    _ => false,
                }
        })
}

/// A staleness marker for each series of `old` that `new` no longer has. Only families whose
/// series changed are expanded to find those.
pub fn ended(old: Option<&Group>, new: Option<&Group>) -> Vec<Point> {
    let Some(old) = old else {
        return Vec::new();
    };
    let mut before = Vec::new();
    match new {
        None => points(old, &mut before),
        Some(g) => {
            for (name, s) in &old.families {
                let kept = g
                    .families
                    .get(name)
                    .is_some_and(|n| same_series(&s.family, &n.family));
                if !kept {
                    family_points(name, &s.family, &mut before);
                }
            }
        }
    }
    if before.is_empty() {
        return before;
    }
    let mut current = Vec::new();
    if let Some(g) = new {
        points(g, &mut current);
    }
    let keep: HashSet<&[(String, String)]> = current.iter().map(|p| p.labels.as_slice()).collect();
    before
        .into_iter()
        .filter(|p| !keep.contains(p.labels.as_slice()))
        .map(|p| Point {
            labels: p.labels,
            value: stale_nan(),
        })
        .collect()
}

/// Strings a group's series need that the group does not hold: suffixed names, formatted
/// bucket bounds and quantiles, and the labels of its `push_*` series.
pub struct Arena {
    suffixed: hashbrown::HashMap<String, [String; 3]>,
    bounds: hashbrown::HashMap<u64, String>,
    own: Vec<(String, String)>,
}

impl Arena {
    pub fn new(g: Option<&Group>) -> Self {
        let mut a = Arena {
            suffixed: hashbrown::HashMap::new(),
            bounds: hashbrown::HashMap::new(),
            own: g.map(Group::own_labels).unwrap_or_default(),
        };
        a.bounds.insert(f64::INFINITY.to_bits(), "+Inf".into());
        for (name, s) in g.into_iter().flat_map(|g| &g.families) {
            let mut any = false;
            for m in &s.family.metrics {
                let bounds: Box<dyn Iterator<Item = f64>> = match &m.value {
                    Value::Simple(_) => continue,
                    Value::Summary { quantiles, .. } => Box::new(quantiles.iter().map(|q| q.0)),
                    Value::Histogram { buckets, .. } => Box::new(buckets.iter().map(|b| b.0)),
                };
                any = true;
                for b in bounds {
                    a.bounds
                        .entry(b.to_bits())
                        .or_insert_with(|| format_go_g(b));
                }
            }
            if any {
                a.suffixed.insert(
                    name.clone(),
                    [
                        format!("{name}_sum"),
                        format!("{name}_count"),
                        format!("{name}_bucket"),
                    ],
                );
            }
        }
        a
    }
}

/// Appends one series (one sample) to `d`, its labels sorted, empty values dropped.
fn push_series<'a>(
    d: &mut Decoded<'a>,
    name: &'a str,
    labels: &'a [(String, String)],
    extra: Option<(&'static str, &'a str)>,
    v: f64,
    t_ms: i64,
) {
    let start = d.labels.len();
    d.labels.push((METRIC_NAME.as_bytes(), name.as_bytes()));
    d.labels.extend(
        labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    if let Some((n, v)) = extra {
        d.labels.push((n.as_bytes(), v.as_bytes()));
    }
    d.labels[start..].sort_unstable_by(|a, b| a.0.cmp(b.0));
    let s = d.samples.len() as u32;
    d.samples.push(Sample::new(t_ms, v));
    d.series.push(DecodedSeries {
        labels: start as u32..d.labels.len() as u32,
        samples: s..s + 1,
        histograms: 0,
        exemplars: 0,
        kind: None,
        defect: None,
    });
}

/// The write for a change, as a decoded request for `ingest::remote_write::prepare`: every
/// series of `new` (borrowed from it and `arena`, nothing copied) and the staleness markers
/// in `ended`, with the families' metadata.
pub fn decoded<'a>(
    new: Option<&'a Group>,
    arena: &'a Arena,
    ended: &'a [Point],
    t_ms: i64,
) -> Decoded<'a> {
    let mut d = Decoded::default();
    let bound = |b: f64| arena.bounds.get(&b.to_bits()).map_or("NaN", String::as_str);
    if let Some(g) = new {
        for (name, s) in &g.families {
            let suffixed = arena.suffixed.get(name.as_str());
            for m in &s.family.metrics {
                match (&m.value, suffixed) {
                    (Value::Simple(v), _) => push_series(&mut d, name, &m.labels, None, *v, t_ms),
                    (
                        Value::Summary {
                            count,
                            sum,
                            quantiles,
                        },
                        Some([sum_name, count_name, _]),
                    ) => {
                        for (q, v) in quantiles {
                            push_series(
                                &mut d,
                                name,
                                &m.labels,
                                Some(("quantile", bound(*q))),
                                *v,
                                t_ms,
                            );
                        }
                        push_series(&mut d, sum_name, &m.labels, None, *sum, t_ms);
                        push_series(&mut d, count_name, &m.labels, None, *count as f64, t_ms);
                    }
                    (
                        Value::Histogram {
                            count,
                            sum,
                            buckets,
                        },
                        Some([sum_name, count_name, bucket_name]),
                    ) => {
                        for (le, n) in buckets {
                            push_series(
                                &mut d,
                                bucket_name,
                                &m.labels,
                                Some(("le", bound(*le))),
                                *n as f64,
                                t_ms,
                            );
                        }
                        if !buckets.last().is_some_and(|(le, _)| *le == f64::INFINITY) {
                            push_series(
                                &mut d,
                                bucket_name,
                                &m.labels,
                                Some(("le", "+Inf")),
                                *count as f64,
                                t_ms,
                            );
                        }
                        push_series(&mut d, sum_name, &m.labels, None, *sum, t_ms);
                        push_series(&mut d, count_name, &m.labels, None, *count as f64, t_ms);
                    }
                    // The arena has the names of every summary and histogram family.
                    _ => {}
                }
            }
            d.metadata.push(Metadata {
                family: name,
                kind: match s.family.kind.metadata() {
                    "counter" => MetadataType::Counter,
                    "gauge" => MetadataType::Gauge,
                    "summary" => MetadataType::Summary,
                    "histogram" => MetadataType::Histogram,
                    _ => MetadataType::Unknown,
                },
                help: s.family.help.as_deref().unwrap_or(""),
                unit: "",
            });
        }
        push_series(
            &mut d,
            PUSH_TIME,
            &arena.own,
            None,
            g.push_ns as f64 / 1e9,
            t_ms,
        );
        push_series(
            &mut d,
            PUSH_FAILURE_TIME,
            &arena.own,
            None,
            g.failure_ns as f64 / 1e9,
            t_ms,
        );
    }
    for p in ended {
        let start = d.labels.len() as u32;
        d.labels
            .extend(p.labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let s = d.samples.len() as u32;
        d.samples.push(Sample::new(t_ms, p.value));
        d.series.push(DecodedSeries {
            labels: start..d.labels.len() as u32,
            samples: s..s + 1,
            histograms: 0,
            exemplars: 0,
            kind: None,
            defect: None,
        });
    }
    d
}
