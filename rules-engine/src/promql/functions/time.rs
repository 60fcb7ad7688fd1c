// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"); see upstream/LICENSE.
//! The date functions (`year`, `month`, `day_of_month`, `day_of_week`, `day_of_year`,
//! `days_in_month`, `hour`, `minute`), in UTC, as `dateWrapper` and friends in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go#L1140-L1240>.
//! Civil dates come from Howard Hinnant's days-from-civil algorithm; no clock is read.

/// The broken-down UTC time of a Unix second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub weekday: u32,
    pub yday: u32,
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub fn civil(unix_s: i64) -> Civil {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut yday = day;
    for m in 1..month {
        yday += days_in(year, m);
    }
    Civil {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs % 3600 / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

/// Applies the named date function to a Unix second.
pub fn date_fn(name: &str, unix_s: i64) -> Option<f64> {
    let c = civil(unix_s);
    Some(match name {
        "year" => c.year as f64,
        "month" => f64::from(c.month),
        "day_of_month" => f64::from(c.day),
        "day_of_week" => f64::from(c.weekday),
        "day_of_year" => f64::from(c.yday),
        "days_in_month" => f64::from(days_in(c.year, c.month)),
        "hour" => f64::from(c.hour),
        "minute" => f64::from(c.minute),
        _ => return None,
    })
}

/// Go's `int64(f)` on amd64: truncation, with NaN and out-of-range values giving `MinInt64`.
pub fn go_f64_to_i64(f: f64) -> i64 {
    if f.is_nan() || !(-super::math::TWO_POW_63..super::math::TWO_POW_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(
            civil(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                weekday: 4,
                yday: 1
            }
        );
        // 2020-02-29T13:45:00Z
        let c = civil(1_582_983_900);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2020, 2, 29, 13, 45)
        );
        assert_eq!(date_fn("days_in_month", 1_582_983_900), Some(29.0));
        assert_eq!(date_fn("day_of_year", 1_582_983_900), Some(60.0));
        assert_eq!(date_fn("day_of_week", 1_582_983_900), Some(6.0));
        // before the epoch: 1969-12-31T23:59:59Z
        assert_eq!(civil(-1).year, 1969);
    }
}
