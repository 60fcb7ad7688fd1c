// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Binary operators: scalar/scalar, vector/scalar and vector/vector with `on`, `ignoring`,
//! `group_left`, `group_right`, `bool` and the set operators. Ported from `VectorBinop`,
//! `VectorAnd/Or/Unless`, `VectorscalarBinop`, `resultMetric`, `scalarBinop` and
//! `vectorElemBinop` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/engine.go#L1947-L2290>,
//! including their error messages.

use std::collections::{HashMap, HashSet};

use promql_parser::label::Labels as NameList;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::EvalError;
use super::eval::{El, Evaluator};
use super::functions::gomath;
use super::functions::math::go_pow;
use crate::model::{Labels, METRIC_NAME};
use crate::storage::Series;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

struct Matching<'a> {
    on: bool,
    names: Vec<String>,
    card: Card,
    include: &'a [String],
}

fn names(l: &NameList) -> Vec<String> {
    l.labels.clone()
}

pub(crate) fn eval_binary(ev: &Evaluator<'_>, b: &BinaryExpr) -> Result<Vec<Series>, EvalError> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
    match (lt, rt) {
        (ValueType::Scalar, ValueType::Scalar) => ev.range_eval(&[&b.lhs, &b.rhs], |v, _| {
            let l = v[0].first().map_or(f64::NAN, |e| e.v);
            let r = v[1].first().map_or(f64::NAN, |e| e.v);
            Ok(vec![El::scalar(scalar_binop(op, l, r)?)])
        }),
        (ValueType::Vector, ValueType::Scalar) | (ValueType::Scalar, ValueType::Vector) => {
            let swap = lt == ValueType::Scalar;
            ev.range_eval(&[&b.lhs, &b.rhs], |v, _| {
                let (vec, sc) = if swap { (&v[1], &v[0]) } else { (&v[0], &v[1]) };
                let s = sc.first().map_or(f64::NAN, |e| e.v);
                vector_scalar(op, vec, s, swap, return_bool)
            })
        }
        (ValueType::Vector, ValueType::Vector) => {
            let (on, list) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                Some(LabelModifier::Include(l)) => (true, names(l)),
                Some(LabelModifier::Exclude(l)) => (false, names(l)),
                None => (false, Vec::new()),
            };
            let empty: Vec<String> = Vec::new();
            let (card, include) = match b.modifier.as_ref().map(|m| &m.card) {
                Some(VectorMatchCardinality::ManyToOne(l)) => (Card::ManyToOne, &l.labels),
                Some(VectorMatchCardinality::OneToMany(l)) => (Card::OneToMany, &l.labels),
                _ => (Card::OneToOne, &empty),
            };
            let m = Matching {
                on,
                names: list,
                card,
                include,
            };
            let sig = |l: &Labels| signature(l, &m);
            match op {
                T_LAND | T_LOR | T_LUNLESS => {
                    ev.range_eval(&[&b.lhs, &b.rhs], |v, _| Ok(set_op(op, &v[0], &v[1], &sig)))
                }
                _ => ev.range_eval(&[&b.lhs, &b.rhs], |v, _| {
                    vector_binop(op, &v[0], &v[1], &m, return_bool)
                }),
            }
        }
        _ => Err(EvalError::exec(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            super::type_name(lt),
            super::type_name(rt)
        ))),
    }
}

fn signature(l: &Labels, m: &Matching<'_>) -> Labels {
    if m.on {
        l.keep(&m.names)
    } else {
        let mut d = l.drop_names(&m.names);
        d.remove(METRIC_NAME);
        d
    }
}

fn set_op(op: TokenId, lhs: &[El], rhs: &[El], sig: &dyn Fn(&Labels) -> Labels) -> Vec<El> {
    match op {
        T_LAND => {
            if lhs.is_empty() || rhs.is_empty() {
                return Vec::new();
            }
            let right: HashSet<Labels> = rhs.iter().map(|e| sig(&e.labels)).collect();
            lhs.iter()
                .filter(|e| right.contains(&sig(&e.labels)))
                .cloned()
                .collect()
        }
        T_LOR => {
            if lhs.is_empty() {
                return rhs.to_vec();
            }
            if rhs.is_empty() {
                return lhs.to_vec();
            }
            let left: HashSet<Labels> = lhs.iter().map(|e| sig(&e.labels)).collect();
            let mut out = lhs.to_vec();
            out.extend(
                rhs.iter()
                    .filter(|e| !left.contains(&sig(&e.labels)))
                    .cloned(),
            );
            out
        }
        _ => {
            if lhs.is_empty() || rhs.is_empty() {
                return lhs.to_vec();
            }
            let right: HashSet<Labels> = rhs.iter().map(|e| sig(&e.labels)).collect();
            lhs.iter()
                .filter(|e| !right.contains(&sig(&e.labels)))
                .cloned()
                .collect()
        }
    }
}

fn vector_binop(
    op: TokenId,
    lhs: &[El],
    rhs: &[El],
    m: &Matching<'_>,
    return_bool: bool,
) -> Result<Vec<El>, EvalError> {
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let (lhs, rhs) = if m.card == Card::OneToMany {
        (rhs, lhs)
    } else {
        (lhs, rhs)
    };
    let mut right: HashMap<Labels, &El> = HashMap::with_capacity(rhs.len());
    for rs in rhs {
        let sig = signature(&rs.labels, m);
        if let Some(dup) = right.get(&sig) {
            let one_side = if m.card == Card::OneToMany {
                "left"
            } else {
                "right"
            };
            let matched = if m.on {
                rs.labels.keep(&m.names)
            } else {
                let mut d = rs.labels.drop_names(&m.names);
                d.remove(METRIC_NAME);
                d
            };
            return Err(EvalError::exec(format!(
                "found duplicate series for the match group {matched} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                rs.labels, dup.labels
            )));
        }
        right.insert(sig, rs);
    }
    // For one-to-one, the set of matched signatures; for many-to-one, the result label sets
    // already produced per signature.
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.labels, m);
        let Some(rs) = right.get(&sig) else {
            continue;
        };
        let (vl, vr) = if m.card == Card::OneToMany {
            (rs.v, ls.v)
        } else {
            (ls.v, rs.v)
        };
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let mut metric = result_metric(&ls.labels, &rs.labels, op, m);
        if return_bool {
            metric.remove(METRIC_NAME);
        }
        if m.card == Card::OneToOne {
            if matched.contains_key(&sig) {
                return Err(EvalError::exec(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
            matched.insert(sig, HashSet::new());
        } else {
            let set = matched.entry(sig).or_default();
            if !set.insert(metric.clone()) {
                return Err(EvalError::exec(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
        }
        out.push(El::new(metric, value));
    }
    Ok(out)
}

fn result_metric(lhs: &Labels, rhs: &Labels, op: TokenId, m: &Matching<'_>) -> Labels {
    let mut l = lhs.clone();
    if drops_metric_name(op) {
        l.remove(METRIC_NAME);
    }
    if m.card == Card::OneToOne {
        l = if m.on {
            l.keep(&m.names)
        } else {
            l.drop_names(&m.names)
        };
    }
    for name in m.include {
        match rhs.get(name) {
            Some(v) => {
                let v = v.to_string();
                l.set(name, &v);
            }
            None => l.remove(name),
        }
    }
    l
}

/// Whether the operator drops `__name__` from its result (`shouldDropMetricName`).
pub(crate) fn drops_metric_name(op: TokenId) -> bool {
    matches!(op, T_ADD | T_SUB | T_DIV | T_MUL | T_POW | T_MOD)
}

fn vector_scalar(
    op: TokenId,
    vec: &[El],
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<El>, EvalError> {
    let mut out = Vec::with_capacity(vec.len());
    let comparison = is_comparison(op);
    for e in vec {
        let (lv, rv) = if swap { (s, e.v) } else { (e.v, s) };
        let (mut value, mut keep) = elem_binop(op, lv, rv)?;
        if comparison && swap {
            value = rv;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_metric_name(op) || return_bool {
                e.labels.without_metric_name()
            } else {
                e.labels.clone()
            };
            out.push(El::new(labels, value));
        }
    }
    Ok(out)
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn scalar_binop(op: TokenId, l: f64, r: f64) -> Result<f64, EvalError> {
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    Ok(match op {
        T_EQLC => b(l == r),
        T_NEQ => b(l != r),
        T_GTR => b(l > r),
        T_LSS => b(l < r),
        T_GTE => b(l >= r),
        T_LTE => b(l <= r),
        _ => elem_binop(op, l, r)?.0,
    })
}

/// One operation between two values: the result and whether a comparison keeps it.
fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (go_pow(l, r), true),
        T_MOD => (l % r, true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        T_ATAN2 => (gomath::atan2(l, r), true),
        _ => {
            return Err(EvalError::exec(format!(
                "operator {} not allowed for operations between vectors",
                promql_parser::parser::token::TokenType::new(op)
            )));
        }
    })
}
