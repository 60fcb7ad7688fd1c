//! Rule files and rules. Rules are a closed enum (STYLE.md item 5): parsing and validation
//! ([`mod@file`]), the alert state machine ([`alerting`]), alert templates ([`template`]) and
//! a group's evaluation at one timestamp ([`group`]). Scheduling is the caller's: the gateway's
//! scheduler or the test runner.

pub mod alerting;
pub mod check;
pub mod file;
pub mod group;
pub mod template;

pub use file::{RuleFileError, RuleGroup, load_rule_file};

use promql_parser::parser::Expr;

use std::fmt;

use crate::model::{Label, Labels, write_label_set};

/// A parsed rule.
#[derive(Debug, Clone)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.record,
            Rule::Alerting(a) => &a.alert,
        }
    }

    pub fn expr(&self) -> &Expr {
        match self {
            Rule::Recording(r) => &r.expr,
            Rule::Alerting(a) => &a.expr,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RecordingRule {
    pub record: String,
    pub expr: Expr,
    pub labels: Labels,
}

#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub alert: String,
    pub expr: Expr,
    /// Milliseconds.
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub labels: Labels,
    pub annotations: RawLabels,
    /// `labels` and `annotations` parsed as templates.
    pub templates: std::sync::Arc<template::AlertTemplates>,
}

impl AlertingRule {
    pub fn new(
        alert: String,
        expr: Expr,
        for_ms: i64,
        keep_firing_for_ms: i64,
        labels: Labels,
        annotations: RawLabels,
    ) -> Self {
        let templates =
            std::sync::Arc::new(template::AlertTemplates::new(&alert, &labels, &annotations));
        AlertingRule {
            alert,
            expr,
            for_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            templates,
        }
    }
}

/// A sorted list of label pairs that, unlike [`Labels`], keeps empty values: Prometheus's
/// `labels.Labels` as `FromMap` and `ScratchBuilder` build it, which is what alert annotations
/// and promtool's expected alert labels are (an annotation expanding to "" stays, as `a=""`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawLabels(Vec<Label>);

impl RawLabels {
    /// Builds the list from pairs in any order (a later duplicate name wins).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut out = Self::default();
        for (n, v) in pairs {
            out.set(&n.into(), &v.into());
        }
        out
    }

    /// Sets `name` to `value` (empty values kept).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => value.clone_into(&mut self.0[i].value),
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }
}

impl From<&Labels> for RawLabels {
    fn from(l: &Labels) -> Self {
        Self(l.as_slice().to_vec())
    }
}

impl<'a> IntoIterator for &'a RawLabels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prometheus's `labels.String()` format, as [`Labels`] prints.
impl fmt::Display for RawLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_label_set(f, &self.0)
    }
}
