// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Stage 2, evaluation: an exhaustive match over `promql_parser::parser::Expr`, in memory over
//! the series [`super::plan`] fetched. Mirrors `evaluator.eval` and `rangeEval` of
//! `promql/engine.go@v2.42.0`: every non-string expression evaluates to a matrix whose points
//! sit on the evaluator's steps; a step function sees, at each step, the vector of points at
//! that step.
//!
//! `@` is applied as Prometheus applies it, through offsets relative to the first step of the
//! evaluator in charge ([`super::offsets`]), and step-invariant subtrees are evaluated once and
//! repeated ([`super::invariant`]); nested `@` subqueries depend on both.

use promql_parser::parser::{Expr, MatrixSelector, SubqueryExpr, VectorSelector};

use super::plan::{Prefetched, offset_ms};
use super::{EvalError, Stop, StopCheck};
use crate::model::{Labels, Sample, Timestamp, is_stale_nan};
use crate::storage::Series;

/// The result of evaluating a node.
pub(crate) enum Inner {
    Matrix(Vec<Series>),
    Str(String),
}

/// One element of an instant vector at a step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct El {
    pub labels: Labels,
    pub v: f64,
}

impl El {
    pub(crate) fn new(labels: Labels, v: f64) -> Self {
        Self { labels, v }
    }

    pub(crate) fn scalar(v: f64) -> Self {
        Self {
            labels: Labels::empty(),
            v,
        }
    }
}

/// What stays the same for the whole query, including nested subquery evaluators.
#[derive(Clone, Copy)]
pub(crate) struct Settings<'a> {
    /// Samples held by the whole query right now, counted as Prometheus's
    /// `evaluator.currentSamples` counts them (shared with nested evaluators).
    pub current: &'a std::cell::Cell<usize>,
    /// Current selector and subquery offsets, `@` included ([`super::offsets`]).
    pub offsets: &'a super::offsets::Offsets,
    /// Step-invariant subtrees ([`super::invariant`]).
    pub wrapped: &'a std::collections::HashSet<usize>,
    pub lookback: i64,
    pub subquery_step: i64,
    pub max_samples: usize,
    pub stop: Option<&'a StopCheck>,
}

pub(crate) struct Evaluator<'a> {
    pub data: &'a Prefetched,
    pub set: Settings<'a>,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
}

/// A matrix argument resolved to series plus its window parameters.
pub(crate) struct Windowed<'a> {
    /// Borrowed from the prefetched data for a selector; owned for a subquery's result.
    pub series: std::borrow::Cow<'a, [Series]>,
    pub range: i64,
    /// The current offset, `@` folded in as Prometheus does ([`super::offsets`]).
    pub offset: i64,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        data: &'a Prefetched,
        set: Settings<'a>,
        start: i64,
        end: i64,
        interval: i64,
    ) -> Self {
        Self {
            data,
            set,
            start,
            end,
            interval,
        }
    }

    /// The evaluation steps, `start, start+interval, ..., <= end`.
    pub(crate) fn steps(&self) -> impl Iterator<Item = i64> + use<> {
        let (start, end, interval) = (self.start, self.end, self.interval.max(1));
        let n = if end < start {
            0
        } else {
            end.saturating_sub(start) / interval + 1
        };
        (0..n).map(move |i| start + i * interval)
    }

    pub(crate) fn num_steps(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            usize::try_from(self.end.saturating_sub(self.start) / self.interval.max(1) + 1)
                .unwrap_or(0)
        }
    }

    pub(crate) fn check_stop(&self) -> Result<(), EvalError> {
        match self.set.stop.and_then(|f| f()) {
            None => Ok(()),
            Some(Stop::Canceled) => Err(EvalError::Canceled),
            Some(Stop::Timeout) => Err(EvalError::Timeout),
        }
    }

    pub(crate) fn cur(&self) -> usize {
        self.set.current.get()
    }

    pub(crate) fn set_cur(&self, n: usize) {
        self.set.current.set(n);
    }

    /// Adds one held sample, failing first if the limit is already reached (the check
    /// Prometheus makes before taking a sample in).
    pub(crate) fn take_sample(&self) -> Result<(), EvalError> {
        let c = self.cur();
        if c >= self.set.max_samples {
            return Err(EvalError::TooManySamples);
        }
        self.set_cur(c + 1);
        Ok(())
    }

    /// Adds `n` held samples, failing if that goes over the limit.
    pub(crate) fn add_samples(&self, n: usize) -> Result<(), EvalError> {
        let c = self.cur().saturating_add(n);
        self.set_cur(c);
        if c > self.set.max_samples {
            Err(EvalError::TooManySamples)
        } else {
            Ok(())
        }
    }

    pub(crate) fn eval_top(&self, e: &Expr) -> Result<Inner, EvalError> {
        self.eval(e)
    }

    /// Evaluates a node that must not be a string.
    pub(crate) fn eval_matrix(&self, e: &Expr) -> Result<Vec<Series>, EvalError> {
        match self.eval(e)? {
            Inner::Matrix(m) => Ok(m),
            Inner::Str(_) => Err(EvalError::exec(
                "unexpected string where a vector or scalar was expected",
            )),
        }
    }

    pub(crate) fn eval(&self, e: &Expr) -> Result<Inner, EvalError> {
        self.check_stop()?;
        if self.start != self.end
            && !matches!(e, Expr::NumberLiteral(_) | Expr::StringLiteral(_))
            && self.set.wrapped.contains(&super::invariant::key(e))
        {
            return self.eval_step_invariant(e);
        }
        self.eval_node(e)
    }

    /// A step-invariant subtree: evaluated once at the first step, the values repeated at every
    /// step (range results are returned as they are).
    fn eval_step_invariant(&self, e: &Expr) -> Result<Inner, EvalError> {
        let once = Evaluator {
            data: self.data,
            set: self.set,
            start: self.start,
            end: self.start,
            interval: self.interval,
        };
        let res = once.eval_node(e)?;
        let mut m = match res {
            Inner::Str(s) => return Ok(Inner::Str(s)),
            Inner::Matrix(m) => m,
        };
        if matches!(unparen(e), Expr::MatrixSelector(_) | Expr::Subquery(_)) {
            return Ok(Inner::Matrix(m));
        }
        for s in &mut m {
            let Some(first) = s.samples.first().copied() else {
                continue;
            };
            s.samples = self.steps().map(|t| Sample::new(t, first.v)).collect();
            self.add_samples(s.samples.len().saturating_sub(1))?;
        }
        Ok(Inner::Matrix(m))
    }

    fn eval_node(&self, e: &Expr) -> Result<Inner, EvalError> {
        match e {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => {
                let samples: Vec<Sample> = self.steps().map(|t| Sample::new(t, n.val)).collect();
                self.add_samples(samples.len())?;
                Ok(Inner::Matrix(vec![Series {
                    labels: Labels::empty(),
                    samples,
                }]))
            }
            Expr::StringLiteral(s) => Ok(Inner::Str(s.val.clone())),
            Expr::Unary(u) => {
                let mut m = self.eval_matrix(&u.expr)?;
                for s in &mut m {
                    s.labels = s.labels.without_metric_name();
                    for p in &mut s.samples {
                        p.v = -p.v;
                    }
                }
                check_matrix_dups(&m)?;
                Ok(Inner::Matrix(m))
            }
            Expr::Binary(b) => super::binary::eval_binary(self, b).map(Inner::Matrix),
            Expr::Aggregate(a) => super::aggregate::eval_aggregate(self, a).map(Inner::Matrix),
            Expr::Call(c) => super::functions::eval_call(self, c).map(Inner::Matrix),
            Expr::VectorSelector(vs) => self.vector_selector(vs).map(Inner::Matrix),
            Expr::MatrixSelector(ms) => {
                if self.start != self.end {
                    return Err(EvalError::exec(
                        "cannot do range evaluation of matrix selector",
                    ));
                }
                self.matrix_selector(ms).map(Inner::Matrix)
            }
            Expr::Subquery(sq) => self.subquery(sq).map(Inner::Matrix),
            Expr::Extension(_) => Err(EvalError::exec("unsupported expression")),
        }
    }

    /// The instant-vector value of one series at step `ts`: the latest sample at or before the
    /// reference time, within the lookback window, unless it is a staleness marker.
    pub(crate) fn instant_sample(
        &self,
        samples: &[Sample],
        vs: &VectorSelector,
        ts: i64,
    ) -> Option<Sample> {
        let reft = ts.saturating_sub(self.set.offsets.of_vs(vs));
        let i = samples.partition_point(|s| s.t.0 <= reft);
        let s = *samples.get(i.checked_sub(1)?)?;
        if s.t.0 < reft.saturating_sub(self.set.lookback) || is_stale_nan(s.v) {
            return None;
        }
        Some(s)
    }

    fn vector_selector(&self, vs: &VectorSelector) -> Result<Vec<Series>, EvalError> {
        let mut out = Vec::new();
        for s in self.data.get(vs) {
            let mut pts: Vec<Sample> = Vec::new();
            for ts in self.steps() {
                if let Some(x) = self.instant_sample(&s.samples, vs, ts) {
                    if self.cur() >= self.set.max_samples {
                        return Err(EvalError::TooManySamples);
                    }
                    self.set_cur(self.cur() + 1);
                    pts.push(Sample::new(ts, x.v));
                }
            }
            if !pts.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples: pts,
                });
            }
        }
        Ok(out)
    }

    fn matrix_selector(&self, ms: &MatrixSelector) -> Result<Vec<Series>, EvalError> {
        let w = self.windowed_selector(ms);
        let mut out = Vec::new();
        let (mint, maxt) = w.bounds(self.start);
        for s in w.series.iter() {
            let mut pts = Vec::new();
            window_into(&s.samples, mint, maxt, &mut pts);
            for _ in &pts {
                self.take_sample()?;
            }
            if !pts.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples: pts,
                });
            }
        }
        Ok(out)
    }

    pub(crate) fn windowed_selector(&self, ms: &MatrixSelector) -> Windowed<'a> {
        Windowed {
            series: std::borrow::Cow::Borrowed(self.data.get(&ms.vs)),
            range: super::duration_ms(ms.range),
            offset: self.set.offsets.of_vs(&ms.vs),
        }
    }

    pub(crate) fn windowed_subquery(
        &self,
        sq: &SubqueryExpr,
    ) -> Result<Windowed<'static>, EvalError> {
        let series = self.subquery(sq)?;
        // `evalSubquery`: with `@`, the result is read relative to this evaluator's start.
        let offset = match self.set.offsets.at(sq.at.as_ref()) {
            Some(t) => offset_ms(sq.offset.as_ref()).saturating_add(self.start.saturating_sub(t)),
            None => self.set.offsets.of_sq(sq),
        };
        Ok(Windowed {
            series: std::borrow::Cow::Owned(series),
            range: super::duration_ms(sq.range),
            offset,
        })
    }

    /// Evaluates a subquery with a nested evaluator whose steps are aligned to the subquery's
    /// step, over `[start - offset - range, end - offset]` (engine.go `SubqueryExpr` case).
    pub(crate) fn subquery(&self, sq: &SubqueryExpr) -> Result<Vec<Series>, EvalError> {
        let off = self.set.offsets.of_sq(sq);
        let range = super::duration_ms(sq.range);
        let step = sq
            .step
            .map_or(self.set.subquery_step, super::duration_ms)
            .max(1);
        let base = self.start.saturating_sub(off).saturating_sub(range);
        let mut s0 = step * (base / step);
        if s0 < base {
            s0 = s0.saturating_add(step);
        }
        let sub = Evaluator {
            data: self.data,
            set: self.set,
            start: s0,
            end: self.end.saturating_sub(off),
            interval: step,
        };
        if s0 != self.start {
            self.set.offsets.apply(s0, &sq.expr);
        }
        sub.eval_matrix(&sq.expr)
    }

    /// Evaluates `exprs` as matrices and calls `f` at every step with the vector of each
    /// (Prometheus's `rangeEval`). `f`'s results become series in first-seen order.
    pub(crate) fn range_eval<F>(&self, exprs: &[&Expr], mut f: F) -> Result<Vec<Series>, EvalError>
    where
        F: FnMut(&[Vec<El>], i64) -> Result<Vec<El>, EvalError>,
    {
        let original = self.cur();
        let mats = exprs
            .iter()
            .map(|e| self.eval_matrix(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cursors: Vec<Vec<usize>> = mats.iter().map(|m| vec![0; m.len()]).collect();
        let mut vecs: Vec<Vec<El>> = vec![Vec::new(); mats.len()];
        let mut out: Vec<Series> = Vec::new();
        // Keyed per output element and step: hashbrown's hasher, not SipHash.
        let mut index: hashbrown::HashMap<Labels, usize> = hashbrown::HashMap::new();
        let mut temp = self.cur();
        let mut total_out = 0usize;
        for ts in self.steps() {
            self.check_stop()?;
            self.set_cur(temp);
            for (i, m) in mats.iter().enumerate() {
                vecs[i].clear();
                for (si, s) in m.iter().enumerate() {
                    let c = &mut cursors[i][si];
                    if let Some(p) = s.samples.get(*c)
                        && p.t.0 == ts
                    {
                        self.take_sample()?;
                        vecs[i].push(El::new(s.labels.clone(), p.v));
                        *c += 1;
                    }
                }
            }
            let res = f(&vecs, ts)?;
            check_dups(&res)?;
            temp = temp.saturating_add(res.len());
            total_out += res.len();
            self.add_samples(res.len())?;
            for el in res {
                let idx = match index.get(&el.labels) {
                    Some(&i) => i,
                    None => {
                        out.push(Series {
                            labels: el.labels.clone(),
                            samples: Vec::with_capacity(self.num_steps()),
                        });
                        index.insert(el.labels, out.len() - 1);
                        out.len() - 1
                    }
                };
                out[idx].samples.push(Sample {
                    t: Timestamp(ts),
                    v: el.v,
                });
            }
        }
        self.set_cur(original.saturating_add(total_out));
        Ok(out)
    }
}

impl Windowed<'_> {
    /// The window `[mint, maxt]` read at step `ts` (both ends included in Prometheus 2.42).
    pub(crate) fn bounds(&self, ts: i64) -> (i64, i64) {
        let maxt = ts.saturating_sub(self.offset);
        (maxt.saturating_sub(self.range), maxt)
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// The non-stale samples with `mint <= t <= maxt`.
/// The samples in `[mint, maxt]` without staleness markers, into `out` (cleared first, so
/// one buffer serves every step).
pub(crate) fn window_into(samples: &[Sample], mint: i64, maxt: i64, out: &mut Vec<Sample>) {
    out.clear();
    let lo = samples.partition_point(|s| s.t.0 < mint);
    let hi = samples.partition_point(|s| s.t.0 <= maxt);
    out.extend(
        samples
            .get(lo..hi)
            .unwrap_or(&[])
            .iter()
            .filter(|s| !is_stale_nan(s.v))
            .copied(),
    );
}

pub(crate) const DUP_LABELSET: &str = "vector cannot contain metrics with the same labelset";

pub(crate) fn check_dups(v: &[El]) -> Result<(), EvalError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    if v.iter().all(|e| seen.insert(&e.labels)) {
        Ok(())
    } else {
        Err(EvalError::exec(DUP_LABELSET))
    }
}

pub(crate) fn check_matrix_dups(m: &[Series]) -> Result<(), EvalError> {
    let mut seen = std::collections::HashSet::with_capacity(m.len());
    if m.iter().all(|s| seen.insert(&s.labels)) {
        Ok(())
    } else {
        Err(EvalError::exec(DUP_LABELSET))
    }
}
