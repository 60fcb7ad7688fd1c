// Copyright 2013 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! One rule group evaluated at one timestamp, as `Group.Eval` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/rules/group.go#L504-L640>: rules in
//! order, each rule's output appended before the next rule runs (so a rule sees what the rules
//! before it recorded), staleness markers for series a rule no longer returns, and the alert
//! state machine for alerting rules. The time is an argument: the scheduler (or the test
//! runner) decides when.

use std::collections::HashSet;

use crate::model::{Labels, METRIC_NAME, Sample, Timestamp, stale_nan};
use crate::promql::{Engine, Value};
use crate::rules::alerting::{AlertContext, AlertRuleState};
use crate::rules::{Rule, RuleGroup};
use crate::storage::{Appender, Queryable, Series};

/// A rule's health after its last evaluation (Prometheus's `ok`, `err`, `unknown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// Per-rule state across evaluations.
#[derive(Debug, Clone)]
pub struct RuleState {
    /// The alerts of an alerting rule (empty for recording rules).
    pub alerts: AlertRuleState,
    /// The series the rule wrote last time, to mark stale those it no longer returns.
    prev: HashSet<Labels>,
    pub health: Health,
    pub last_error: Option<String>,
    /// Milliseconds of the last evaluation.
    pub last_eval: Option<i64>,
}

impl Default for RuleState {
    fn default() -> Self {
        Self {
            alerts: AlertRuleState::default(),
            prev: HashSet::new(),
            health: Health::Unknown,
            last_error: None,
            last_eval: None,
        }
    }
}

/// A rule group with its rules' state.
#[derive(Debug)]
pub struct Group {
    pub spec: RuleGroup,
    pub states: Vec<RuleState>,
}

impl Group {
    pub fn new(spec: RuleGroup) -> Self {
        let states = spec.rules.iter().map(|_| RuleState::default()).collect();
        Self { spec, states }
    }

    /// Takes over the state of `old`'s rules that have the same name and kind (Prometheus's
    /// `CopyState` on reload): active alerts keep their `activeAt`, recorded series their
    /// staleness tracking. With several rules of one name, they pair up in order.
    pub fn copy_state_from(&mut self, old: &Group) {
        let mut taken = vec![false; old.spec.rules.len()];
        for (i, rule) in self.spec.rules.iter().enumerate() {
            let found = old.spec.rules.iter().enumerate().find(|(j, r)| {
                !taken[*j]
                    && r.name() == rule.name()
                    && matches!(
                        (r, rule),
                        (Rule::Alerting(_), Rule::Alerting(_))
                            | (Rule::Recording(_), Rule::Recording(_))
                    )
            });
            if let Some((j, _)) = found {
                taken[j] = true;
                self.states[i] = old.states[j].clone();
            }
        }
    }

    /// A text that changes whenever anything evaluation depends on changes, to tell on
    /// reload whether the group can keep running as it is.
    pub fn fingerprint(spec: &RuleGroup) -> String {
        let mut s = format!("{}|{}", spec.interval_ms, spec.limit);
        for r in &spec.rules {
            match r {
                Rule::Recording(x) => {
                    s.push_str(&format!("|r:{}:{}:{}", x.record, x.expr, x.labels))
                }
                Rule::Alerting(x) => s.push_str(&format!(
                    "|a:{}:{}:{}:{}:{}:{}",
                    x.alert, x.expr, x.for_ms, x.keep_firing_for_ms, x.labels, x.annotations
                )),
            }
        }
        s
    }

    /// Evaluates every rule at `ts` (ms), writing their output through `app`. Returns the
    /// errors, by rule index; each rule's health and last error are updated too.
    pub fn eval(
        &mut self,
        engine: &Engine,
        q: &dyn Queryable,
        app: &dyn Appender,
        ts: i64,
        ctx: &AlertContext,
    ) -> Vec<(usize, String)> {
        (0..self.spec.rules.len())
            .filter_map(|i| {
                self.eval_one(i, engine, q, app, ts, ctx)
                    .err()
                    .map(|e| (i, e))
            })
            .collect()
    }

    /// Evaluates rule `i` alone (callers that time each rule evaluate them in order with
    /// this); updates its health and last error.
    pub fn eval_one(
        &mut self,
        i: usize,
        engine: &Engine,
        q: &dyn Queryable,
        app: &dyn Appender,
        ts: i64,
        ctx: &AlertContext,
    ) -> Result<(), String> {
        let result = eval_rule(
            engine,
            q,
            app,
            &self.spec.rules[i],
            ts,
            &mut self.states[i],
            ctx,
            self.spec.limit,
        );
        let st = &mut self.states[i];
        st.last_eval = Some(ts);
        match &result {
            Ok(()) => {
                st.health = Health::Ok;
                st.last_error = None;
            }
            Err(e) => {
                st.health = Health::Err;
                st.last_error = Some(e.clone());
            }
        }
        result
    }
}

/// Evaluates one rule at `ts` and writes its output (recorded series, or `ALERTS` and
/// `ALERTS_FOR_STATE`) plus staleness markers for series it no longer returns.
#[allow(clippy::too_many_arguments)]
fn eval_rule(
    eng: &Engine,
    q: &dyn Queryable,
    app: &dyn Appender,
    r: &Rule,
    ts: i64,
    state: &mut RuleState,
    ctx: &AlertContext,
    limit: i64,
) -> Result<(), String> {
    let res = eng
        .instant(q, r.expr(), Timestamp(ts))
        .map_err(|e| e.to_string())?;
    let vec: Vec<(Labels, f64)> = match res {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels, s.v)).collect(),
        Value::Scalar(s) => vec![(Labels::empty(), s.v)],
        _ => return Err("rule result is not a vector or scalar".into()),
    };
    let limit = usize::try_from(limit).unwrap_or(0);
    let out: Vec<(Labels, f64)> = match r {
        Rule::Recording(rec) => {
            let mut out = Vec::with_capacity(vec.len());
            for (mut l, v) in vec {
                l.set(METRIC_NAME, &rec.record);
                for lbl in &rec.labels {
                    l.set(&lbl.name, &lbl.value);
                }
                out.push((l, v));
            }
            let mut seen = HashSet::with_capacity(out.len());
            if !out.iter().all(|(l, _)| seen.insert(l)) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            if limit > 0 && out.len() > limit {
                return Err(format!(
                    "exceeded limit of {limit} with {} series",
                    out.len()
                ));
            }
            out
        }
        Rule::Alerting(a) => {
            let query = |text: &str| -> Result<Vec<(Labels, f64)>, String> {
                let expr = crate::promql::parse_expr(text).map_err(|e| e.to_string())?;
                match eng
                    .instant(q, &expr, Timestamp(ts))
                    .map_err(|e| e.to_string())?
                {
                    Value::Vector(v) => Ok(v.into_iter().map(|s| (s.labels, s.v)).collect()),
                    Value::Scalar(s) => Ok(vec![(Labels::empty(), s.v)]),
                    _ => Err("rule result is not a vector or scalar".into()),
                }
            };
            state.alerts.step(a, ctx, ts, &vec, limit, Some(&query))?
        }
    };
    let seen: HashSet<Labels> = out.iter().map(|(l, _)| l.clone()).collect();
    let mut series: Vec<Series> = out
        .into_iter()
        .map(|(labels, v)| Series {
            labels,
            samples: vec![Sample::new(ts, v)],
        })
        .collect();
    series.extend(state.prev.difference(&seen).map(|gone| Series {
        labels: gone.clone(),
        samples: vec![Sample::new(ts, stale_nan())],
    }));
    state.prev = seen;
    if !series.is_empty() {
        app.append(series).map_err(|e| e.to_string())?;
    }
    Ok(())
}
