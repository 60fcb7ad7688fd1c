// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
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

const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
/// `unixToInternal + internalToAbsolute` of Go's `time` package.
const UNIX_TO_ABSOLUTE: i64 = 62_135_596_800 + 9_223_371_966_579_724_800;
const DAYS_BEFORE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// The broken-down UTC time of a Unix second, computed as Go's `time` package does
/// (`absDate` and friends, including its wrap-around for seconds out of its range).
pub fn civil(unix_s: i64) -> Civil {
    let abs = unix_s.wrapping_add(UNIX_TO_ABSOLUTE) as u64;
    let mut d = abs / SECONDS_PER_DAY;
    let mut n = d / DAYS_PER_400_YEARS;
    let mut y = 400 * n;
    d -= DAYS_PER_400_YEARS * n;
    n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100_YEARS * n;
    n = d / DAYS_PER_4_YEARS;
    y += 4 * n;
    d -= DAYS_PER_4_YEARS * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let yday = d as u32;
    let mut day = yday;
    let (month, day) = 'md: {
        if is_leap(year) {
            if day > 31 + 29 - 1 {
                day -= 1;
            } else if day == 31 + 29 - 1 {
                break 'md (2, 29);
            }
        }
        let mut month = day / 31;
        let end = DAYS_BEFORE[month as usize + 1];
        let begin = if day >= end {
            month += 1;
            end
        } else {
            DAYS_BEFORE[month as usize]
        };
        (month + 1, day - begin + 1)
    };
    Civil {
        year,
        month,
        day,
        hour: ((abs % SECONDS_PER_DAY) / 3600) as u32,
        minute: ((abs % 3600) / 60) as u32,
        weekday: ((abs.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY)) / SECONDS_PER_DAY)
            as u32,
        yday: yday + 1,
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
        // Go's wrap-around for NaN (int64 minimum): minute 30, as promtool prints.
        assert_eq!(civil(i64::MIN).minute, 30);
        assert_eq!(civil(-10_000_000_000).year, 1653);
    }
}
