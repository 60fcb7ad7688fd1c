// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! The series notation of promtool test files: `metric{label="value"} 1+2x3 _ stale ...`
//! (Prometheus's `parser.ParseSeriesDesc` grammar, `promql/parser/generated_parser.y@v2.42.0`)
//! and the metric notation of `exp_samples` labels (`parser.ParseMetric`). Errors carry the
//! `1:<col>: parse error: ...` prefix Prometheus prints.

use crate::model::{Label, Labels, stale_nan};

/// One value of an expanded sequence; `None` is an omitted (`_`) step.
pub type SeqValue = Option<f64>;

/// A parse error at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub msg: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1:{}: parse error: {}", self.pos + 1, self.msg)
    }
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        pos,
        msg: msg.into(),
    })
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n')
        {
            self.i += 1;
        }
    }

    fn ident(&mut self, metric: bool) -> &str {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
            if !ok || (self.i == start && c.is_ascii_digit()) {
                break;
            }
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// A Go-syntax quoted string (`"..."`, `'...'` or a raw `` `...` ``).
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        let Some(q) = self.bump() else {
            return err(start, "unexpected end of input");
        };
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return err(start, "unterminated quoted string");
            };
            if c == q {
                return Ok(out);
            }
            if c == '\n' && q != '`' {
                return err(start, "unterminated quoted string");
            }
            if c != '\\' || q == '`' {
                out.push(c);
                continue;
            }
            let Some(e) = self.bump() else {
                return err(start, "unterminated quoted string");
            };
            match e {
                'a' => out.push('\x07'),
                'b' => out.push('\x08'),
                'f' => out.push('\x0c'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'v' => out.push('\x0b'),
                '\\' | '"' | '\'' => out.push(e),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = self.s.get(self.i..self.i + n).unwrap_or("");
                    let Some(ch) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                    else {
                        return err(self.i, "invalid escape sequence");
                    };
                    self.i += n;
                    out.push(ch);
                }
                '0'..='7' => {
                    let oct = self.s.get(self.i - 1..self.i + 2).unwrap_or("");
                    let Some(ch) = u32::from_str_radix(oct, 8).ok().and_then(char::from_u32) else {
                        return err(self.i, "invalid escape sequence");
                    };
                    self.i += 2;
                    out.push(ch);
                }
                _ => return err(self.i - 1, "unknown escape sequence"),
            }
        }
    }
}

/// Parses `name{l="v", ...}` (either part optional, not both) and returns the labels and the
/// offset after the metric.
fn metric(c: &mut Cursor<'_>) -> Result<Labels, ParseError> {
    let mut pairs: Vec<Label> = Vec::new();
    c.skip_ws();
    let name = c.ident(true).to_string();
    if !name.is_empty() {
        pairs.push(Label::new("__name__", name.clone()));
    }
    if c.peek() == Some('{') {
        c.bump();
        loop {
            c.skip_ws();
            match c.peek() {
                Some('}') => {
                    c.bump();
                    break;
                }
                None => return err(c.i, "unexpected end of input inside braces"),
                Some(ch) if ch.is_ascii_alphabetic() || ch == '_' => {}
                Some(ch) => {
                    return err(
                        c.i,
                        format!("unexpected character inside braces: {}", go_quote_rune(ch)),
                    );
                }
            }
            let lname = c.ident(false).to_string();
            c.skip_ws();
            match c.peek() {
                Some('=') => {
                    c.bump();
                }
                Some(ch) if !"!~,}\"'`".contains(ch) && !ch.is_whitespace() => {
                    return err(
                        c.i,
                        format!("unexpected character inside braces: {}", go_quote_rune(ch)),
                    );
                }
                _ => return err(c.i, "unexpected token in label set, expected \"=\""),
            }
            c.skip_ws();
            match c.peek() {
                Some('"' | '\'' | '`') => {}
                Some(ch) if !"!=~,}".contains(ch) && !ch.is_ascii_alphanumeric() => {
                    return err(
                        c.i,
                        format!("unexpected character inside braces: {}", go_quote_rune(ch)),
                    );
                }
                _ => return err(c.i, "unexpected token in label set, expected string"),
            }
            let v = c.string()?;
            if pairs.iter().any(|l| l.name == lname) {
                return err(c.i, format!("duplicate label {lname:?}"));
            }
            pairs.push(Label::new(lname, v));
            c.skip_ws();
            match c.peek() {
                Some(',') => {
                    c.bump();
                }
                Some('}') => {}
                None => return err(c.i, "unexpected end of input inside braces"),
                Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || "\"'`".contains(ch) => {
                    return err(
                        c.i,
                        "unexpected identifier in label set, expected \",\" or \"}\"",
                    );
                }
                Some(ch) => {
                    return err(
                        c.i,
                        format!("unexpected character inside braces: {}", go_quote_rune(ch)),
                    );
                }
            }
        }
    } else if name.is_empty() {
        return match c.peek() {
            None => err(c.i, "unexpected end of input"),
            Some(ch) => err(c.i, format!("unexpected character: {}", go_quote_rune(ch))),
        };
    }
    Labels::new(pairs).map_err(|e| ParseError {
        pos: c.i,
        msg: e.to_string(),
    })
}

fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '\\' => "'\\\\'".into(),
        c if c.is_control() => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

/// Parses an `exp_samples` label text (`parser.ParseMetric`).
pub fn parse_metric(s: &str) -> Result<Labels, ParseError> {
    if s.trim().is_empty() {
        return Ok(Labels::empty());
    }
    let mut c = Cursor { s, i: 0 };
    let l = metric(&mut c)?;
    c.skip_ws();
    match c.peek() {
        None => Ok(l),
        Some(ch) => err(c.i, format!("unexpected character: {}", go_quote_rune(ch))),
    }
}

/// Parses one `input_series` line, `metric values...`, into its labels and expanded values.
pub fn parse_series_desc(line: &str) -> Result<(Labels, Vec<SeqValue>), ParseError> {
    let mut c = Cursor { s: line, i: 0 };
    let labels = metric(&mut c)?;
    let rest_start = c.i;
    let rest = &line[rest_start..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return err(rest_start, "unexpected character after metric");
    }
    let mut vals = Vec::new();
    let mut off = rest_start;
    for chunk in rest.split([' ', '\t']) {
        if !chunk.is_empty() {
            expand_item(chunk, off, &mut vals)?;
        }
        off += chunk.len() + 1;
    }
    Ok((labels, vals))
}

/// Number text as Prometheus's lexer reads it in series values: `[+-]?` digits, fraction,
/// exponent, or `Inf`/`NaN` in any case. Returns the value and the length consumed.
fn number_at(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'+') => {
            i = 1;
            false
        }
        Some(b'-') => {
            i = 1;
            true
        }
        _ => false,
    };
    let body = &s[i..];
    let word: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let lw = word.to_ascii_lowercase();
    if lw == "inf" || lw == "nan" {
        let v = if lw == "inf" { f64::INFINITY } else { f64::NAN };
        return Some((if neg { -v } else { v }, i + word.len()));
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == start || (i == start + 1 && b[start] == b'.') {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let d = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > d {
            i = j;
        }
    }
    let text = &s[start..i];
    let v = parse_go_number(text)?;
    Some((if neg { -v } else { v }, i))
}

/// `parser.number`: `strconv.ParseInt(s, 0, 64)` first (so a leading 0 means octal), then
/// `strconv.ParseFloat`.
fn parse_go_number(t: &str) -> Option<f64> {
    if t.len() > 1 && t.starts_with('0') && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = i64::from_str_radix(&t[1..], 8) {
            return Some(v as f64);
        }
    } else if let Ok(v) = t.parse::<i64>() {
        return Some(v as f64);
    }
    t.parse::<f64>().ok()
}

fn parse_uint(s: &str, pos: usize) -> Result<u64, ParseError> {
    s.parse::<u64>().or_else(|_| {
        if s.is_empty() {
            err(pos, "unexpected end of input in series values")
        } else {
            err(
                pos,
                format!("invalid repetition in series values: strconv.ParseUint: parsing {s:?}: invalid syntax"),
            )
        }
    })
}

fn expand_item(chunk: &str, pos: usize, out: &mut Vec<SeqValue>) -> Result<(), ParseError> {
    if let Some(rest) = chunk.strip_prefix('_') {
        if rest.is_empty() {
            out.push(None);
            return Ok(());
        }
        let Some(n) = rest.strip_prefix('x') else {
            return err(pos + 1, "unexpected identifier in series values");
        };
        let n = parse_uint(n, pos + 2)?;
        out.extend(std::iter::repeat_n(None, usize::try_from(n).unwrap_or(0)));
        return Ok(());
    }
    let (first, used) = if chunk.starts_with("stale") {
        (stale_nan(), 5)
    } else {
        match number_at(chunk) {
            Some(x) => x,
            None if chunk.starts_with('x') => return err(pos, "unexpected \"x\""),
            None => {
                return err(
                    pos,
                    "unexpected identifier in series values, expected number or \"stale\"",
                );
            }
        }
    };
    let rest = &chunk[used..];
    if rest.is_empty() {
        out.push(Some(first));
        return Ok(());
    }
    if let Some(n) = rest.strip_prefix('x') {
        let n = parse_uint(n, pos + used + 1)?;
        for _ in 0..=n {
            out.push(Some(first));
        }
        return Ok(());
    }
    if rest.starts_with(['+', '-']) {
        let Some((delta, dused)) = number_at(rest) else {
            return err(pos + used, "unexpected character in series values");
        };
        let after = &rest[dused..];
        let Some(n) = after.strip_prefix('x') else {
            return err(
                pos + used + dused,
                "unexpected end of input in series values, expected \"x\"",
            );
        };
        let n = parse_uint(n, pos + used + dused + 1)?;
        let mut v = first;
        for _ in 0..=n {
            out.push(Some(v));
            v += delta;
        }
        return Ok(());
    }
    err(pos + used, "unexpected character in series values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    fn vals(s: &str) -> Vec<SeqValue> {
        parse_series_desc(&format!("m {s}")).unwrap().1
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(
            vals("0+10x3"),
            vec![Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
        );
        assert_eq!(vals("5-1x2"), vec![Some(5.0), Some(4.0), Some(3.0)]);
        assert_eq!(
            vals("1x2 _ _x2 3"),
            vec![Some(1.0); 3]
                .into_iter()
                .chain([None, None, None, Some(3.0)])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            vals("1e3 -2 +Inf"),
            vec![Some(1000.0), Some(-2.0), Some(f64::INFINITY)]
        );
        assert_eq!(vals("-1+0.5x1"), vec![Some(-1.0), Some(-0.5)]);
        let v = vals("stale NaN");
        assert!(is_stale_nan(v[0].unwrap()));
        assert!(v[1].unwrap().is_nan() && !is_stale_nan(v[1].unwrap()));
        assert_eq!(vals(""), vec![]);
    }

    #[test]
    fn accumulates_like_prometheus() {
        // $1 += $2 each step, not a + i*b.
        let v = vals("0.1+0.1x2");
        assert_eq!(v[2], Some(0.1 + 0.1 + 0.1));
    }

    #[test]
    fn labels_and_errors() {
        let (l, _) = parse_series_desc(r#"up{job="a", instance='b',} 1"#).unwrap();
        assert_eq!(l.to_string(), r#"{__name__="up", instance="b", job="a"}"#);
        let e = parse_series_desc(r#"up{job="prometheus", instance="localhost:9090" 0+0x1440"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "1:48: parse error: unexpected character inside braces: '0'"
        );
        assert!(parse_series_desc("up 1+x").is_err());
        assert_eq!(parse_metric("{}").unwrap(), Labels::empty());
        assert_eq!(
            parse_metric("test").unwrap().to_string(),
            r#"{__name__="test"}"#
        );
    }
}
