// Copyright 2015 The Prometheus Authors; Copyright 2009 The Go Authors (math.Pow, BSD-style).
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Element-wise math: `abs`, `ceil`, ..., the trigonometric functions, `rad`, `deg`, `sgn`,
//! `round`, `clamp*` (`simpleFunc` and friends in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go#L390-L620>),
//! and Go's `math.Pow` (repeated squaring), which `^` uses and which can differ from libm in
//! the last bit. The transcendental functions come from [`super::gomath`].

use super::gomath;

/// The function applied element-wise by a one-argument math function, by name.
pub fn simple(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => gomath::exp,
        "sqrt" => f64::sqrt,
        "ln" => gomath::log,
        "log2" => go_log2,
        "log10" => go_log10,
        "sin" => gomath::sin,
        "cos" => gomath::cos,
        "tan" => gomath::tan,
        "asin" => gomath::asin,
        "acos" => gomath::acos,
        "atan" => gomath::atan,
        "sinh" => gomath::sinh,
        "cosh" => gomath::cosh,
        "tanh" => gomath::tanh,
        "asinh" => gomath::asinh,
        "acosh" => gomath::acosh,
        "atanh" => gomath::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go's `math.Log10`: `Log(x) * (1/Ln10)`, which can differ from libm's `log10` in the last
/// bit.
pub fn go_log10(x: f64) -> f64 {
    gomath::log(x) * std::f64::consts::LOG10_E
}

/// Go's `math.Log2`: exact for powers of two, else `Log(frac)*(1/Ln2) + exp`.
pub fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    gomath::log(frac) * std::f64::consts::LOG2_E + exp as f64
}

/// `round(v, to_nearest)`: ties round up.
pub fn round(v: f64, to_nearest: f64) -> f64 {
    let inv = 1.0 / to_nearest;
    (v * inv + 0.5).floor() / inv
}

/// Go's `math.Max` / `math.Min` (NaN wins, and -0 < +0).
pub fn go_max(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x > 0.0 || y.is_infinite() && y > 0.0 {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

pub fn go_min(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x < 0.0 || y.is_infinite() && y < 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

pub(crate) fn frexp(f: f64) -> (f64, i64) {
    if f == 0.0 || f.is_infinite() || f.is_nan() {
        return (f, 0);
    }
    let (mut f, mut exp) = (f, 0i64);
    if f.abs() < f64::MIN_POSITIVE {
        f *= (1u64 << 52) as f64;
        exp = -52;
    }
    let mut x = f.to_bits();
    exp += ((x >> 52) & 0x7ff) as i64 - 1022;
    x &= !(0x7ffu64 << 52);
    x |= 1022u64 << 52;
    (f64::from_bits(x), exp)
}

fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || frac.is_infinite() || frac.is_nan() {
        return frac;
    }
    let (frac, e) = frexp(frac);
    let mut exp = exp + e;
    let mut x = frac.to_bits();
    exp += ((x >> 52) & 0x7ff) as i64 - 1023;
    if exp < -1075 {
        return 0.0f64.copysign(frac);
    }
    if exp > 1023 {
        return if frac < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let mut m = 1.0;
    if exp < -1022 {
        exp += 53;
        m = 1.0 / (1u64 << 53) as f64;
    }
    x &= !(0x7ffu64 << 52);
    x |= ((exp + 1023) as u64) << 52;
    m * f64::from_bits(x)
}

/// 2^63, the first float64 above `i64::MAX`.
pub const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn is_odd_int(x: f64) -> bool {
    if x.abs() >= (1u64 << 53) as f64 {
        return false;
    }
    let xi = x.trunc();
    x == xi && (xi as i64) & 1 == 1
}

/// Go's `math.Pow`.
pub fn go_pow(x: f64, y: f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if y == 1.0 {
        return x;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 {
        if y < 0.0 {
            return if x.is_sign_negative() && is_odd_int(y) {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
        }
        return if x.is_sign_negative() && is_odd_int(y) {
            x
        } else {
            0.0
        };
    }
    if y.is_infinite() {
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if x.is_infinite() {
        if x < 0.0 {
            return go_pow(1.0 / x, -y);
        }
        return if y < 0.0 { 0.0 } else { f64::INFINITY };
    }
    if y == 0.5 {
        return x.sqrt();
    }
    if y == -0.5 {
        return 1.0 / x.sqrt();
    }
    let ay = y.abs();
    let mut yi = ay.trunc();
    let mut yf = ay - yi;
    if yf != 0.0 && x < 0.0 {
        return f64::NAN;
    }
    if yi >= TWO_POW_63 {
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = gomath::exp(yf * gomath::log(x));
    }
    let (mut x1, mut xe) = frexp(x);
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_matches_exact_cases() {
        assert_eq!(go_pow(2.0, 10.0), 1024.0);
        assert_eq!(go_pow(2.0, -2.0), 0.25);
        assert_eq!(go_pow(9.0, 0.5), 3.0);
        assert!(go_pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(go_pow(0.0, -1.0), f64::INFINITY);
        assert_eq!(go_pow(f64::NAN, 0.0), 1.0);
        assert!((go_pow(10.0, 0.3) - 10f64.powf(0.3)).abs() < 1e-12);
    }

    #[test]
    fn logs_match_go() {
        assert_eq!(go_log10(20.0), 1.301029995663981);
        assert_eq!(go_log2(8.0), 3.0);
        assert!(go_log2(-1.0).is_nan());
    }

    #[test]
    fn round_and_sgn() {
        assert_eq!(round(2.5, 1.0), 3.0);
        assert_eq!(round(-2.5, 1.0), -2.0);
        assert_eq!(round(1.234, 0.1), 1.2);
        assert_eq!(simple("sgn").unwrap()(-3.0), -1.0);
        assert!(simple("nope").is_none());
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_max(f64::NAN, 1.0).is_nan());
        assert_eq!(go_min(1.0, 2.0), 1.0);
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
    }
}
