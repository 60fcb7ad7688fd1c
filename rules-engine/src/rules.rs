//! Rule files and rules. Rules are a closed enum (STYLE.md item 5). This issue covers parsing
//! and validating rule files ([`file`]); evaluation of recording rules is used by the test
//! runner, and the alert state machine comes next.

pub mod file;

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
