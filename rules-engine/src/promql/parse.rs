// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Parsing with Prometheus 2.42's dialect on top of `promql-parser`: the parser knows a newer
//! PromQL, so this module adds 2.42's `holt_winters` (renamed since) and rejects what 2.42 did
//! not have (newer functions and aggregators, `or` inside selectors, `fill` modifiers).

use std::sync::Once;

use promql_parser::parser::Expr;
use promql_parser::parser::function::Function;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::value::ValueType;

use super::EvalError;

/// The functions of Prometheus 2.42 (`promql/parser/functions.go` at v2.42.0).
pub const FUNCTIONS_2_42: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_sum",
    "histogram_fraction",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

static REGISTER: Once = Once::new();

/// Parses a PromQL expression as Prometheus 2.42 would accept it.
pub fn parse_expr(input: &str) -> Result<Expr, EvalError> {
    REGISTER.call_once(|| {
        // `holt_winters` is not in promql-parser's table (it became
        // `double_exponential_smoothing`); registering fails only on a name clash, which
        // would make the dialect check below reject the function, so the result is unused.
        let _ = promql_parser::parser::register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
    let expr =
        promql_parser::parser::parse(input).map_err(|e| EvalError::Parse(clean(input, &e)))?;
    if let Some(col) = out_of_range_duration(input) {
        return Err(EvalError::Parse(format!(
            "1:{col}: parse error: duration out of range"
        )));
    }
    check_dialect(&expr).map_err(|e| match e {
        EvalError::Parse(m) => EvalError::Parse(clean(input, &m)),
        other => other,
    })?;
    Ok(expr)
}

/// Rewrites promql-parser's message in Prometheus's words (`1:<col>: parse error: ...`), with
/// the column where it can be recovered from the query text.
fn clean(input: &str, msg: &str) -> String {
    let m = msg.trim().trim_start_matches("parse error: ");
    let end_col = input.trim_end().chars().count() + 1;
    let col_of = |needle: &str| input.find(needle).map(|i| input[..i].chars().count() + 1);
    let (col, text) = if m == "invalid promql query" {
        let t = input.trim_end();
        if t.ends_with([
            '+', '-', '*', '/', '%', '^', '(', ',', '{', '=', '<', '>', '~',
        ]) || t.ends_with(" and")
            || t.ends_with(" or")
            || t.ends_with(" unless")
            || t.ends_with(" bool")
        {
            (Some(end_col), "unexpected end of input".to_string())
        } else {
            (None, m.to_string())
        }
    } else if let Some(got) =
        m.strip_prefix("unary expression only allowed on expressions of type scalar or vector, got")
    {
        let got = match got.trim_start_matches(':').trim() {
            "matrix" => "range vector",
            "vector" => "instant vector",
            other => other,
        };
        let b = input.as_bytes();
        let col = (0..b.len()).find(|&i| {
            b[i] == b'-'
                && input[..i]
                    .trim_end()
                    .chars()
                    .last()
                    .is_none_or(|c| "(,+-*/%^=<>".contains(c))
        });
        (
            col.map(|i| input[..i].chars().count() + 1),
            format!(
                "unary expression only allowed on expressions of type scalar or instant vector, got \"{got}\""
            ),
        )
    } else if m == "comparisons between scalars must use BOOL modifier" {
        // Prometheus points at the operator.
        let b = input.as_bytes();
        let col = (0..b.len()).find(|&i| {
            matches!(b[i], b'>' | b'<')
                || (b[i] == b'=' && b.get(i + 1) == Some(&b'='))
                || (b[i] == b'!' && b.get(i + 1) == Some(&b'='))
        });
        (col.map(|i| input[..i].chars().count() + 1), m.to_string())
    } else if m == "unclosed left parenthesis" {
        (Some(end_col), m.to_string())
    } else if let Some(rest) = m.strip_prefix("unknown function with name ") {
        let name = rest.trim_matches(['\'', '"']);
        (
            col_of(&format!("{name}(")).or_else(|| col_of(name)),
            format!("unknown function with name \"{name}\""),
        )
    } else if let Some(rest) = m.strip_prefix("expected type ") {
        // "expected type X in call to function 'f', got Y"
        let type_name = |t: &str| match t {
            "matrix" => "range vector".to_string(),
            "vector" => "instant vector".to_string(),
            other => other.to_string(),
        };
        match (rest.split_once(" in "), rest.rsplit_once(", got ")) {
            (Some((want, ctx)), Some((_, got))) => {
                let ctx = ctx.rsplit_once(", got ").map_or(ctx, |c| c.0);
                let (ctx, col) = if let Some(f) = ctx.strip_prefix("call to function ") {
                    let f = f.trim_matches('\'');
                    let col = input.find(&format!("{f}(")).map(|i| {
                        let after = i + f.len() + 1;
                        let skip = input[after..].len() - input[after..].trim_start().len();
                        input[..after + skip].chars().count() + 1
                    });
                    (format!("call to function \"{f}\""), col)
                } else if ctx == "aggregation expression" && (want == "scalar" || want == "string")
                {
                    let col = ["topk", "bottomk", "quantile", "count_values"]
                        .iter()
                        .filter_map(|a| {
                            let i = input.find(a)?;
                            let open = i + input[i..].find('(')? + 1;
                            let skip = input[open..].len() - input[open..].trim_start().len();
                            Some(input[..open + skip].chars().count() + 1)
                        })
                        .min();
                    ("aggregation parameter".to_string(), col)
                } else if ctx == "aggregation expression" {
                    (ctx.to_string(), aggregation_arg_col(input))
                } else {
                    (ctx.to_string(), None)
                };
                (
                    col,
                    format!(
                        "expected type {} in {ctx}, got {}",
                        type_name(want),
                        type_name(got)
                    ),
                )
            }
            _ => (None, m.to_string()),
        }
    } else if let Some(rest) = m.strip_prefix("set operator '") {
        // "set operator 'and' not allowed in binary scalar expression"
        let (op, tail) = rest.split_once('\'').unwrap_or((rest, ""));
        (Some(1), format!("set operator \"{op}\"{tail}"))
    } else if let Some(rest) = m
        .strip_prefix("expected ")
        .filter(|r| r.contains(" argument(s) in call to '"))
    {
        // "expected 1 argument(s) in call to 'rate', got 2"
        let (head, tail) = rest.split_once(" in call to '").unwrap_or((rest, ""));
        let (f, got) = tail.split_once('\'').unwrap_or((tail, ""));
        (
            col_of(&format!("{f}(")).or(Some(1)),
            format!("expected {head} in call to \"{f}\"{got}"),
        )
    } else if let Some(rest) = m.strip_prefix("unexpected identifier '") {
        let (id, tail) = rest.split_once('\'').unwrap_or((rest, ""));
        (None, format!("unexpected identifier \"{id}\"{tail}"))
    } else if m.starts_with("binary expression must contain only")
        || m.starts_with("offset may not be set multiple times")
        || m.starts_with("@ <timestamp> may not be set multiple times")
        || m.starts_with("vector selector must contain at least one non-empty matcher")
        || m.starts_with("wrong number of arguments for aggregate expression")
    {
        // Prometheus points at the start of the node; for a whole query that is 1:1.
        (Some(1), m.to_string())
    } else if m.starts_with("unexpected end of input inside braces")
        || m.starts_with("unexpected end of input in offset")
    {
        (Some(end_col), m.to_string())
    } else if m == "unexpected end of input inside brackets" {
        (Some(end_col), "unclosed left bracket".to_string())
    } else if m.starts_with("unexpected character after '!'") {
        (col_of("!"), m.to_string())
    } else if m == "unexpected right bracket ']'" {
        (col_of("]"), m.to_string())
    } else if m == "ranges only allowed for vector selectors" {
        (col_of("][").map(|c| c + 1), m.to_string())
    } else {
        (None, m.to_string())
    };
    match col {
        Some(c) => format!("1:{c}: parse error: {text}"),
        None => format!("parse error: {text}"),
    }
}

/// The column of the first duration longer than Go's `time.Duration` holds (about 292
/// years), which Prometheus rejects as "duration out of range".
fn out_of_range_duration(input: &str) -> Option<usize> {
    const MAX_MS: i128 = i64::MAX as i128 / 1_000_000;
    let b = input.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if matches!(b[i], b'"' | b'\'' | b'`') {
            let q = b[i];
            i += 1;
            while i < b.len() && b[i] != q {
                i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let prev_ident =
            i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.');
        if !b[i].is_ascii_digit() || prev_ident {
            i += 1;
            continue;
        }
        let start = i;
        let mut total: i128 = 0;
        let mut units = 0;
        loop {
            let ds = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == ds {
                break;
            }
            let n: i128 = input[ds..i].parse().unwrap_or(i128::MAX / 4);
            let mult: i128 = if input[i..].starts_with("ms") {
                i += 2;
                1
            } else {
                let m = match b.get(i) {
                    Some(b's') => 1000,
                    Some(b'm') => 60_000,
                    Some(b'h') => 3_600_000,
                    Some(b'd') => 86_400_000,
                    Some(b'w') => 604_800_000,
                    Some(b'y') => 31_536_000_000,
                    _ => 0,
                };
                if m > 0 {
                    i += 1;
                }
                m
            };
            if mult == 0 {
                break;
            }
            units += 1;
            total = total.saturating_add(n.saturating_mul(mult));
        }
        if units > 0 && total > MAX_MS {
            return Some(input[..start].chars().count() + 1);
        }
        i = i.max(start + 1);
    }
    None
}

/// The column where the first aggregation's argument list starts (after `op [by (...)] (`).
fn aggregation_arg_col(input: &str) -> Option<usize> {
    const AGGS: &[&str] = &[
        "sum",
        "avg",
        "count",
        "min",
        "max",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "count_values",
        "quantile",
    ];
    let b = input.as_bytes();
    let word_at = |i: usize, w: &str| {
        input[i..].starts_with(w)
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && b.get(i + w.len())
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
    };
    let (i, w) = (0..b.len()).find_map(|i| AGGS.iter().find(|w| word_at(i, w)).map(|w| (i, *w)))?;
    let mut j = i + w.len();
    let skip_ws = |j: usize| j + (input[j..].len() - input[j..].trim_start().len());
    j = skip_ws(j);
    for kw in ["by", "without"] {
        if input[j..].starts_with(kw) {
            j = skip_ws(j + kw.len());
            if input[j..].starts_with('(') {
                j += input[j..].find(')')? + 1;
            }
            j = skip_ws(j);
        }
    }
    if !input[j..].starts_with('(') {
        return None;
    }
    let k = skip_ws(j + 1);
    Some(input[..k].chars().count() + 1)
}

fn check_dialect(e: &Expr) -> Result<(), EvalError> {
    match e {
        Expr::Aggregate(a) => {
            let ok = [
                T_SUM,
                T_AVG,
                T_COUNT,
                T_MIN,
                T_MAX,
                T_GROUP,
                T_STDDEV,
                T_STDVAR,
                T_TOPK,
                T_BOTTOMK,
                T_COUNT_VALUES,
                T_QUANTILE,
            ];
            if !ok.contains(&a.op.id()) {
                return Err(EvalError::Parse(format!(
                    "parse error: unknown aggregation operator {}",
                    a.op
                )));
            }
            check_dialect(&a.expr)?;
            if let Some(p) = &a.param {
                check_dialect(p)?;
            }
            Ok(())
        }
        Expr::Unary(u) => check_dialect(&u.expr),
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Err(EvalError::Parse(
                    "parse error: fill modifiers are not supported".into(),
                ));
            }
            check_dialect(&b.lhs)?;
            check_dialect(&b.rhs)
        }
        Expr::Paren(p) => check_dialect(&p.expr),
        Expr::Subquery(s) => check_dialect(&s.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(&vs.matchers),
        Expr::MatrixSelector(ms) => check_selector(&ms.vs.matchers),
        Expr::Call(c) => {
            if !FUNCTIONS_2_42.contains(&c.func.name) {
                return Err(EvalError::Parse(format!(
                    "parse error: unknown function with name \"{}\"",
                    c.func.name
                )));
            }
            c.args.args.iter().try_for_each(|a| check_dialect(a))
        }
        Expr::Extension(_) => Err(EvalError::Parse(
            "parse error: unsupported expression".into(),
        )),
    }
}

fn check_selector(m: &promql_parser::label::Matchers) -> Result<(), EvalError> {
    if m.or_matchers.is_empty() {
        Ok(())
    } else {
        Err(EvalError::Parse(
            "parse error: unexpected \"or\" in label matching".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_holt_winters_and_rejects_newer_functions() {
        assert!(parse_expr("holt_winters(foo[5m], 0.5, 0.5)").is_ok());
        assert!(parse_expr("rate(foo[5m])").is_ok());
        assert_eq!(
            parse_expr("test +").unwrap_err().to_string(),
            "1:7: parse error: unexpected end of input"
        );
        assert_eq!(
            parse_expr("rate(a)").unwrap_err().to_string(),
            "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"
        );
        assert_eq!(
            parse_expr("a offset 10000000y").unwrap_err().to_string(),
            "1:10: parse error: duration out of range"
        );
        assert!(parse_expr("a[200y]").is_ok());
        assert!(parse_expr(r#"a{b="99999999999y\"x"}"#).is_ok());
        let err = parse_expr("mad_over_time(foo[5m])").unwrap_err();
        assert!(err.to_string().contains("unknown function"), "{err}");
        assert!(parse_expr("limitk(2, foo)").is_err());
    }
}
