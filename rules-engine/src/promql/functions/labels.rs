// Copyright 2015 The Prometheus Authors
// Licensed under the Apache License, Version 2.0 (the "License"): http://www.apache.org/licenses/LICENSE-2.0
//! `label_replace`, `label_join` and the labels `absent`/`absent_over_time` invent, ported
//! from `funcLabelReplace`, `funcLabelJoin` and `createLabelsForAbsentFunction` in
//! <https://github.com/prometheus/prometheus/blob/v2.42.0/promql/functions.go>.

use promql_parser::label::{MatchOp, Matcher};
use regex::Regex;

use crate::model::{Labels, METRIC_NAME, is_valid_label_name};

/// A compiled `label_replace(v, dst, replacement, src, regex)`.
#[derive(Debug)]
pub struct LabelReplace {
    dst: String,
    repl: String,
    src: String,
    re: Regex,
}

impl LabelReplace {
    pub fn new(dst: &str, repl: &str, src: &str, regex: &str) -> Result<Self, String> {
        let re = Regex::new(&format!("^(?:{regex})$"))
            .map_err(|_| format!("invalid regular expression in label_replace(): {regex}"))?;
        if !is_valid_label_name(dst) {
            return Err(format!(
                "invalid destination label name in label_replace(): {dst}"
            ));
        }
        Ok(Self {
            dst: dst.to_string(),
            repl: repl.to_string(),
            src: src.to_string(),
            re,
        })
    }

    pub fn apply(&self, l: &Labels) -> Labels {
        let src = l.get(&self.src).unwrap_or("");
        let Some(caps) = self.re.captures(src) else {
            return l.clone();
        };
        let mut res = String::new();
        caps.expand(&self.repl, &mut res);
        let mut out = l.clone();
        out.remove(&self.dst);
        if !res.is_empty() {
            out.set(&self.dst, &res);
        }
        out
    }
}

/// A checked `label_join(v, dst, separator, src...)`.
#[derive(Debug)]
pub struct LabelJoin {
    dst: String,
    sep: String,
    srcs: Vec<String>,
}

impl LabelJoin {
    pub fn new(dst: &str, sep: &str, srcs: Vec<String>) -> Result<Self, String> {
        if let Some(bad) = srcs.iter().find(|s| !is_valid_label_name(s)) {
            return Err(format!("invalid source label name in label_join(): {bad}"));
        }
        if !is_valid_label_name(dst) {
            return Err(format!(
                "invalid destination label name in label_join(): {dst}"
            ));
        }
        Ok(Self {
            dst: dst.to_string(),
            sep: sep.to_string(),
            srcs,
        })
    }

    pub fn apply(&self, l: &Labels) -> Labels {
        let vals: Vec<&str> = self.srcs.iter().map(|s| l.get(s).unwrap_or("")).collect();
        let joined = vals.join(&self.sep);
        let mut out = l.clone();
        if joined.is_empty() {
            out.remove(&self.dst);
        } else {
            out.set(&self.dst, &joined);
        }
        out
    }
}

/// The labels of `absent(sel)`: the selector's equality matchers (except the metric name);
/// a name matched twice, or by another kind of matcher, is left out.
pub fn absent_labels(matchers: &[Matcher]) -> Labels {
    let mut out = Labels::empty();
    let mut has: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name.as_str()) {
            out.set(&m.name, &m.value);
            has.push(&m.name);
        } else {
            out.remove(&m.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_expands_groups_and_removes_on_empty() {
        let l = Labels::from_pairs([("src", "a-b")]).unwrap();
        let r = LabelReplace::new("dst", "$2.$1", "src", "(.*)-(.*)").unwrap();
        assert_eq!(r.apply(&l).get("dst"), Some("b.a"));
        let r = LabelReplace::new("src", "", "src", ".*").unwrap();
        assert_eq!(r.apply(&l).get("src"), None);
        let r = LabelReplace::new("dst", "x", "src", "nomatch").unwrap();
        assert_eq!(r.apply(&l), l);
        assert!(LabelReplace::new("1bad", "", "src", ".*").is_err());
        assert!(LabelReplace::new("dst", "", "src", "(").is_err());
    }

    #[test]
    fn join_and_absent() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2")]).unwrap();
        let j = LabelJoin::new("c", "-", vec!["a".into(), "b".into(), "z".into()]).unwrap();
        assert_eq!(j.apply(&l).get("c"), Some("1-2-"));
        let m = vec![
            Matcher::new(MatchOp::Equal, "__name__", "x"),
            Matcher::new(MatchOp::Equal, "job", "a"),
            Matcher::new(MatchOp::Equal, "job", "b"),
            Matcher::new(MatchOp::Equal, "env", "p"),
        ];
        assert_eq!(absent_labels(&m).to_string(), r#"{env="p"}"#);
    }
}
