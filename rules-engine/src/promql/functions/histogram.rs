// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! `histogram_quantile` over classic buckets and the `quantile` helper shared by the
//! `quantile` aggregator and `quantile_over_time`, ported from
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/quantile.go> and
//! `funcHistogramQuantile` in `promql/functions.go@v2.42.0`.

use std::collections::HashMap;

use super::sort::go_sort;
use crate::model::{Labels, METRIC_NAME};
use crate::promql::eval::El;

const BUCKET_LABEL: &str = "le";

#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// The `q`-quantile of classic buckets (any order; coalesced and made monotonic).
pub fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    go_sort(buckets, |b, i, j| b[i].upper_bound < b[j].upper_bound);
    match buckets.last() {
        Some(b) if b.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket.
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return buckets[n - 1].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

fn ensure_monotonic(buckets: &mut [Bucket]) {
    let Some(first) = buckets.first() else { return };
    let mut max = first.count;
    for b in buckets.iter_mut().skip(1) {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
}

/// The `q`-quantile of `values` (sorted in place, NaN first as Prometheus sorts them).
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    go_sort(values, |v, i, j| v[i].is_nan() || v[i] < v[j]);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (n - 1.0).min(lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Parses a bucket bound as Go's `strconv.ParseFloat` does for the usual spellings.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let neg = s.starts_with('-');
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"._eE+-".contains(&b))
    {
        return None;
    }
    s.replace('_', "").parse::<f64>().ok()
}

/// `histogram_quantile(q, v)` over classic `le` buckets at one step.
pub(crate) fn histogram_quantile(q: f64, v: &[El]) -> Vec<El> {
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, (Labels, Vec<Bucket>)> = HashMap::new();
    for s in v {
        let Some(ub) = s.labels.get(BUCKET_LABEL).and_then(parse_go_float) else {
            continue;
        };
        let mut sig = s.labels.clone();
        sig.remove(BUCKET_LABEL);
        let entry = groups.entry(sig.clone()).or_insert_with(|| {
            order.push(sig.clone());
            let mut m = sig.clone();
            m.remove(METRIC_NAME);
            (m, Vec::new())
        });
        entry.1.push(Bucket {
            upper_bound: ub,
            count: s.v,
        });
    }
    let mut out = Vec::with_capacity(order.len());
    for sig in order {
        if let Some((m, mut b)) = groups.remove(&sig) {
            out.push(El::new(m, bucket_quantile(q, &mut b)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    #[test]
    fn interpolates_within_bucket() {
        let mut x = b(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]);
        assert_eq!(bucket_quantile(0.5, &mut x), 1.0);
        let mut x = b(&[(f64::INFINITY, 20.0), (2.0, 20.0), (1.0, 10.0)]);
        assert_eq!(bucket_quantile(0.75, &mut x), 1.5);
        let mut x = b(&[(1.0, 10.0)]);
        assert!(bucket_quantile(0.5, &mut x).is_nan());
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
    }

    #[test]
    fn go_float_spellings() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("0.5"), Some(0.5));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("abc"), None);
        assert_eq!(parse_go_float(""), None);
    }
}
