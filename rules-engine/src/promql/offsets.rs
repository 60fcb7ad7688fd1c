// Copyright 2021 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! How Prometheus 2.42 applies `@`: not as an absolute time but as an offset relative to the
//! first step of the evaluator in charge (`setOffsetForAtModifier` and `subqueryTimes` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/engine.go#L737-L2810>),
//! recomputed when a subquery starts at another time. Nested `@` subqueries and `@` inside
//! calls that are not step-invariant depend on these exact offsets, so they are kept here,
//! per selector and subquery, and updated in the same order as Prometheus updates its AST.

use std::cell::RefCell;
use std::collections::HashMap;

use promql_parser::parser::{Expr, SubqueryExpr, VectorSelector};

use super::plan::{at_ms, offset_ms};

/// The current offset (milliseconds) of each selector and subquery, by address.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    map: RefCell<HashMap<usize, i64>>,
    top: (i64, i64),
}

pub(crate) fn vs_key(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

pub(crate) fn sq_key(sq: &SubqueryExpr) -> usize {
    std::ptr::from_ref(sq) as usize
}

/// A subquery on the path from the inspected root: its original offset and `@` time.
#[derive(Clone, Copy)]
struct PathSq {
    offset: i64,
    at: Option<i64>,
}

impl Offsets {
    pub(crate) fn new(top_start: i64, top_end: i64) -> Self {
        Self {
            map: RefCell::default(),
            top: (top_start, top_end),
        }
    }

    pub(crate) fn at(&self, a: Option<&promql_parser::parser::AtModifier>) -> Option<i64> {
        at_ms(a, self.top.0, self.top.1)
    }

    /// The current offset of a selector (its written offset until `@` adjusts it).
    pub(crate) fn of_vs(&self, vs: &VectorSelector) -> i64 {
        self.map
            .borrow()
            .get(&vs_key(vs))
            .copied()
            .unwrap_or_else(|| offset_ms(vs.offset.as_ref()))
    }

    pub(crate) fn of_sq(&self, sq: &SubqueryExpr) -> i64 {
        self.map
            .borrow()
            .get(&sq_key(sq))
            .copied()
            .unwrap_or_else(|| offset_ms(sq.offset.as_ref()))
    }

    pub(crate) fn set_vs(&self, vs: &VectorSelector, off: i64) {
        self.map.borrow_mut().insert(vs_key(vs), off);
    }

    /// `setOffsetForAtModifier(eval_time, root)`.
    pub(crate) fn apply(&self, eval_time: i64, root: &Expr) {
        let mut path = Vec::new();
        self.walk(eval_time, root, &mut path);
    }

    fn offset_for(&self, eval_time: i64, ts: Option<i64>, orig: i64, path: &[PathSq]) -> i64 {
        let Some(ts) = ts else { return orig };
        let mut subq_offset = 0i64;
        let mut subq_ts: Option<i64> = None;
        for p in path {
            subq_offset = subq_offset.saturating_add(p.offset);
            if let Some(t) = p.at {
                subq_offset = p.offset;
                subq_ts = Some(t);
            }
        }
        if let Some(t) = subq_ts {
            subq_offset = subq_offset.saturating_add(eval_time.saturating_sub(t));
        }
        let for_ts = eval_time.saturating_sub(ts);
        orig.saturating_add(for_ts.saturating_sub(subq_offset))
    }

    fn walk(&self, e_time: i64, e: &Expr, path: &mut Vec<PathSq>) {
        match e {
            Expr::VectorSelector(vs) => {
                let ts = self.at(vs.at.as_ref());
                let off = self.offset_for(e_time, ts, offset_ms(vs.offset.as_ref()), path);
                self.set_vs(vs, off);
            }
            Expr::MatrixSelector(ms) => {
                let ts = self.at(ms.vs.at.as_ref());
                let off = self.offset_for(e_time, ts, offset_ms(ms.vs.offset.as_ref()), path);
                self.set_vs(&ms.vs, off);
            }
            Expr::Subquery(sq) => {
                let ts = self.at(sq.at.as_ref());
                let orig = offset_ms(sq.offset.as_ref());
                let off = self.offset_for(e_time, ts, orig, path);
                self.map.borrow_mut().insert(sq_key(sq), off);
                path.push(PathSq {
                    offset: orig,
                    at: ts,
                });
                self.walk(e_time, &sq.expr, path);
                path.pop();
            }
            Expr::Aggregate(a) => {
                self.walk(e_time, &a.expr, path);
                if let Some(p) = &a.param {
                    self.walk(e_time, p, path);
                }
            }
            Expr::Unary(u) => self.walk(e_time, &u.expr, path),
            Expr::Binary(b) => {
                self.walk(e_time, &b.lhs, path);
                self.walk(e_time, &b.rhs, path);
            }
            Expr::Paren(p) => self.walk(e_time, &p.expr, path),
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.walk(e_time, a, path);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
}
