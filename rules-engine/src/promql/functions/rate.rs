// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! `rate`, `increase`, `delta`, `irate`, `idelta`: ported from `extrapolatedRate` and
//! `instantValue` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go#L66-L290>
//! (float samples only; promgate stores no native histograms).

use crate::model::Sample;

/// The extrapolated increase over `[range_start, range_end]` (counter resets handled when
/// `is_counter`), per second of `range_ms` when `is_rate`. `None` below two samples.
pub fn extrapolated_rate(
    s: &[Sample],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for cur in &s[1..] {
            if cur.v < prev {
                result += prev;
            }
            prev = cur.v;
        }
    }
    let mut duration_to_start = (first.t.0 - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last.t.0) as f64 / 1000.0;
    let sampled_interval = (last.t.0 - first.t.0) as f64 / 1000.0;
    let average_between = sampled_interval / (s.len() - 1) as f64;
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    if duration_to_start < threshold {
        extrapolate_to += duration_to_start;
    } else {
        extrapolate_to += average_between / 2.0;
    }
    if duration_to_end < threshold {
        extrapolate_to += duration_to_end;
    } else {
        extrapolate_to += average_between / 2.0;
    }
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (`is_rate`) and `idelta`: from the last two samples.
pub fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let last = s[s.len() - 1];
    let prev = s[s.len() - 2];
    let mut result = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t.0 - prev.t.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(step: i64, vals: &[f64]) -> Vec<Sample> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| Sample::new(i as i64 * step, *v))
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_window_edges() {
        // 0,10,...,50 every 60s read over [0, 300s]: exact 50 increase over 300s.
        let s = series(60_000, &[0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        let r = extrapolated_rate(&s, 0, 300_000, 300_000, true, true).unwrap();
        assert!((r - 50.0 / 300.0).abs() < 1e-12, "{r}");
    }

    #[test]
    fn counter_reset_adds_previous_value() {
        let s = series(60_000, &[10.0, 20.0, 5.0]);
        let inc = extrapolated_rate(&s, 0, 120_000, 120_000, true, false).unwrap();
        // raw increase 5-10, plus 20 for the reset (the value before it): 15
        assert!((inc - 15.0).abs() < 1e-9, "{inc}");
        let d = extrapolated_rate(&s, 0, 120_000, 120_000, false, false).unwrap();
        assert!((d + 5.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn irate_uses_last_two_samples() {
        let s = series(10_000, &[1.0, 5.0, 2.0]);
        assert_eq!(instant_value(&s, true), Some(0.2));
        assert_eq!(instant_value(&s, false), Some(-3.0));
        assert_eq!(instant_value(&s[..1], true), None);
    }
}
