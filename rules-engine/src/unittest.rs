// Copyright The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! The promtool-compatible rule test runner behind `promgate test rules`, with Prometheus
//! 2.42's `cmd/promtool/unittest.go` semantics and output:
//!
//! * the file is read strictly (unknown fields are errors); `rule_files` are resolved against
//!   the test file's directory and globbed;
//! * each test group loads its `input_series` lazily (only samples up to the current
//!   evaluation step exist), evaluates the rule groups at `0, ei, 2ei, ... <= max eval_time`,
//!   checks `alert_rule_test`s on the way and `promql_expr_test`s at the end;
//! * results go to stdout (`Unit Testing:  FILE`, `  SUCCESS`) and failures to stderr
//!   (`  FAILED:` and one block per error), with promtool's exact formats.
//!
//! Alerting rules are parsed but not yet evaluated (the alert state machine is the next
//! issue): an `alert_rule_test` sees no alerts, which is right only when no rule defines the
//! alert.

mod group;
pub mod series;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::duration::parse_model_duration;

/// Options of a test run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only run test groups whose name matches one of these regular expressions (promtool's
    /// `--run`); empty runs all.
    pub run: Vec<String>,
}

/// Runs the test files as `promtool test rules` does, writing promtool's output to `out`
/// (its stdout and stderr interleaved in order). Returns whether every test passed
/// (promtool exits 0 then, 1 otherwise).
pub fn run_test_files(files: &[PathBuf], out: &mut dyn Write) -> io::Result<bool> {
    let mut o = Output { out, err: None };
    run(files, &RunOptions::default(), &mut o)
}

/// Like [`run_test_files`], with promtool's split of stdout and stderr and options.
pub fn run_test_files_with(
    files: &[PathBuf],
    opts: &RunOptions,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> io::Result<bool> {
    let mut o = Output {
        out: stdout,
        err: Some(stderr),
    };
    run(files, opts, &mut o)
}

struct Output<'a> {
    out: &'a mut dyn Write,
    err: Option<&'a mut dyn Write>,
}

impl Output<'_> {
    fn err(&mut self) -> &mut dyn Write {
        match self.err.as_deref_mut() {
            Some(e) => e,
            None => &mut *self.out,
        }
    }
}

fn run(files: &[PathBuf], opts: &RunOptions, o: &mut Output<'_>) -> io::Result<bool> {
    // promtool's command line refuses missing files before testing anything.
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        writeln!(
            o.err(),
            "promgate: error: path '{}' does not exist, try --help",
            missing.display()
        )?;
        return Ok(false);
    }
    let mut failed = false;
    for f in files {
        writeln!(o.out, "Unit Testing:  {}", f.display())?;
        let errs = rule_unit_test(f, opts, o)?;
        if errs.is_empty() {
            writeln!(o.out, "  SUCCESS")?;
        } else {
            writeln!(o.err(), "  FAILED:")?;
            for e in errs {
                writeln!(o.err(), "{e}")?;
                writeln!(o.out)?;
            }
            failed = true;
        }
        writeln!(o.out)?;
    }
    Ok(!failed)
}

/// A YAML scalar read as a string, as yaml.v2 does for string fields.
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        Str(String),
        Int(i64),
        UInt(u64),
        Float(f64),
        Bool(bool),
        Null(()),
    }
    Ok(match S::deserialize(d)? {
        S::Str(s) => s,
        S::Int(i) => i.to_string(),
        S::UInt(u) => u.to_string(),
        S::Float(f) => format!("{f}"),
        S::Bool(b) => b.to_string(),
        S::Null(()) => String::new(),
    })
}

/// A `model.Duration` in milliseconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let s = scalar_string(d)?;
    if s.is_empty() {
        return Ok(0);
    }
    parse_model_duration(&s).map_err(serde::de::Error::custom)
}

/// A value that may be written as YAML `null` (the zero value, as yaml.v2 reads it).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitTestFile {
    #[serde(default, deserialize_with = "nullable")]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "duration")]
    evaluation_interval: i64,
    #[serde(default, deserialize_with = "nullable")]
    group_eval_order: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, deserialize_with = "duration")]
    interval: i64,
    #[serde(default, deserialize_with = "nullable")]
    input_series: Vec<SeriesYaml>,
    #[serde(default, deserialize_with = "nullable")]
    alert_rule_test: Vec<AlertTestCase>,
    #[serde(default, deserialize_with = "nullable")]
    promql_expr_test: Vec<PromqlTestCase>,
    /// Parsed for compatibility; used by alert templates (next issue).
    #[serde(default, deserialize_with = "nullable")]
    #[allow(dead_code)]
    external_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_string")]
    #[allow(dead_code)]
    external_url: String,
    #[serde(default, deserialize_with = "scalar_string")]
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesYaml {
    #[serde(default, deserialize_with = "scalar_string")]
    series: String,
    #[serde(default, deserialize_with = "scalar_string")]
    values: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestCase {
    #[serde(default, deserialize_with = "duration")]
    eval_time: i64,
    #[serde(default, deserialize_with = "scalar_string")]
    alertname: String,
    #[serde(default, deserialize_with = "nullable")]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default, deserialize_with = "nullable")]
    exp_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTestCase {
    #[serde(default, deserialize_with = "scalar_string")]
    expr: String,
    #[serde(default, deserialize_with = "duration")]
    eval_time: i64,
    #[serde(default, deserialize_with = "nullable")]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default, deserialize_with = "scalar_string")]
    labels: String,
    #[serde(default, deserialize_with = "nullable")]
    value: f64,
}

/// Go's `filepath.Join(dir, rel)` followed by `Clean`.
fn join_clean(dir: &Path, rel: &str) -> String {
    let joined = if dir.as_os_str().is_empty() {
        rel.to_string()
    } else {
        format!("{}/{}", dir.display(), rel)
    };
    clean_path(&joined)
}

fn clean_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let s = parts.join("/");
    match (abs, s.is_empty()) {
        (true, _) => format!("/{s}"),
        (false, true) => ".".into(),
        (false, false) => s,
    }
}

/// `filepath.Glob` for patterns whose wildcards are in the last element.
fn glob(pattern: &str) -> Vec<String> {
    if !pattern.contains(['*', '?', '[']) {
        return if Path::new(pattern).exists() {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        };
    }
    let (dir, file) = match pattern.rsplit_once('/') {
        Some((d, f)) => (d.to_string(), f.to_string()),
        None => (".".to_string(), pattern.to_string()),
    };
    let mut re = String::from("^");
    for c in file.chars() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' | ']' => re.push(c),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    let Ok(re) = regex::Regex::new(&re) else {
        return Vec::new();
    };
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| re.is_match(n))
        .map(|n| {
            if pattern.contains('/') {
                format!("{dir}/{n}")
            } else {
                n
            }
        })
        .collect();
    out.sort();
    out
}

/// yaml.v2 decodes a plain scalar into a string field as its source text (`values: 0x10` stays
/// `"0x10"`, `labels: 1e3` stays `"1e3"`); a YAML deserializer resolves it to a number first.
/// So plain scalars of the string-typed keys are quoted before parsing.
fn quote_plain_scalars(src: &str) -> String {
    const KEYS: &[&str] = &[
        "values",
        "series",
        "labels",
        "expr",
        "alertname",
        "name",
        "external_url",
    ];
    let mut out = String::with_capacity(src.len() + 64);
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    for (li, line) in lines.iter().enumerate() {
        let line = *line;
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let t = body.trim_start();
        let lead = &body[..body.len() - t.len()];
        let (dash, t2) = match t.strip_prefix("- ") {
            Some(r) => ("- ", r.trim_start()),
            None => ("", t),
        };
        let pad = &t[dash.len()..t.len() - t2.len()];
        // A plain scalar continued on more-indented lines is left alone.
        let key_col = lead.len() + dash.len() + pad.len();
        let continued = lines[li + 1..]
            .iter()
            .map(|l| l.trim_end_matches(['\n', '\r']))
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .is_some_and(|l| l.len() - l.trim_start().len() > key_col);
        let quoted = KEYS.iter().filter(|_| !continued).find_map(|k| {
            let v = t2.strip_prefix(k)?.strip_prefix(':')?;
            if !v.starts_with([' ', '\t']) {
                return None;
            }
            let v = v.trim();
            let v = match v.find(" #") {
                Some(i) => v[..i].trim_end(),
                None => v,
            };
            let plain = !v.is_empty()
                && !v.starts_with([
                    '\'', '"', '|', '>', '{', '[', '&', '*', '!', '#', '%', '@', '`',
                ])
                && !matches!(v, "~" | "null" | "Null" | "NULL");
            plain.then(|| format!("{k}: '{}'", v.replace('\'', "''")))
        });
        match quoted {
            Some(q) => {
                out.push_str(lead);
                out.push_str(dash);
                out.push_str(pad);
                out.push_str(&q);
                out.push_str(eol);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A YAML error in yaml.v2's words, as far as they can be recovered.
fn yaml_error(e: &serde_norway::Error) -> String {
    let full = e.to_string();
    let line = e.location().map_or(0, |l| l.line());
    let body = full.split(" at line ").next().unwrap_or(&full);
    let (path, msg) = match body.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p, m),
        _ => ("", body),
    };
    let seg = path.rsplit('.').next().unwrap_or_default();
    let seg = seg.split('[').next().unwrap_or_default();
    let ty = match seg {
        "tests" => "testGroup",
        "input_series" => "series",
        "alert_rule_test" => "alertTestCase",
        "exp_alerts" => "alert",
        "promql_expr_test" => "promqlTestCase",
        "exp_samples" => "sample",
        _ => "unitTestFile",
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return format!(
            "yaml: unmarshal errors:\n  line {line}: field {field} not found in type main.{ty}"
        );
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return format!(
            "yaml: unmarshal errors:\n  line {}: field {field} already set in type main.{ty}",
            line + 1
        );
    }
    if msg.starts_with("not a valid duration string") || msg.starts_with("empty duration") {
        return msg.to_string();
    }
    if path.is_empty() && e.location().is_some() {
        // Parser errors: yaml.v2 reports the 0-based line of the problem mark.
        let parser_error = msg.starts_with("did not find expected");
        let l = if parser_error {
            line.saturating_sub(1)
        } else {
            line
        };
        return format!("yaml: line {l}: {msg}");
    }
    format!("yaml: unmarshal errors:\n  line {line}: {msg}")
}

fn rule_unit_test(file: &Path, opts: &RunOptions, o: &mut Output<'_>) -> io::Result<Vec<String>> {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            return Ok(vec![format!(
                "open {}: {}",
                file.display(),
                io_error_text(&e)
            )]);
        }
    };
    let mut utf: UnitTestFile = if src.trim().is_empty() {
        UnitTestFile::default()
    } else {
        match serde_norway::from_str(&quote_plain_scalars(&src)) {
            Ok(u) => u,
            Err(e) => return Ok(vec![yaml_error(&e)]),
        }
    };
    let base = file.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for rf in &utf.rule_files {
        let p = if !rf.is_empty() && !rf.starts_with('/') {
            join_clean(base, rf)
        } else {
            rf.clone()
        };
        let m = glob(&p);
        if m.is_empty() {
            writeln!(o.err(), "  WARNING: no file match pattern {p}")?;
        }
        rule_files.extend(m);
    }
    if utf.evaluation_interval == 0 {
        utf.evaluation_interval = 60_000;
    }
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    for (i, g) in utf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            return Ok(vec![format!(
                "group name repeated in evaluation order: {g}"
            )]);
        }
    }
    let run_res: Vec<regex::Regex> = opts
        .run
        .iter()
        .filter_map(|r| regex::Regex::new(r).ok())
        .collect();
    let mut errs = Vec::new();
    for tg in &utf.tests {
        if !run_res.is_empty() && !run_res.iter().any(|r| r.is_match(&tg.name)) {
            continue;
        }
        errs.extend(group::run_group(
            tg,
            utf.evaluation_interval,
            &order,
            &rule_files,
        ));
    }
    Ok(errs)
}

fn io_error_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_keep_their_text() {
        let src = "tests:\n  - input_series:\n      - series: up\n        values: 0x10 # c\n      - {series: a}\n    promql_expr_test:\n      - expr: 'x'\n        eval_time: 1m\n";
        let q = quote_plain_scalars(src);
        assert!(q.contains("series: 'up'\n"), "{q}");
        assert!(q.contains("values: '0x10'\n"), "{q}");
        assert!(q.contains("expr: 'x'\n"), "{q}");
        let multi = "tests:\n  - promql_expr_test:\n      - expr: sum(a)\n          / 2\n        eval_time: 1m\n";
        let f: UnitTestFile = serde_norway::from_str(&quote_plain_scalars(multi)).unwrap();
        assert_eq!(f.tests[0].promql_expr_test[0].expr, "sum(a) / 2");
        let f: UnitTestFile = serde_norway::from_str(&q).unwrap();
        assert_eq!(f.tests[0].input_series[0].values, "0x10");
        assert_eq!(f.tests[0].promql_expr_test[0].eval_time, 60_000);
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(join_clean(Path::new("."), "rules.yml"), "rules.yml");
        assert_eq!(join_clean(Path::new("a/b"), "../r.yml"), "a/r.yml");
        assert_eq!(join_clean(Path::new("/x"), "./r.yml"), "/x/r.yml");
        assert_eq!(clean_path("../a/./b/"), "../a/b");
    }
}
