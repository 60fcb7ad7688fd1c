//! Rule files and rules. Rules are a closed enum (STYLE.md item 5): parsing and validation
//! ([`mod@file`]), the alert state machine ([`alerting`]) and alert templates ([`template`]).
//! Group scheduling is not built yet; the test runner drives evaluation.

pub mod alerting;
pub mod file;
pub mod template;

pub use file::{RuleFileError, RuleGroup, load_rule_file};

use promql_parser::parser::Expr;

use crate::model::Labels;

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
    pub annotations: Labels,
}
