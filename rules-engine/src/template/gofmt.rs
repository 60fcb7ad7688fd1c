//! Go's `fmt.Sprint`, `fmt.Sprintln` and `fmt.Sprintf` over template values: the verbs, flags,
//! width and precision that templates use (`%s %v %d %f %e %g %q %x %t %%` and friends), and
//! Go's in-band error texts (`%!d(string=abc)`, `%!s(MISSING)`, `%!(EXTRA ...)`).

use super::value::Value;
use crate::model::write_go_quoted;

/// `fmt.Sprint`: operands printed with `%v`, a space between two operands when neither is a
/// string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_) | Value::Html(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&a.go_v());
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: operands separated by spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(Value::go_v).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                          out: &mut String| {
            if chars.peek() == Some(&'*') {
                chars.next();
                let v = match args.get(next) {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => {
                        out.push_str("%!(BADWIDTH)");
                        None
                    }
                };
                next += 1;
                return v;
            }
            let mut s = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                s.push(d);
                chars.next();
            }
            s.parse().ok()
        };
        spec.width = number(&mut chars, &mut out);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars, &mut out).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let s = format_one(verb, &spec, arg);
        pad(
            &mut out,
            &s,
            &spec,
            matches!(arg, Value::Int(_) | Value::Float(_)),
        );
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.go_v()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn pad(out: &mut String, s: &str, spec: &Spec, numeric: bool) {
    let w = spec.width.unwrap_or(0);
    let n = s.chars().count();
    if n >= w {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', w - n));
    } else if spec.zero && numeric && !s.contains(['I', 'N']) {
        let (sign, digits) = match s.as_bytes().first() {
            Some(b'-' | b'+' | b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', w - n));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', w - n));
        out.push_str(s);
    }
}

fn bad(verb: char, arg: &Value) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", a.type_name(), a.go_v()),
    }
}

fn sign(spec: &Spec, neg: bool) -> &'static str {
    if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    match arg {
        Value::Bool(b) => match verb {
            't' | 'v' => b.to_string(),
            _ => bad(verb, arg),
        },
        Value::Int(i) => {
            let neg = *i < 0;
            let mag = i.unsigned_abs();
            let body = match verb {
                'd' | 'v' => mag.to_string(),
                'x' => format!("{}{mag:x}", if spec.sharp { "0x" } else { "" }),
                'X' => format!("{}{mag:X}", if spec.sharp { "0X" } else { "" }),
                'o' => format!("{}{mag:o}", if spec.sharp { "0" } else { "" }),
                'b' => format!("{mag:b}"),
                'c' => {
                    return char::from_u32(u32::try_from(*i).unwrap_or(0xFFFD))
                        .unwrap_or('\u{FFFD}')
                        .to_string();
                }
                'q' => {
                    let c =
                        char::from_u32(u32::try_from(*i).unwrap_or(0xFFFD)).unwrap_or('\u{FFFD}');
                    return format!("{c:?}");
                }
                'e' | 'E' | 'f' | 'F' | 'g' | 'G' => return bad(verb, arg),
                _ => return bad(verb, arg),
            };
            let body = match spec.prec {
                Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
                _ => body,
            };
            format!("{}{body}", sign(spec, neg))
        }
        Value::Float(f) => format_float(verb, spec, *f).unwrap_or_else(|| bad(verb, arg)),
        Value::Str(s) | Value::Html(s) => match verb {
            's' | 'v' => match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            },
            'q' => {
                let mut q = String::new();
                if spec.sharp && !s.contains('`') {
                    q = format!("`{s}`");
                } else {
                    let _ = write_go_quoted(&mut q, s);
                }
                q
            }
            'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
            'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
            _ => bad(verb, arg),
        },
        Value::Time(_) => match verb {
            'v' | 's' => arg.go_v(),
            _ => bad(verb, arg),
        },
        Value::Nil => match verb {
            'v' => "<nil>".into(),
            _ => bad(verb, arg),
        },
        Value::Object(o) => match (verb, o.as_str()) {
            ('s' | 'v', Some(s)) => s.to_string(),
            ('s' | 'v', None) => o.go_v(),
            _ => bad(verb, arg),
        },
        Value::Map(..) | Value::List(..) | Value::Struct(_) => match verb {
            'v' | 's' => arg.go_v(),
            _ => bad(verb, arg),
        },
    }
}

/// The decimal digits of `f` (no trailing zeros) and the decimal point position, rounded to
/// `sig` significant digits, or shortest when `None`.
fn digits(f: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    let mut d: String = m.chars().filter(char::is_ascii_digit).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    if d == "0" {
        return (d, 1);
    }
    (d, exp + 1)
}

fn exp_suffix(letter: char, exp: i32) -> String {
    format!(
        "{letter}{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// `%e`: `d.dddde+XX`.
fn fmt_e(f: f64, prec: usize, letter: char) -> String {
    let s = format!("{:.prec$e}", f.abs());
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    format!("{m}{}", exp_suffix(letter, exp))
}

/// Go's `strconv.FormatFloat` for the `g` format.
fn fmt_g(f: f64, prec: Option<usize>, letter: char, sharp: bool) -> String {
    let (d, dp) = digits(f, prec.map(|p| p.max(1)));
    let nd = d.len() as i32;
    let mut eprec = prec.map_or(6, |p| p.max(1) as i32);
    if prec.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    let min_digits = if sharp {
        prec.map_or(6, |p| p.max(1))
    } else {
        0
    };
    if exp < -4 || exp >= eprec {
        let mut m = d.clone();
        while m.len() < min_digits {
            m.push('0');
        }
        let mant = if m.len() > 1 {
            format!("{}.{}", &m[..1], &m[1..])
        } else if sharp {
            format!("{m}.")
        } else {
            m
        };
        return format!("{mant}{}", exp_suffix(letter, exp));
    }
    // Fixed notation with the digits we have.
    let mut out = String::new();
    if dp <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-dp) as usize));
        out.push_str(&d);
    } else if dp as usize >= d.len() {
        out.push_str(&d);
        out.extend(std::iter::repeat_n('0', dp as usize - d.len()));
    } else {
        out.push_str(&d[..dp as usize]);
        out.push('.');
        out.push_str(&d[dp as usize..]);
    }
    if sharp {
        let have = d.len().max(dp.max(1) as usize);
        if !out.contains('.') {
            out.push('.');
        }
        out.extend(std::iter::repeat_n('0', min_digits.saturating_sub(have)));
    }
    out
}

fn format_float(verb: char, spec: &Spec, f: f64) -> Option<String> {
    if f.is_nan() {
        return Some(
            if spec.plus {
                "+NaN"
            } else if spec.space {
                " NaN"
            } else {
                "NaN"
            }
            .into(),
        );
    }
    if f.is_infinite() {
        // Go keeps the sign of an infinity even without `+`.
        return Some(
            if f < 0.0 {
                "-Inf"
            } else if spec.space && !spec.plus {
                " Inf"
            } else {
                "+Inf"
            }
            .into(),
        );
    }
    let neg = f.is_sign_negative();
    let body = match verb {
        'v' => fmt_g(f, spec.prec, 'e', spec.sharp),
        'g' => fmt_g(f, spec.prec, 'e', spec.sharp),
        'G' => fmt_g(f, spec.prec, 'E', spec.sharp),
        'e' => fmt_e(f, spec.prec.unwrap_or(6), 'e'),
        'E' => fmt_e(f, spec.prec.unwrap_or(6), 'E'),
        'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
        _ => return None,
    };
    Some(format!("{}{body}", sign(spec, neg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Value]) -> String {
        sprintf(fmt, args)
    }

    #[test]
    fn verbs_match_go() {
        assert_eq!(f("%.2f", &[Value::Float(1.005)]), "1.00");
        assert_eq!(f("%d", &[Value::Int(42)]), "42");
        assert_eq!(
            f(
                "%5.1f|%-6s|%06d",
                &[Value::Float(2.66666), "ab".into(), Value::Int(-42)]
            ),
            "  2.7|ab    |-00042"
        );
        assert_eq!(f("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(f("%g", &[Value::Float(1e6)]), "1e+06");
        assert_eq!(f("%g", &[Value::Float(100000.0)]), "100000");
        assert_eq!(f("%.4g", &[Value::Float(1.5)]), "1.5");
        assert_eq!(f("%.4g", &[Value::Float(123456.0)]), "1.235e+05");
        assert_eq!(f("%.3g", &[Value::Float(0.0001234)]), "0.000123");
        assert_eq!(f("%v", &[Value::Float(0.1)]), "0.1");
        assert_eq!(f("%q", &["a\"b".into()]), "\"a\\\"b\"");
        assert_eq!(f("%d", &[Value::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(f("%s", &[Value::Int(3)]), "%!s(int=3)");
        assert_eq!(f("%s %s", &["a".into()]), "a %!s(MISSING)");
        assert_eq!(f("%s", &["a".into(), Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(f("%x", &[Value::Int(255)]), "ff");
        assert_eq!(f("%t", &[Value::Bool(true)]), "true");
        assert_eq!(f("100%%", &[]), "100%");
        assert_eq!(f("%f", &[Value::Float(f64::INFINITY)]), "+Inf");
        assert_eq!(f("%.1f", &[Value::Float(f64::NAN)]), "NaN");
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), "a".into(), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&["a".into(), Value::Int(1)]), "a 1\n");
    }
}
