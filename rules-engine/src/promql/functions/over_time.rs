// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! The `*_over_time` family, `changes`, `resets` and `holt_winters`, ported from
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go#L290-L760>.
//! In 2.42 `sum_over_time`, `avg_over_time` and `stddev/stdvar_over_time` use Kahan
//! summation (`kahanSumInc`), unlike the `sum`/`avg` aggregators.

use super::histogram::quantile;
use crate::model::Sample;

/// `kahanSumInc`: adds `inc` to `sum` with compensation `c`.
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

pub fn avg_over_time(s: &[Sample]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0f64, 0.0f64);
    for p in s {
        count += 1.0;
        if mean.is_infinite() {
            if p.v.is_infinite() && (mean > 0.0) == (p.v > 0.0) {
                continue;
            }
            if !p.v.is_infinite() && !p.v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_sum_inc(p.v / count - mean / count, mean, c);
    }
    if mean.is_infinite() { mean } else { mean + c }
}

pub fn sum_over_time(s: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for p in s {
        (sum, c) = kahan_sum_inc(p.v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

pub fn max_over_time(s: &[Sample]) -> f64 {
    let mut max = s.first().map_or(f64::NAN, |p| p.v);
    for p in s {
        if p.v > max || max.is_nan() {
            max = p.v;
        }
    }
    max
}

pub fn min_over_time(s: &[Sample]) -> f64 {
    let mut min = s.first().map_or(f64::NAN, |p| p.v);
    for p in s {
        if p.v < min || min.is_nan() {
            min = p.v;
        }
    }
    min
}

pub fn quantile_over_time(q: f64, s: &[Sample]) -> f64 {
    let mut vals: Vec<f64> = s.iter().map(|p| p.v).collect();
    quantile(q, &mut vals)
}

/// The population variance with Kahan-compensated mean and sum of squares.
pub fn stdvar_over_time(s: &[Sample]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

pub fn stddev_over_time(s: &[Sample]) -> f64 {
    stdvar_over_time(s).sqrt()
}

pub fn changes(s: &[Sample]) -> f64 {
    let Some(first) = s.first() else { return 0.0 };
    let mut n = 0u64;
    let mut prev = first.v;
    for p in &s[1..] {
        if p.v != prev && !(p.v.is_nan() && prev.is_nan()) {
            n += 1;
        }
        prev = p.v;
    }
    n as f64
}

pub fn resets(s: &[Sample]) -> f64 {
    let Some(first) = s.first() else { return 0.0 };
    let mut n = 0u64;
    let mut prev = first.v;
    for p in &s[1..] {
        if p.v < prev {
            n += 1;
        }
        prev = p.v;
    }
    n as f64
}

fn calc_trend_value(i: usize, tf: f64, s0: f64, s1: f64, b: f64) -> f64 {
    if i == 0 {
        return b;
    }
    let x = tf * (s1 - s0);
    let y = (1.0 - tf) * b;
    x + y
}

/// Double exponential smoothing. `Err` carries Prometheus's message for bad factors.
pub fn holt_winters(s: &[Sample], sf: f64, tf: f64) -> Result<Option<f64>, String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    if s.len() < 2 {
        return Ok(None);
    }
    let mut s0 = 0.0;
    let mut s1 = s[0].v;
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        b = calc_trend_value(i - 1, tf, s0, s1, b);
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(vals: &[f64]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| Sample::new(i as i64 * 1000, *v))
            .collect()
    }

    #[test]
    fn basic_aggregates() {
        let x = s(&[1.0, 4.0, 2.0, 2.0, f64::NAN, 0.5]);
        assert_eq!(max_over_time(&x[..4]), 4.0);
        assert_eq!(min_over_time(&x), 0.5);
        assert_eq!(sum_over_time(&x[..4]), 9.0);
        assert_eq!(avg_over_time(&x[..4]), 2.25);
        assert_eq!(changes(&x), 4.0);
        assert_eq!(resets(&x[..4]), 1.0);
        assert_eq!(stdvar_over_time(&s(&[2.0, 4.0])), 1.0);
    }

    #[test]
    fn kahan_keeps_small_terms() {
        let x = s(&[1e16, 1.0, -1e16]);
        assert_eq!(sum_over_time(&x), 1.0);
    }

    #[test]
    fn holt_winters_rejects_bad_factors() {
        assert!(holt_winters(&s(&[1.0, 2.0]), 1.0, 0.5).is_err());
        assert_eq!(holt_winters(&s(&[1.0]), 0.5, 0.5), Ok(None));
        let v = holt_winters(&s(&[1.0, 2.0, 3.0]), 0.5, 0.5)
            .unwrap()
            .unwrap();
        assert!((v - 3.0).abs() < 1e-12, "{v}");
    }
}
