// Copyright 2013 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! The alert state machine of an alerting rule, a pure step function over the rule's query
//! result, ported from `AlertingRule.Eval` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/rules/alerting.go#L324-L468>:
//! pending until `for` has elapsed, then firing; `keep_firing_for`; resolved alerts kept
//! 15 minutes; the `ALERTS` and `ALERTS_FOR_STATE` samples it writes back.

use std::collections::HashMap;

use super::template::{QueryFn, TemplateData};
use super::{AlertingRule, RawLabels};
use crate::model::{Labels, METRIC_NAME};

const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: RawLabels,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub keep_firing_since: Option<i64>,
}

/// What templates may refer to besides the alert's own labels and value.
#[derive(Clone, Debug, Default)]
pub struct AlertContext {
    pub external_labels: Labels,
    /// `$externalURL`.
    pub external_url: String,
    /// What the `externalURL` and `pathPrefix` template functions return; `None` in rule unit
    /// tests, as in promtool (see [`super::template::TemplateData::server_url`]).
    pub server_url: Option<String>,
}

/// The active alerts of one alerting rule.
#[derive(Clone, Debug, Default)]
pub struct AlertRuleState {
    active: HashMap<Labels, Alert>,
}

impl AlertRuleState {
    /// The pending and firing alerts.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// Every alert held, resolved ones included (kept 15 minutes): what Prometheus's notifier
    /// sends and re-sends.
    pub fn all_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Seeds an alert from a previous run (its `ALERTS_FOR_STATE` sample): pending since
    /// `active_at`, so the next [`AlertRuleState::step`] keeps that time and fires at once if
    /// `for` has elapsed since. An alert the next step's result does not contain is dropped
    /// there, as any pending alert is. `labels` are the alert's (no `__name__`).
    pub fn restore(&mut self, labels: Labels, active_at: i64) {
        self.active.insert(
            labels.clone(),
            Alert {
                labels,
                annotations: RawLabels::default(),
                state: AlertState::Pending,
                value: f64::NAN,
                active_at,
                fired_at: None,
                resolved_at: None,
                keep_firing_since: None,
            },
        );
    }

    /// One evaluation at `ts` over the rule's query result; returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples to write, or Prometheus's error.
    pub fn step(
        &mut self,
        rule: &AlertingRule,
        ctx: &AlertContext,
        ts: i64,
        result: &[(Labels, f64)],
        limit: usize,
        query: Option<QueryFn<'_>>,
    ) -> Result<Vec<(Labels, f64)>, String> {
        let mut current: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
        for (metric, v) in result {
            let data = TemplateData {
                labels: metric,
                external_labels: &ctx.external_labels,
                external_url: &ctx.external_url,
                value: *v,
                query,
                server_url: ctx.server_url.as_deref(),
            };
            let (labels, annotations) = rule.templates.expand(&data);
            let mut lbs = metric.without_metric_name();
            for (name, value) in labels {
                lbs.set(name, &value);
            }
            lbs.set("alertname", &rule.alert);
            let mut ann = RawLabels::default();
            for (name, value) in annotations {
                ann.set(name, &value);
            }
            if current.contains_key(&lbs) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
            current.insert(
                lbs.clone(),
                Alert {
                    labels: lbs,
                    annotations: ann,
                    state: AlertState::Pending,
                    value: *v,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                },
            );
        }
        for (k, a) in &current {
            match self.active.get_mut(k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations.clone();
                }
                _ => {
                    self.active.insert(k.clone(), a.clone());
                }
            }
        }
        let mut out = Vec::new();
        let mut num_active = 0usize;
        let mut remove = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if !current.contains_key(k) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < rule.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(k.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            num_active += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= rule.for_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            out.push((sample_labels(rule, a, "ALERTS", Some(a.state)), 1.0));
            out.push((
                sample_labels(rule, a, "ALERTS_FOR_STATE", None),
                a.active_at.div_euclid(1000) as f64,
            ));
        }
        for k in remove {
            self.active.remove(&k);
        }
        if limit > 0 && num_active > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {num_active} alerts"
            ));
        }
        Ok(out)
    }
}

fn sample_labels(rule: &AlertingRule, a: &Alert, name: &str, state: Option<AlertState>) -> Labels {
    let mut l = rule.labels.clone();
    for x in &a.labels {
        l.set(&x.name, &x.value);
    }
    l.set(METRIC_NAME, name);
    l.set("alertname", &rule.alert);
    if let Some(s) = state {
        l.set("alertstate", s.as_str());
    }
    l
}

#[cfg(test)]
mod tests {
    use promql_parser::parser::Expr;

    use super::*;

    fn rule(for_ms: i64) -> AlertingRule {
        AlertingRule::new(
            "A".into(),
            Expr::from(promql_parser::parser::VectorSelector::from("up")),
            for_ms,
            0,
            Labels::from_pairs([("severity", "page")]).unwrap(),
            RawLabels::from_pairs([("summary", "{{ $labels.job }} down")]),
        )
    }

    fn firing(s: &AlertRuleState) -> usize {
        s.active_alerts()
            .filter(|a| a.state == AlertState::Firing)
            .count()
    }

    #[test]
    fn a_restored_alert_keeps_its_active_time() {
        let r = rule(60_000);
        let ctx = AlertContext::default();
        let metric = Labels::from_pairs([("__name__", "x"), ("job", "a")]).unwrap();
        let key =
            Labels::from_pairs([("alertname", "A"), ("job", "a"), ("severity", "page")]).unwrap();
        let mut s = AlertRuleState::default();
        s.restore(key.clone(), 1_000);
        // Active since 1s, evaluated at 90s: `for` (60s) has elapsed, so it fires at once.
        s.step(&r, &ctx, 90_000, &[(metric, 1.0)], 0, None).unwrap();
        let a = s.active_alerts().next().unwrap();
        assert_eq!((a.state, a.active_at), (AlertState::Firing, 1_000));
        // A restored alert whose condition is gone is dropped.
        let mut s = AlertRuleState::default();
        s.restore(key, 1_000);
        s.step(&r, &ctx, 90_000, &[], 0, None).unwrap();
        assert_eq!(s.active_alerts().count(), 0);
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let r = rule(120_000);
        let ctx = AlertContext::default();
        let mut s = AlertRuleState::default();
        let up = Labels::from_pairs([("__name__", "up"), ("job", "j")]).unwrap();
        let v = vec![(up, 0.0)];
        let out = s.step(&r, &ctx, 0, &v, 0, None).unwrap();
        assert_eq!(firing(&s), 0);
        assert_eq!(out[0].0.get("alertstate"), Some("pending"));
        s.step(&r, &ctx, 60_000, &v, 0, None).unwrap();
        assert_eq!(firing(&s), 0, "never firing before `for` has elapsed");
        s.step(&r, &ctx, 120_000, &v, 0, None).unwrap();
        assert_eq!(firing(&s), 1);
        let a = s.active_alerts().next().unwrap();
        assert_eq!(a.annotations.get("summary"), Some("j down"));
        assert_eq!(a.labels.get("severity"), Some("page"));
        let out = s.step(&r, &ctx, 180_000, &[], 0, None).unwrap();
        assert!(out.is_empty());
        assert_eq!(s.active_alerts().count(), 0);
    }
}
