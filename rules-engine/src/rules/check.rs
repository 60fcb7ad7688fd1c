// Copyright 2013 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! `promgate check rules`, as `promtool check rules` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/cmd/promtool/main.go>: per file
//! "Checking FILE", then `SUCCESS: N rules found` on stdout or `FAILED:` and the errors on
//! stderr; the duplicate-rules lint; exit 0, 1 on errors, 3 when a fatal lint fails.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{Rule, RuleGroup, load_rule_file};
use crate::model::Labels;

/// Which lints run, and whether they fail the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LintOptions {
    pub duplicate_rules: bool,
    pub fatal: bool,
}

impl Default for LintOptions {
    fn default() -> Self {
        Self {
            duplicate_rules: true,
            fatal: false,
        }
    }
}

/// Checks the files; returns promtool's exit code.
pub fn check_rule_files(
    files: &[PathBuf],
    lint: LintOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<i32> {
    let (mut failed, mut lint_failed) = (false, false);
    for f in files {
        writeln!(out, "Checking {}", f.display())?;
        match load_rule_file(f) {
            Err(errors) => {
                writeln!(err, "  FAILED:")?;
                for e in errors {
                    writeln!(err, "{e}")?;
                }
                failed = true;
            }
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                let dups = if lint.duplicate_rules {
                    duplicates(&groups)
                } else {
                    Vec::new()
                };
                if dups.is_empty() {
                    writeln!(out, "  SUCCESS: {n} rules found")?;
                } else {
                    writeln!(err, "  FAILED:")?;
                    let mut msg = format!("lint error {} duplicate rule(s) found.\n", dups.len());
                    for (metric, labels) in &dups {
                        msg.push_str(&format!("Metric: {metric}\nLabel(s):\n"));
                        for l in labels {
                            msg.push_str(&format!("\t{}: {}\n", l.name, l.value));
                        }
                    }
                    msg.push_str("Might cause inconsistency while recording expressions");
                    writeln!(err, "{msg}")?;
                    lint_failed = true;
                }
            }
        }
        writeln!(out)?;
    }
    Ok(if failed {
        1
    } else if lint_failed && lint.fatal {
        3
    } else {
        0
    })
}

/// Rules with the same name (record or alert) and labels, each reported once.
fn duplicates(groups: &[RuleGroup]) -> Vec<(String, Labels)> {
    let mut rules: Vec<(String, Labels)> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .map(|r| {
            let labels = match r {
                Rule::Recording(x) => x.labels.clone(),
                Rule::Alerting(x) => x.labels.clone(),
            };
            (r.name().to_string(), labels)
        })
        .collect();
    rules.sort();
    let mut out: Vec<(String, Labels)> = Vec::new();
    for w in rules.windows(2) {
        if w[0] == w[1] && out.last() != Some(&w[1]) {
            out.push(w[1].clone());
        }
    }
    out
}
