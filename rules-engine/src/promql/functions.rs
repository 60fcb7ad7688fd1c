// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Function calls: the dispatch from a `Call` node to the kernels, one file per family under
//! `functions/` (each kernel works on `&[Sample]` or one step's vector and cites the upstream
//! code it mirrors). The call evaluation itself follows the `*parser.Call` case of
//! `evaluator.eval` in `promql/engine.go@v2.42.0`: a function with a range argument is
//! evaluated series by series over sliding windows, any other through `range_eval`.

pub mod gomath;
pub mod histogram;
pub mod labels;
pub mod math;
pub mod over_time;
pub mod rate;
pub mod regression;
pub mod sort;
pub mod time;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr};

use self::labels::{LabelJoin, LabelReplace, absent_labels};
use self::sort::go_sort;
use super::EvalError;
use super::eval::{El, Evaluator, Windowed, check_matrix_dups, window_into};
use super::plan::selector_matchers;
use crate::model::{Labels, Sample, format_go_float_exp, go_nonfinite};
use crate::storage::Series;

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn string_arg(e: &Expr) -> Option<&str> {
    match unparen(e) {
        Expr::StringLiteral(s) => Some(&s.val),
        _ => None,
    }
}

pub(crate) fn eval_call(ev: &Evaluator<'_>, c: &Call) -> Result<Vec<Series>, EvalError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| unparen(a)).collect();
    if name == "timestamp"
        && let Some(Expr::VectorSelector(vs)) = args.first()
    {
        // The sample's own timestamp, not the step's.
        // Prometheus runs `vectorSelector` inside `rangeEval`: each step holds the selected
        // samples and the results.
        let series = ev.data.get(vs);
        let original = ev.cur();
        let mut temp = original;
        let mut pts: Vec<Vec<Sample>> = vec![Vec::new(); series.len()];
        for ts in ev.steps() {
            ev.check_stop()?;
            ev.set_cur(temp);
            let mut found = 0;
            if let Some(at) = ev.set.offsets.at(vs.at.as_ref()) {
                // Prometheus re-pins the selector at every step (ignoring its offset).
                ev.set.offsets.set_vs(vs, ts.saturating_sub(at));
            }
            for (i, s) in series.iter().enumerate() {
                if let Some(x) = ev.instant_sample(&s.samples, vs, ts) {
                    ev.add_samples(1)?;
                    pts[i].push(Sample::new(ts, x.t.0 as f64 / 1000.0));
                    found += 1;
                }
            }
            ev.add_samples(found)?;
            temp += found;
        }
        let out: Vec<Series> = series
            .iter()
            .zip(pts)
            .filter(|(_, p)| !p.is_empty())
            .map(|(s, p)| Series {
                labels: s.labels.without_metric_name(),
                samples: p,
            })
            .collect();
        check_matrix_dups(&out)?;
        ev.set_cur(original + out.iter().map(|s| s.samples.len()).sum::<usize>());
        return Ok(out);
    }
    if let Some(mi) = args
        .iter()
        .position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_)))
    {
        return range_call(ev, name, &args, mi);
    }
    instant_call(ev, name, &args)
}

/// A function over a range vector: one window per series and step.
fn range_call(
    ev: &Evaluator<'_>,
    name: &str,
    args: &[&Expr],
    mi: usize,
) -> Result<Vec<Series>, EvalError> {
    // Sample accounting follows Prometheus: a subquery's result stays counted until the call
    // is done, the window of the current series is counted while it is held, and the output
    // points are counted.
    let before_subquery = ev.cur();
    let w: Windowed = match args[mi] {
        Expr::MatrixSelector(ms) => ev.windowed_selector(ms),
        Expr::Subquery(sq) => ev.windowed_subquery(sq)?,
        _ => return Err(EvalError::exec("expected a range vector argument")),
    };
    let subquery_samples = ev.cur().saturating_sub(before_subquery);
    let mut scalars: Vec<Vec<Series>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != mi {
            scalars.push(ev.eval_matrix(a)?);
        }
    }
    let mut out: Vec<Series> = Vec::new();
    let mut sc = vec![f64::NAN; scalars.len()];
    let mut win = Vec::new();
    for s in w.series.iter() {
        // Once per series: a series' steps are bounded work, and reading the clock per step
        // showed up in profiles of range queries.
        ev.check_stop()?;
        let labels = if name == "last_over_time" {
            s.labels.clone()
        } else {
            s.labels.without_metric_name()
        };
        let mut pts = Vec::new();
        let base = ev.cur();
        for (step, ts) in ev.steps().enumerate() {
            let (mint, maxt) = w.bounds(ts);
            window_into(&s.samples, mint, maxt, &mut win);
            if base.saturating_add(win.len()) > ev.set.max_samples {
                return Err(EvalError::TooManySamples);
            }
            if win.is_empty() {
                continue;
            }
            for (j, m) in scalars.iter().enumerate() {
                sc[j] = m
                    .first()
                    .and_then(|x| x.samples.get(step))
                    .map_or(f64::NAN, |p| p.v);
            }
            if let Some(v) = range_kernel(name, &win, ts, mint, maxt, w.range, &sc)? {
                pts.push(Sample::new(ts, v));
            }
        }
        ev.set_cur(base);
        if base.saturating_add(pts.len()) > ev.set.max_samples {
            return Err(EvalError::TooManySamples);
        }
        ev.set_cur(base + pts.len());
        if !pts.is_empty() {
            out.push(Series {
                labels,
                samples: pts,
            });
        }
    }
    ev.set_cur(ev.cur().saturating_sub(subquery_samples));
    if name == "absent_over_time" {
        return Ok(absent_over_time(ev, args[mi], &out));
    }
    check_matrix_dups(&out)?;
    Ok(out)
}

fn absent_over_time(ev: &Evaluator<'_>, arg: &Expr, mat: &[Series]) -> Vec<Series> {
    let steps = ev.num_steps();
    if mat.iter().any(|s| s.samples.len() == steps) {
        return Vec::new();
    }
    let found: std::collections::HashSet<i64> = mat
        .iter()
        .flat_map(|s| s.samples.iter().map(|p| p.t.0))
        .collect();
    if found.len() == steps && mat.len() > 1 {
        return Vec::new();
    }
    let pts: Vec<Sample> = ev
        .steps()
        .filter(|t| !found.contains(t))
        .map(|t| Sample::new(t, 1.0))
        .collect();
    let labels = match arg {
        Expr::MatrixSelector(ms) => absent_labels(&selector_matchers(&ms.vs)),
        _ => Labels::empty(),
    };
    vec![Series {
        labels,
        samples: pts,
    }]
}

fn range_kernel(
    name: &str,
    s: &[Sample],
    ts: i64,
    mint: i64,
    maxt: i64,
    range: i64,
    sc: &[f64],
) -> Result<Option<f64>, EvalError> {
    let first = |i: usize| sc.get(i).copied().unwrap_or(f64::NAN);
    Ok(match name {
        "rate" => rate::extrapolated_rate(s, mint, maxt, range, true, true),
        "increase" => rate::extrapolated_rate(s, mint, maxt, range, true, false),
        "delta" => rate::extrapolated_rate(s, mint, maxt, range, false, false),
        "irate" => rate::instant_value(s, true),
        "idelta" => rate::instant_value(s, false),
        "avg_over_time" => Some(over_time::avg_over_time(s)),
        "sum_over_time" => Some(over_time::sum_over_time(s)),
        "count_over_time" => Some(s.len() as f64),
        "min_over_time" => Some(over_time::min_over_time(s)),
        "max_over_time" => Some(over_time::max_over_time(s)),
        "last_over_time" => s.last().map(|p| p.v),
        "present_over_time" | "absent_over_time" => Some(1.0),
        "quantile_over_time" => Some(over_time::quantile_over_time(first(0), s)),
        "stddev_over_time" => Some(over_time::stddev_over_time(s)),
        "stdvar_over_time" => Some(over_time::stdvar_over_time(s)),
        "changes" => Some(over_time::changes(s)),
        "resets" => Some(over_time::resets(s)),
        "deriv" => regression::deriv(s),
        "predict_linear" => regression::predict_linear(s, ts, first(0)),
        "holt_winters" => {
            over_time::holt_winters(s, first(0), first(1)).map_err(EvalError::Execution)?
        }
        other => {
            return Err(EvalError::exec(format!(
                "function {other} does not take a range vector"
            )));
        }
    })
}

/// Per-call state prepared once (Prometheus checks these on the first step).
enum Prepared {
    None,
    Replace(LabelReplace),
    Join(LabelJoin),
}

fn prepare(name: &str, args: &[&Expr]) -> Result<Prepared, EvalError> {
    let s = |i: usize| args.get(i).and_then(|e| string_arg(e)).unwrap_or("");
    match name {
        "label_replace" => LabelReplace::new(s(1), s(2), s(3), s(4))
            .map(Prepared::Replace)
            .map_err(EvalError::Execution),
        "label_join" => {
            let srcs = (3..args.len()).map(|i| s(i).to_string()).collect();
            LabelJoin::new(s(1), s(2), srcs)
                .map(Prepared::Join)
                .map_err(EvalError::Execution)
        }
        _ => Ok(Prepared::None),
    }
}

fn instant_call(ev: &Evaluator<'_>, name: &str, args: &[&Expr]) -> Result<Vec<Series>, EvalError> {
    let prepared = prepare(name, args)?;
    let vec_args: Vec<&Expr> = args
        .iter()
        .filter(|a| a.value_type() != ValueType::String)
        .copied()
        .collect();
    let absent_lbls = match args.first() {
        Some(Expr::VectorSelector(vs)) if name == "absent" => absent_labels(&selector_matchers(vs)),
        _ => Labels::empty(),
    };
    ev.range_eval(&vec_args, |v, ts| {
        let arg = |i: usize| v.get(i).map_or(&[][..], Vec::as_slice);
        let sc = |i: usize| arg(i).first().map_or(f64::NAN, |e| e.v);
        let map = |f: &dyn Fn(f64) -> f64| -> Vec<El> {
            arg(0)
                .iter()
                .map(|e| El::new(e.labels.without_metric_name(), f(e.v)))
                .collect()
        };
        Ok(match name {
            "time" => vec![El::scalar(ts as f64 / 1000.0)],
            "pi" => vec![El::scalar(std::f64::consts::PI)],
            "vector" => vec![El::scalar(sc(0))],
            "scalar" => {
                let x = arg(0);
                vec![El::scalar(if x.len() == 1 { x[0].v } else { f64::NAN })]
            }
            "absent" => {
                if arg(0).is_empty() {
                    vec![El::new(absent_lbls.clone(), 1.0)]
                } else {
                    Vec::new()
                }
            }
            "round" => {
                let to = if v.len() >= 2 { sc(1) } else { 1.0 };
                map(&|x| math::round(x, to))
            }
            "clamp" => {
                let (lo, hi) = (sc(1), sc(2));
                if hi < lo {
                    Vec::new()
                } else {
                    map(&|x| math::go_max(lo, math::go_min(hi, x)))
                }
            }
            "clamp_max" => {
                let hi = sc(1);
                map(&|x| math::go_min(hi, x))
            }
            "clamp_min" => {
                let lo = sc(1);
                map(&|x| math::go_max(lo, x))
            }
            "sort" => {
                let mut x = arg(0).to_vec();
                go_sort(&mut x, |d, i, j| d[j].v.is_nan() || d[j].v > d[i].v);
                x
            }
            "sort_desc" => {
                let mut x = arg(0).to_vec();
                go_sort(&mut x, |d, i, j| d[j].v.is_nan() || d[j].v < d[i].v);
                x
            }
            "timestamp" => map(&|_| ts as f64 / 1000.0),
            "histogram_quantile" => histogram::histogram_quantile(sc(0), arg(1)),
            "histogram_count" | "histogram_sum" | "histogram_fraction" => Vec::new(),
            "label_replace" | "label_join" => arg(0)
                .iter()
                .map(|e| {
                    let l = match &prepared {
                        Prepared::Replace(r) => r.apply(&e.labels),
                        Prepared::Join(j) => j.apply(&e.labels),
                        Prepared::None => e.labels.clone(),
                    };
                    El::new(l, e.v)
                })
                .collect(),
            "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour"
            | "minute" | "month" | "year" => {
                if v.is_empty() {
                    let t = ts / 1000;
                    vec![El::scalar(time::date_fn(name, t).unwrap_or(f64::NAN))]
                } else {
                    map(&|x| time::date_fn(name, time::go_f64_to_i64(x)).unwrap_or(f64::NAN))
                }
            }
            other => match math::simple(other) {
                Some(f) => map(&f),
                None => {
                    return Err(EvalError::exec(format!(
                        "unknown function with name \"{other}\""
                    )));
                }
            },
        })
    })
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub fn go_fmt_v(f: f64) -> String {
    if let Some(s) = go_nonfinite(f) {
        return s.into();
    }
    let exp: i32 = format!("{f:e}")
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        format_go_float_exp(f, 'e')
    }
}

/// Go's `strconv.FormatFloat(f, 'E', -1, 64)`, as promtool prints sample values.
pub fn go_fmt_e(f: f64) -> String {
    format_go_float_exp(f, 'E')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        assert_eq!(go_fmt_e(1.0), "1E+00");
        assert_eq!(go_fmt_e(0.0), "0E+00");
        assert_eq!(go_fmt_e(-123.456), "-1.23456E+02");
        assert_eq!(go_fmt_e(1e-7), "1E-07");
        assert_eq!(go_fmt_e(1e300), "1E+300");
        assert_eq!(go_fmt_e(f64::INFINITY), "+Inf");
        assert_eq!(go_fmt_v(1e21), "1e+21");
        assert_eq!(go_fmt_v(1e6), "1e+06");
        assert_eq!(go_fmt_v(100000.0), "100000");
    }
}
