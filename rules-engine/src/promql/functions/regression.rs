// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! `deriv` and `predict_linear`: the Kahan-compensated least-squares fit of `linearRegression`
//! in <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go#L880-L950>.

use super::over_time::kahan_sum_inc;
use crate::model::Sample;

/// Slope (per second) and intercept at `intercept_ms` of the least-squares line.
pub fn linear_regression(s: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0f64, 0.0, 0.0, 0.0);
    let init_y = s.first().map_or(f64::NAN, |p| p.v);
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t.0 - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let sum_x = sum_x + c_x;
    let sum_y = sum_y + c_y;
    let sum_xy = sum_xy + c_xy;
    let sum_x2 = sum_x2 + c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

pub fn deriv(s: &[Sample]) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    Some(linear_regression(s, s[0].t.0).0)
}

pub fn predict_linear(s: &[Sample], ts: i64, duration_s: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(s, ts);
    Some(slope * duration_s + intercept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line() {
        let s: Vec<Sample> = (0..5)
            .map(|i| Sample::new(i * 1000, 2.0 * i as f64 + 1.0))
            .collect();
        assert_eq!(deriv(&s), Some(2.0));
        let p = predict_linear(&s, 4000, 10.0).unwrap();
        assert!((p - 29.0).abs() < 1e-9, "{p}");
        let flat: Vec<Sample> = (0..3).map(|i| Sample::new(i * 1000, 3.0)).collect();
        assert_eq!(deriv(&flat), Some(0.0));
    }
}
