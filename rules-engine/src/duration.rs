// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Prometheus's `model.Duration`: parsing (`1h30m`, `5m`, `0`) and formatting (`1h30m`,
//! `0s`) as `prometheus/common/model/time.go` does. Durations are milliseconds.

const UNITS: &[(&str, i64)] = &[
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses `[0-9]+(y|w|d|h|m|s|ms)` terms, each unit at most once and in that order.
pub fn parse_model_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut last_unit = 0usize;
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        if idx < last_unit || (idx == last_unit && start > 0) {
            return Err(bad());
        }
        last_unit = idx;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// `model.Duration.String()`.
pub fn format_model_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut out = String::new();
    for (i, (unit, mult)) in UNITS.iter().enumerate() {
        let exact = i < 2;
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_model_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_model_duration("0"), Ok(0));
        assert_eq!(parse_model_duration("90s"), Ok(90_000));
        assert!(parse_model_duration("1m1h").is_err());
        assert!(parse_model_duration("1.5m").is_err());
        assert_eq!(format_model_duration(0), "0s");
        assert_eq!(format_model_duration(5_400_000), "1h30m");
        assert_eq!(format_model_duration(90_000), "1m30s");
        assert_eq!(format_model_duration(14 * 24 * 3_600_000), "2w");
        assert_eq!(format_model_duration(10 * 24 * 3_600_000), "10d");
    }
}
