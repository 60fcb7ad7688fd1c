// Copyright 2021 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Step invariance, as `PreprocessExpr`/`preprocessExprHelper` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/engine.go#L2678-L2777>
//! decide it: the maximal subtrees whose value does not depend on the evaluation step (they
//! only read data pinned with `@`) are evaluated once, at the evaluator's first step, and the
//! result repeated. This matters beyond speed: a range-vector argument pinned with `@` inside
//! an expression that is *not* wrapped (an `@`-unsafe function such as `predict_linear`, or a
//! call with a step-dependent argument) is read through an offset relative to the evaluator's
//! first step ([`super::offsets`]), so its window moves with later steps. [`super::eval`]
//! reproduces both.

use std::collections::HashSet;

use promql_parser::parser::Expr;

/// Functions whose result can change with the evaluation time even with invariant arguments
/// (`AtModifierUnsafeFunctions`).
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

pub(crate) fn key(e: &Expr) -> usize {
    std::ptr::from_ref(e) as usize
}

/// The nodes Prometheus wraps in `StepInvariantExpr`, by address.
pub(crate) fn wrapped_nodes(expr: &Expr) -> HashSet<usize> {
    let mut out = HashSet::new();
    if helper(expr, &mut out) {
        out.insert(key(expr));
    }
    out
}

fn helper(e: &Expr, out: &mut HashSet<usize>) -> bool {
    match e {
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Aggregate(a) => helper(&a.expr, out),
        Expr::Binary(b) => {
            let l = helper(&b.lhs, out);
            let r = helper(&b.rhs, out);
            if l && r {
                return true;
            }
            if l {
                out.insert(key(&b.lhs));
            }
            if r {
                out.insert(key(&b.rhs));
            }
            false
        }
        Expr::Call(c) => {
            let mut inv = !AT_UNSAFE.contains(&c.func.name);
            let args: Vec<bool> = c.args.args.iter().map(|a| helper(a, out)).collect();
            inv = inv && args.iter().all(|x| *x);
            if inv {
                return true;
            }
            for (a, i) in c.args.args.iter().zip(args) {
                if i {
                    out.insert(key(a));
                }
            }
            false
        }
        Expr::Subquery(s) => {
            if helper(&s.expr, out) {
                out.insert(key(&s.expr));
            }
            s.at.is_some()
        }
        Expr::Paren(p) => helper(&p.expr, out),
        Expr::Unary(u) => helper(&u.expr, out),
        Expr::StringLiteral(_) | Expr::NumberLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::parse_expr;

    #[test]
    fn wraps_maximal_invariant_subtrees() {
        let e = parse_expr("rate(foo[1m] @ 100) + bar").unwrap();
        let Expr::Binary(b) = &e else { panic!() };
        let w = wrapped_nodes(&e);
        assert!(w.contains(&key(&b.lhs)));
        assert!(!w.contains(&key(&e)));
        let e = parse_expr("predict_linear(foo[1m] @ 100, 60)").unwrap();
        let w = wrapped_nodes(&e);
        assert!(!w.contains(&key(&e)), "predict_linear is @-unsafe");
        let e = parse_expr("sum(foo @ 100)").unwrap();
        assert!(wrapped_nodes(&e).contains(&key(&e)));
        assert!(wrapped_nodes(&parse_expr("foo").unwrap()).is_empty());
    }
}
