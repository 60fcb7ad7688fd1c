// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Aggregation operators with `by`/`without`, ported from `evaluator.aggregation` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/engine.go#L2327-L2616>:
//! the same order of floating-point operations (plain `+=` for sum, the incremental mean for
//! avg, Welford for stddev/stdvar; 2.42 has no Kahan summation here), the same heap discipline
//! for topk/bottomk (Go's `container/heap`), and the same group order (first seen).

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::EvalError;
use super::eval::{El, Evaluator};
use super::functions::histogram::quantile;
use super::functions::sort::{go_sort, heap_pop, heap_push};
use crate::model::{Labels, METRIC_NAME, format_go_float, is_valid_label_name};
use crate::storage::Series;

pub(crate) fn eval_aggregate(
    ev: &Evaluator<'_>,
    a: &AggregateExpr,
) -> Result<Vec<Series>, EvalError> {
    let op = a.op.id();
    let (without, mut grouping) = match &a.modifier {
        Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
        None => (false, Vec::new()),
    };
    grouping.sort();
    if op == T_COUNT_VALUES {
        let Some(label) = a.param.as_deref().and_then(string_param) else {
            return Err(EvalError::exec("count_values requires a string parameter"));
        };
        return ev.range_eval(&[&a.expr], |v, _| {
            aggregate(op, &grouping, without, Param::Label(&label), &v[0])
        });
    }
    match a.param.as_deref() {
        Some(p) => ev.range_eval(&[p, &a.expr], |v, _| {
            let x = v[0].first().map_or(f64::NAN, |e| e.v);
            aggregate(op, &grouping, without, Param::Num(x), &v[1])
        }),
        None => ev.range_eval(&[&a.expr], |v, _| {
            aggregate(op, &grouping, without, Param::None, &v[0])
        }),
    }
}

fn string_param(e: &Expr) -> Option<String> {
    match e {
        Expr::StringLiteral(s) => Some(s.val.clone()),
        Expr::Paren(p) => string_param(&p.expr),
        _ => None,
    }
}

enum Param<'a> {
    None,
    Num(f64),
    Label(&'a str),
}

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: u64,
    heap: Vec<El>,
}

fn less_value(h: &[El], i: usize, j: usize) -> bool {
    h[i].v.is_nan() || h[i].v < h[j].v
}

fn less_reverse(h: &[El], i: usize, j: usize) -> bool {
    h[i].v.is_nan() || h[i].v > h[j].v
}

/// Whether `f` fits an int64 (`convertibleToInt64`).
fn convertible_to_i64(f: f64) -> bool {
    // engine.go's maxInt64 (9223372036854774784) and minInt64.
    (-9_223_372_036_854_775_808.0..=9_223_372_036_854_774_784.0).contains(&f)
}

fn group_key(metric: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        let mut l = metric.drop_names(grouping);
        l.remove(METRIC_NAME);
        l
    } else {
        metric.keep(grouping)
    }
}

fn aggregate(
    op: TokenId,
    grouping: &[String],
    without: bool,
    param: Param<'_>,
    vec: &[El],
) -> Result<Vec<El>, EvalError> {
    let mut k: i64 = 0;
    let mut q = 0.0;
    let mut value_label = "";
    let mut grouping_owned;
    let mut grouping = grouping;
    match (op, &param) {
        (T_TOPK | T_BOTTOMK, Param::Num(f)) => {
            if !convertible_to_i64(*f) {
                return Err(EvalError::exec(format!(
                    "Scalar value {} overflows int64",
                    super::functions::go_fmt_v(*f)
                )));
            }
            k = *f as i64;
            if k < 1 {
                return Ok(Vec::new());
            }
        }
        (T_QUANTILE, Param::Num(f)) => q = *f,
        (T_COUNT_VALUES, Param::Label(l)) => {
            if !is_valid_label_name(l) {
                return Err(EvalError::exec(format!(
                    "invalid label name {}",
                    go_quote(l)
                )));
            }
            value_label = l;
            if !without {
                grouping_owned = grouping.to_vec();
                grouping_owned.push(value_label.to_string());
                grouping_owned.sort();
                grouping = &grouping_owned;
            }
        }
        _ => {}
    }

    let mut groups: Vec<Group> = Vec::new();
    let mut index: hashbrown::HashMap<Labels, usize> = hashbrown::HashMap::new();
    for s in vec {
        let metric = if op == T_COUNT_VALUES {
            let mut m = s.labels.clone();
            m.set(value_label, &format_go_float(s.v));
            m
        } else {
            s.labels.clone()
        };
        let key = group_key(&metric, grouping, without);
        let Some(&gi) = index.get(&key) else {
            let labels = if without || !grouping.is_empty() {
                key.clone()
            } else {
                Labels::empty()
            };
            let mut g = Group {
                labels,
                value: s.v,
                mean: s.v,
                count: 1,
                heap: Vec::new(),
            };
            match op {
                T_STDVAR | T_STDDEV => g.value = 0.0,
                T_TOPK | T_QUANTILE | T_BOTTOMK => {
                    g.heap.push(El::new(s.labels.clone(), s.v));
                }
                T_GROUP => g.value = 1.0,
                _ => {}
            }
            index.insert(key, groups.len());
            groups.push(g);
            continue;
        };
        let g = &mut groups[gi];
        match op {
            T_SUM => g.value += s.v,
            T_AVG => {
                g.count += 1;
                if g.mean.is_infinite() {
                    if s.v.is_infinite() && (g.mean > 0.0) == (s.v > 0.0) {
                        continue;
                    }
                    if !s.v.is_infinite() && !s.v.is_nan() {
                        continue;
                    }
                }
                let n = g.count as f64;
                g.mean += s.v / n - g.mean / n;
            }
            T_GROUP => {}
            T_MAX => {
                if g.value < s.v || g.value.is_nan() {
                    g.value = s.v;
                }
            }
            T_MIN => {
                if g.value > s.v || g.value.is_nan() {
                    g.value = s.v;
                }
            }
            T_COUNT | T_COUNT_VALUES => g.count += 1,
            T_STDVAR | T_STDDEV => {
                g.count += 1;
                let delta = s.v - g.mean;
                g.mean += delta / g.count as f64;
                g.value += delta * (s.v - g.mean);
            }
            T_TOPK => topk_insert(&mut g.heap, k, s, true),
            T_BOTTOMK => topk_insert(&mut g.heap, k, s, false),
            T_QUANTILE => g.heap.push(s.clone()),
            _ => {
                return Err(EvalError::exec(format!(
                    "expected aggregation operator but got {}",
                    promql_parser::parser::token::TokenType::new(op)
                )));
            }
        }
    }

    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        let v = match op {
            T_AVG => g.mean,
            T_COUNT | T_COUNT_VALUES => g.count as f64,
            T_STDVAR => g.value / g.count as f64,
            T_STDDEV => (g.value / g.count as f64).sqrt(),
            T_TOPK | T_BOTTOMK => {
                let less = if op == T_TOPK {
                    less_value
                } else {
                    less_reverse
                };
                if g.heap.len() > 1 {
                    // sort.Sort(sort.Reverse(heap)).
                    go_sort(&mut g.heap, |h, i, j| less(h, j, i));
                }
                out.extend(g.heap);
                continue;
            }
            T_QUANTILE => {
                let mut vals: Vec<f64> = g.heap.iter().map(|e| e.v).collect();
                quantile(q, &mut vals)
            }
            _ => g.value,
        };
        out.push(El::new(g.labels, v));
    }
    Ok(out)
}

fn topk_insert(heap: &mut Vec<El>, k: i64, s: &El, top: bool) {
    let less = if top { less_value } else { less_reverse };
    let len = heap.len() as i64;
    let replace = heap
        .first()
        .is_some_and(|h| h.v.is_nan() || if top { h.v < s.v } else { h.v > s.v });
    if len < k || replace {
        if len == k {
            if k == 1 {
                heap[0] = s.clone();
                return;
            }
            heap_pop(heap, less);
        }
        heap_push(heap, s.clone(), less);
    }
}

fn go_quote(s: &str) -> String {
    let mut out = String::new();
    let _ = crate::model::write_go_quoted(&mut out, s);
    out
}
