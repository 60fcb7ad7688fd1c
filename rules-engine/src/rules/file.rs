// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! The rule-file schema of Prometheus 2.42 (`model/rulefmt/rulefmt.go`) with its validation
//! and error messages (`<line>:<col>: group "g", rule 1, "name": ...`). Line and column are
//! recovered from the source text, since the YAML deserializer does not keep spans: the
//! position of the n-th `expr:` value belongs to the n-th rule.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{AlertingRule, RecordingRule, Rule};
use crate::duration::parse_model_duration;
use crate::model::{Labels, is_valid_label_name, is_valid_metric_name};
use crate::promql::parse_expr;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroupsYaml {
    #[serde(default)]
    groups: Vec<RuleGroupYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroupYaml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    rules: Vec<RuleNodeYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleNodeYaml {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// A group of rules as loaded from a file.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    /// Milliseconds; 0 means the global evaluation interval.
    pub interval_ms: i64,
    pub limit: i64,
    pub rules: Vec<Rule>,
}

/// One problem in a rule file, printed as Prometheus prints it (without the file prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleFileError(pub String);

/// Where the `n`-th `expr:` value of `src` starts (1-based line and column).
fn expr_positions(src: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (ln, line) in src.lines().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let (t, indent) = match t.strip_prefix("- ") {
            Some(r) => (r.trim_start(), indent + (t.len() - r.trim_start().len())),
            None => (t, indent),
        };
        if let Some(rest) = t.strip_prefix("expr:") {
            let vstart = rest.len() - rest.trim_start().len();
            out.push((ln + 1, indent + 5 + vstart + 1));
        }
    }
    out
}

fn labels_of(m: Option<BTreeMap<String, String>>) -> Labels {
    Labels::from_pairs(m.unwrap_or_default()).unwrap_or_default()
}

fn duration(s: Option<&str>) -> Result<i64, String> {
    match s {
        None => Ok(0),
        Some(d) => parse_model_duration(d),
    }
}

/// Parses and validates a rule file's text. `Err` lists every problem found.
pub fn parse_rule_file(src: &str, file: &str) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let y: RuleGroupsYaml = match serde_norway::from_str(src) {
        Ok(y) => y,
        Err(e) if src.trim().is_empty() => {
            let _ = e;
            RuleGroupsYaml { groups: Vec::new() }
        }
        Err(e) => return Err(vec![RuleFileError(e.to_string())]),
    };
    let pos = expr_positions(src);
    let mut errs = Vec::new();
    let mut groups = Vec::new();
    let mut k = 0usize;
    let mut seen_names: Vec<String> = Vec::new();
    for g in y.groups {
        if g.name.is_empty() {
            errs.push(RuleFileError("Groupname must not be empty".into()));
        } else if seen_names.contains(&g.name) {
            errs.push(RuleFileError(format!(
                "groupname: \"{}\" is repeated in the same file",
                g.name
            )));
        }
        seen_names.push(g.name.clone());
        let interval_ms = match duration(g.interval.as_deref()) {
            Ok(d) => d,
            Err(e) => {
                errs.push(RuleFileError(e));
                0
            }
        };
        let mut rules = Vec::new();
        for (ri, r) in g.rules.into_iter().enumerate() {
            let name = r.record.clone().or(r.alert.clone()).unwrap_or_default();
            let at = if r.expr.is_some() {
                let p = pos.get(k).copied();
                k += 1;
                p
            } else {
                None
            };
            let mut fail = |msg: String| {
                let prefix = at.map_or(String::new(), |(l, c)| format!("{l}:{c}: "));
                errs.push(RuleFileError(format!(
                    "{prefix}group {:?}, rule {}, {:?}: {msg}",
                    g.name,
                    ri + 1,
                    name
                )));
            };
            if r.record.is_some() && r.alert.is_some() {
                fail("only one of 'record' and 'alert' must be set".into());
                continue;
            }
            if r.record.is_none() && r.alert.is_none() {
                fail("one of 'record' or 'alert' must be set".into());
                continue;
            }
            let Some(expr_src) = r.expr.as_deref().filter(|e| !e.is_empty()) else {
                fail("field 'expr' must be set in rule".into());
                continue;
            };
            let expr = match parse_expr(expr_src) {
                Ok(e) => e,
                Err(e) => {
                    fail(format!("could not parse expression: {e}"));
                    continue;
                }
            };
            for l in r.labels.iter().flat_map(|m| m.keys()) {
                if !is_valid_label_name(l) {
                    fail(format!("invalid label name: {l}"));
                }
            }
            if let Some(rec) = r.record {
                if r.annotations.is_some() {
                    fail("invalid field 'annotations' in recording rule".into());
                }
                if r.for_.is_some() {
                    fail("invalid field 'for' in recording rule".into());
                }
                if r.keep_firing_for.is_some() {
                    fail("invalid field 'keep_firing_for' in recording rule".into());
                }
                if !is_valid_metric_name(&rec) {
                    fail(format!("invalid recording rule name: {rec}"));
                }
                rules.push(Rule::Recording(RecordingRule {
                    record: rec,
                    expr,
                    labels: labels_of(r.labels),
                }));
            } else if let Some(alert) = r.alert {
                let for_ms = duration(r.for_.as_deref()).unwrap_or_else(|e| {
                    fail(e);
                    0
                });
                let keep_firing_for_ms =
                    duration(r.keep_firing_for.as_deref()).unwrap_or_else(|e| {
                        fail(e);
                        0
                    });
                let annotations = r.annotations.unwrap_or_default();
                let mut template_errors = Vec::new();
                for (kind, map) in [
                    ("label", r.labels.as_ref()),
                    ("annotation", Some(&annotations)),
                ] {
                    for (k, v) in map.into_iter().flatten() {
                        if let Err(e) = super::template::check(&alert, v) {
                            template_errors.push(format!("{kind} {k:?}: {e}"));
                        }
                    }
                }
                for e in template_errors {
                    // Prometheus reports these without a position.
                    errs.push(RuleFileError(format!(
                        "group {:?}, rule {}, {:?}: {e}",
                        g.name,
                        ri + 1,
                        name
                    )));
                }
                rules.push(Rule::Alerting(AlertingRule::new(
                    alert,
                    expr,
                    for_ms,
                    keep_firing_for_ms,
                    labels_of(r.labels),
                    super::RawLabels::from_pairs(annotations),
                )));
            }
        }
        groups.push(RuleGroup {
            name: g.name,
            file: file.to_string(),
            interval_ms,
            limit: g.limit.unwrap_or(0),
            rules,
        });
    }
    if errs.is_empty() {
        Ok(groups)
    } else {
        Err(errs)
    }
}

/// Reads and parses a rule file; errors are prefixed with the file name, as promtool prints.
pub fn load_rule_file(path: &Path) -> Result<Vec<RuleGroup>, Vec<String>> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| vec![format!("{name}: {e}")])?;
    parse_rule_file(&src, &name)
        .map_err(|errs| errs.into_iter().map(|e| format!("{name}: {e}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_bad_expression_with_position() {
        let src = "groups:\n  - name: bad-syntax\n    rules:\n      - record: x\n        expr: 'test +'\n";
        let errs = parse_rule_file(src, "f").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].0.starts_with(
                "5:15: group \"bad-syntax\", rule 1, \"x\": could not parse expression: "
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn parses_both_kinds() {
        let src = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5m\n  - record: r\n    expr: sum(up)\n";
        let g = parse_rule_file(src, "f").unwrap();
        assert_eq!(g[0].rules.len(), 2);
        assert!(matches!(&g[0].rules[0], Rule::Alerting(a) if a.for_ms == 300_000));
        assert!(parse_rule_file("groups: []\n", "f").unwrap().is_empty());
        assert!(parse_rule_file("", "f").unwrap().is_empty());
    }
}
