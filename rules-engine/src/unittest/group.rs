// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! Running one test group (`testGroup.test` in `cmd/promtool/unittest.go@v2.42.0`): lazy
//! loading of the input series, rule evaluation at every evaluation step, alert checks, and
//! PromQL expression checks, with promtool's error texts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::series::{SeqValue, parse_metric, parse_series_desc};
use super::{ExpAlert, TestGroup};
use crate::duration::format_model_duration;
use crate::model::{Labels, Sample, Timestamp, write_go_quoted};
use crate::promql::functions::go_fmt_e;
use crate::promql::{Engine, EvalError, EvalLimits, Value, VectorSample, parse_expr};
use crate::rules::alerting::{AlertContext, AlertState};
use crate::rules::group::Group;
use crate::rules::{RawLabels, Rule, RuleGroup, load_rule_file};
use crate::storage::{MemStorage, Queryable};

/// The input series, appended to storage step by step (`LazyLoader`).
struct Loader {
    series: Vec<(Labels, Vec<Sample>)>,
    next: Vec<usize>,
}

impl Loader {
    /// Parses the series as `seriesLoadingString` + `parseLoad` do; a later series with the
    /// same labels replaces an earlier one.
    fn new(tg: &TestGroup) -> Result<Self, String> {
        let mut series: Vec<(Labels, Vec<Sample>)> = Vec::new();
        for s in &tg.input_series {
            let line = format!("{} {}", s.series, s.values);
            let line = line.trim();
            if line.is_empty() {
                break;
            }
            let (labels, vals) = parse_series_desc(line).map_err(|e| e.to_string())?;
            let samples = expand(&vals, tg.interval);
            match series.iter_mut().find(|(l, _)| *l == labels) {
                Some(slot) => slot.1 = samples,
                None => series.push((labels, samples)),
            }
        }
        let next = vec![0; series.len()];
        Ok(Self { series, next })
    }

    fn append_till(&mut self, ts: i64, st: &MemStorage) -> Result<(), String> {
        for (i, (labels, samples)) in self.series.iter().enumerate() {
            let from = self.next[i];
            let to = from + samples[from..].partition_point(|s| s.t.0 <= ts);
            if to > from {
                st.add(labels.clone(), samples[from..to].iter().copied());
            }
            self.next[i] = to;
        }
        Ok(())
    }
}

fn expand(vals: &[SeqValue], interval: i64) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::with_capacity(vals.len());
    for (i, v) in vals.iter().enumerate() {
        if let Some(v) = v {
            let t = i as i64 * interval;
            // The TSDB head drops a sample not newer than the last one appended (with a zero
            // interval every value lands on t=0, and the first one stays).
            if out.last().is_none_or(|last| last.t.0 < t) {
                out.push(Sample::new(t, *v));
            }
        }
    }
    out
}

fn go_quote(s: &str) -> String {
    let mut out = String::new();
    let _ = write_go_quoted(&mut out, s);
    out
}

fn engine(ei: i64) -> Engine {
    Engine::new(EvalLimits {
        max_samples: 10_000,
        lookback_delta: Duration::from_secs(300),
        default_subquery_step: Duration::from_millis(u64::try_from(ei).unwrap_or(60_000)),
    })
}

/// An instant query as promtool's `query` runs it: vectors and scalars only.
fn query(
    eng: &Engine,
    st: &dyn Queryable,
    expr: &str,
    t: i64,
) -> Result<Vec<VectorSample>, EvalError> {
    let e = parse_expr(expr)?;
    match eng.instant(st, &e, Timestamp(t))? {
        Value::Vector(v) => Ok(v),
        Value::Scalar(s) => Ok(vec![VectorSample {
            labels: Labels::empty(),
            t: s.t,
            v: s.v,
        }]),
        _ => Err(EvalError::exec("rule result is not a vector or scalar")),
    }
}

/// Runs the group; returns promtool's error texts (empty when everything passed).
pub(super) fn run_group(
    tg: &TestGroup,
    ei: i64,
    order: &BTreeMap<String, usize>,
    rule_files: &[String],
) -> Vec<String> {
    let mut loader = match Loader::new(tg) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let mut groups: Vec<RuleGroup> = Vec::new();
    let mut load_errs = Vec::new();
    for f in rule_files {
        match load_rule_file(Path::new(f)) {
            Ok(g) => groups.extend(g),
            Err(e) => load_errs.extend(e),
        }
    }
    if !load_errs.is_empty() {
        return load_errs;
    }
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));

    let eng = engine(ei);
    let st = MemStorage::new();
    let maxt = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time)
        .chain(tg.promql_expr_test.iter().map(|p| p.eval_time))
        .max()
        .unwrap_or(0);

    let mut alert_times: Vec<i64> = tg.alert_rule_test.iter().map(|a| a.eval_time).collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                format_model_duration(a.eval_time)
            )];
        }
    }

    let mut errs: Vec<String> = Vec::new();
    let mut groups: Vec<Group> = groups.into_iter().map(Group::new).collect();
    let ctx = AlertContext {
        external_labels: Labels::from_pairs(tg.external_labels.clone()).unwrap_or_default(),
        external_url: tg.external_url.clone(),
        server_url: None,
    };
    let mut curr = 0usize;
    let mut ts = 0i64;
    loop {
        if let Err(e) = loader.append_till(ts, &st) {
            errs.push(e);
        }
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            for (i, e) in g.eval(&eng, &st, &st, ts, &ctx) {
                eval_errs.push(format!(
                    "    rule: {}, time: {}, err: {e}",
                    g.spec.rules[i].name(),
                    format_model_duration(ts)
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        while curr < alert_times.len() && ts <= alert_times[curr] && alert_times[curr] < ts + ei {
            let t = alert_times[curr];
            for tc in tg.alert_rule_test.iter().filter(|a| a.eval_time == t) {
                let mut got: Vec<(RawLabels, RawLabels)> = Vec::new();
                for g in &groups {
                    for (r, state) in g.spec.rules.iter().zip(&g.states) {
                        if let Rule::Alerting(a) = r
                            && a.alert == tc.alertname
                        {
                            got.extend(
                                state
                                    .alerts
                                    .active_alerts()
                                    .filter(|x| x.state == AlertState::Firing)
                                    .map(|x| (RawLabels::from(&x.labels), x.annotations.clone())),
                            );
                        }
                    }
                }
                got.sort();
                let mut exp: Vec<(RawLabels, RawLabels)> = tc
                    .exp_alerts
                    .iter()
                    .map(|a: &ExpAlert| {
                        let mut l = a.exp_labels.clone();
                        l.insert("alertname".into(), tc.alertname.clone());
                        (
                            RawLabels::from_pairs(l),
                            RawLabels::from_pairs(a.exp_annotations.clone()),
                        )
                    })
                    .collect();
                exp.sort();
                if exp != got {
                    let name = if tg.name.is_empty() {
                        String::new()
                    } else {
                        format!("    name: {},\n", tg.name)
                    };
                    errs.push(format!(
                        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        tc.alertname,
                        format_model_duration(tc.eval_time),
                        indent_lines(&alerts_string(&exp), "            "),
                        indent_lines(&alerts_string(&got), "            ")
                    ));
                }
            }
            curr += 1;
        }
        ts += ei;
        if ts > maxt {
            break;
        }
    }

    'cases: for tc in &tg.promql_expr_test {
        let got = match query(&eng, &st, &tc.expr, tc.eval_time) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!(
                    "    expr: {}, time: {}, err: {e}",
                    go_quote(&tc.expr),
                    format_model_duration(tc.eval_time)
                ));
                continue;
            }
        };
        let mut got: Vec<(Labels, f64)> = got.into_iter().map(|s| (s.labels, s.v)).collect();
        let mut exp: Vec<(Labels, f64)> = Vec::new();
        for s in &tc.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {}, time: {}, err: labels {}: {e}",
                        go_quote(&tc.expr),
                        format_model_duration(tc.eval_time),
                        go_quote(&s.labels)
                    ));
                    continue 'cases;
                }
            }
        }
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let same =
            exp.len() == got.len() && exp.iter().zip(&got).all(|(a, b)| a.0 == b.0 && a.1 == b.1);
        if !same {
            errs.push(format!(
                "    expr: {}, time: {},\n        exp: {}\n        got: {}",
                go_quote(&tc.expr),
                format_model_duration(tc.eval_time),
                samples_string(&exp),
                samples_string(&got)
            ));
        }
    }
    errs
}

fn samples_string(s: &[(Labels, f64)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v)| format!("{l} {}", go_fmt_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn alerts_string(a: &[(RawLabels, RawLabels)]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    let one = |(l, ann): &(RawLabels, RawLabels)| format!("Labels:{l}\nAnnotations:{ann}");
    let mut s = format!("[\n0:{}", indent_lines(&format!("\n{}", one(&a[0])), "  "));
    for (i, x) in a.iter().enumerate().skip(1) {
        s.push_str(&format!(
            ",\n{i}:{}",
            indent_lines(&format!("\n{}", one(x)), "  ")
        ));
    }
    s.push_str("\n]");
    s
}

fn indent_lines(lines: &str, indent: &str) -> String {
    let parts: Vec<&str> = lines.split('\n').collect();
    let mut out = String::new();
    for (i, l) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(indent);
        }
        out.push_str(l);
        if i != parts.len() - 1 {
            out.push('\n');
        }
    }
    out
}
