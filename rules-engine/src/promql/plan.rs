// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Stage 1, plan and select: find every selector with the window of time it can read, and query
//! storage once per selector (Prometheus's `populateSeries` and `getTimeRangesForSelector` in
//! `promql/engine.go@v2.42.0`).
//!
//! The walk is a small recursion rather than `walk_expr`, because the window of a selector
//! depends on the subqueries above it; it carries the span of evaluation times of the node.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::EvalError;
use crate::model::METRIC_NAME;
use crate::storage::{Queryable, Series, TimeRange};

/// The series of every selector, keyed by the selector's address in the AST (the AST is
/// borrowed for the whole evaluation, so addresses are stable).
#[derive(Debug, Default)]
pub(crate) struct Prefetched {
    series: HashMap<usize, Vec<Series>>,
}

impl Prefetched {
    pub(crate) fn get(&self, vs: &VectorSelector) -> &[Series] {
        self.series.get(&key(vs)).map_or(&[], Vec::as_slice)
    }
}

fn key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

/// The matchers of a selector, with the metric name as a `__name__` matcher.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut m = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        m.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    m
}

/// Offset in milliseconds (negative offsets look ahead).
pub(crate) fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => super::duration_ms(*d),
        Some(Offset::Neg(d)) => -super::duration_ms(*d),
    }
}

/// The absolute time an `@` modifier pins, given the query's start and end.
pub(crate) fn at_ms(at: Option<&AtModifier>, top_start: i64, top_end: i64) -> Option<i64> {
    match at? {
        AtModifier::Start => Some(top_start),
        AtModifier::End => Some(top_end),
        AtModifier::At(t) => Some(match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => super::duration_ms(d),
            Err(e) => -super::duration_ms(e.duration()),
        }),
    }
}

struct Walk {
    top: (i64, i64),
    lookback: i64,
    out: Vec<(usize, Vec<Matcher>, TimeRange)>,
}

impl Walk {
    fn selector(&mut self, vs: &VectorSelector, span: (i64, i64), range: Option<i64>) {
        let off = offset_ms(vs.offset.as_ref());
        let (lo, hi) = match at_ms(vs.at.as_ref(), self.top.0, self.top.1) {
            Some(t) => (t.saturating_sub(off), t.saturating_sub(off)),
            None => (span.0.saturating_sub(off), span.1.saturating_sub(off)),
        };
        let back = range.unwrap_or(self.lookback);
        self.out.push((
            key(vs),
            selector_matchers(vs),
            TimeRange::new(lo.saturating_sub(back), hi),
        ));
    }

    fn expr(&mut self, e: &Expr, span: (i64, i64)) {
        match e {
            Expr::Aggregate(a) => {
                self.expr(&a.expr, span);
                if let Some(p) = &a.param {
                    self.expr(p, span);
                }
            }
            Expr::Unary(u) => self.expr(&u.expr, span),
            Expr::Binary(b) => {
                self.expr(&b.lhs, span);
                self.expr(&b.rhs, span);
            }
            Expr::Paren(p) => self.expr(&p.expr, span),
            Expr::Subquery(s) => {
                let off = offset_ms(s.offset.as_ref());
                let range = super::duration_ms(s.range);
                let inner = match at_ms(s.at.as_ref(), self.top.0, self.top.1) {
                    Some(t) => (
                        t.saturating_sub(off).saturating_sub(range),
                        t.saturating_sub(off),
                    ),
                    None => (
                        span.0.saturating_sub(off).saturating_sub(range),
                        span.1.saturating_sub(off),
                    ),
                };
                self.expr(&s.expr, inner);
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
            Expr::VectorSelector(vs) => self.selector(vs, span, None),
            Expr::MatrixSelector(ms) => {
                self.selector(&ms.vs, span, Some(super::duration_ms(ms.range)))
            }
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.expr(a, span);
                }
            }
        }
    }
}

/// Queries storage once per selector of `expr` evaluated over `[start, end]`.
pub(crate) fn prefetch(
    q: &dyn Queryable,
    expr: &Expr,
    start: i64,
    end: i64,
    lookback: i64,
) -> Result<Prefetched, EvalError> {
    let mut w = Walk {
        top: (start, end),
        lookback,
        out: Vec::new(),
    };
    w.expr(expr, (start, end));
    // Prometheus trims each selector's data to its own hinted window (`SelectHints` start and
    // end), which is also what a window pinned with `@` that moves with later steps (see
    // `invariant`) can read: nothing beyond the pinned window.
    let mut series = HashMap::with_capacity(w.out.len());
    for (k, matchers, range) in w.out {
        let got = q.select(&matchers, range).map_err(EvalError::Storage)?;
        series.insert(k, got);
    }
    Ok(Prefetched { series })
}
