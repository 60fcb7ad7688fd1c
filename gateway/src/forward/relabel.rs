//! `write_relabel_configs`: Prometheus 2.42's relabeling (`model/relabel/relabel.go`), applied
//! to each forwarded series after the external labels are merged in, as Prometheus's queue
//! manager does.
//!
//! Written here rather than taken from a crate because the semantics must be Prometheus's to
//! the letter: the YAML defaults and validation, anchored regexes with Go's ASCII-only `\d`,
//! `\w`, `\s` and `\b`, Go's `$1`/`${name}` template expansion (longest name, no leading
//! zeros, malformed references kept literally), `labels.Builder`'s rules (an empty value
//! deletes), and `hashmod`'s MD5 sum. The tests re-express the expectations of Prometheus's
//! `relabel_test.go`.
//!
//! Relabeling runs once per series, not per sample: the forwarder caches the outcome by
//! series id (ids are never reused), so its cost is paid when a series is first forwarded.

use std::fmt;

use md5::{Digest, Md5};
use regex::{Captures, Regex};
use serde::{Deserialize, Deserializer};

/// What a relabel step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        // Prometheus lower-cases the action before matching it.
        Some(match s.to_lowercase().as_str() {
            "replace" => Self::Replace,
            "keep" => Self::Keep,
            "drop" => Self::Drop,
            "keepequal" => Self::KeepEqual,
            "dropequal" => Self::DropEqual,
            "hashmod" => Self::HashMod,
            "labelmap" => Self::LabelMap,
            "labeldrop" => Self::LabelDrop,
            "labelkeep" => Self::LabelKeep,
            "lowercase" => Self::Lowercase,
            "uppercase" => Self::Uppercase,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::KeepEqual => "keepequal",
            Self::DropEqual => "dropequal",
            Self::HashMod => "hashmod",
            Self::LabelMap => "labelmap",
            Self::LabelDrop => "labeldrop",
            Self::LabelKeep => "labelkeep",
            Self::Lowercase => "lowercase",
            Self::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An anchored regex (`^(?:…)$`) with Go's RE2 meaning of the Perl classes.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    source: String,
    re: Regex,
}

impl RelabelRegex {
    /// Compiles `s` as Prometheus does: anchored at both ends.
    pub fn new(s: &str) -> Result<Self, regex::Error> {
        let re = Regex::new(&format!("^(?:{})$", go_classes(s)))?;
        Ok(Self {
            source: s.to_string(),
            re,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// Rewrites `\d \D \w \W \s \S \b \B` to their ASCII meaning in Go's RE2, where the regex
/// crate would give them a Unicode one (`\d` matching `٣`, `\w` matching `é`).
fn go_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Depth of `[...]` nesting (POSIX classes like `[:alpha:]` nest inside a class).
    let mut in_class = 0usize;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rewrite = if in_class > 0 {
                    match n {
                        'd' => Some("0-9"),
                        'w' => Some("0-9A-Za-z_"),
                        's' => Some("\\t\\n\\f\\r "),
                        'D' => Some("[:^digit:]"),
                        'W' => Some("[:^word:]"),
                        'S' => Some("[:^space:]"),
                        _ => None,
                    }
                } else {
                    match n {
                        'd' => Some("[0-9]"),
                        'D' => Some("[^0-9]"),
                        'w' => Some("[0-9A-Za-z_]"),
                        'W' => Some("[^0-9A-Za-z_]"),
                        's' => Some("[\\t\\n\\f\\r ]"),
                        'S' => Some("[^\\t\\n\\f\\r ]"),
                        'b' => Some("(?-u:\\b)"),
                        'B' => Some("(?-u:\\B)"),
                        _ => None,
                    }
                };
                match rewrite {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                class_start = false;
                continue;
            }
            '[' if in_class == 0 => {
                in_class = 1;
                class_start = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                continue;
            }
            '[' if chars.peek() == Some(&':') => in_class += 1,
            ']' if in_class > 0 && !class_start => in_class -= 1,
            _ => {}
        }
        class_start = false;
        out.push(c);
    }
    out
}

/// One `write_relabel_configs` entry, validated as Prometheus 2.42 validates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: RelabelRegex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// The YAML as written, before defaults and validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, deserialize_with = "scalar_list")]
    source_labels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "scalar")]
    separator: Option<String>,
    /// Absent: the default `(.*)`; present but null: the empty regex (as yaml.v2 leaves it).
    #[serde(default, deserialize_with = "nullable_scalar")]
    regex: Option<String>,
    #[serde(default)]
    modulus: Option<u64>,
    #[serde(default, deserialize_with = "scalar")]
    target_label: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    replacement: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    action: Option<String>,
}

/// A YAML scalar as text: yaml.v2 turns `regex: 0` or `replacement: 1` into strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::U(u) => u.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(Scalar::text))
}

fn nullable_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(
        Option::<Scalar>::deserialize(d)?
            .map(Scalar::text)
            .unwrap_or_default(),
    ))
}

fn scalar_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<Vec<Scalar>>::deserialize(d)?.map(|v| v.into_iter().map(Scalar::text).collect()))
}

/// Prometheus's `relabelTarget`: names with `$1`/`${1}` references, no other characters.
fn valid_target(s: &str) -> bool {
    use std::sync::OnceLock;
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$").ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(s))
}

/// `model.LabelName.IsValid`: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl TryFrom<RawConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawConfig) -> Result<Self, String> {
        let regex_given = raw.regex.is_some();
        let source_given = raw.source_labels.is_some();
        let regex_text = raw.regex.unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let regex = RelabelRegex::new(&regex_text)
            .map_err(|e| format!("invalid regex {regex_text:?}: {e}"))?;
        let action = match raw.action.as_deref() {
            None => Action::Replace,
            Some("") => return Err("relabel action cannot be empty".into()),
            Some(a) => Action::parse(a).ok_or_else(|| format!("unknown relabel action {a:?}"))?,
        };
        let c = RelabelConfig {
            source_labels: raw.source_labels.unwrap_or_default(),
            separator: raw
                .separator
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            regex,
            modulus: raw.modulus.unwrap_or(0),
            target_label: raw.target_label.unwrap_or_default(),
            replacement: raw
                .replacement
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
            action,
        };
        use Action::*;
        let a = c.action;
        if c.modulus == 0 && a == HashMod {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(
            a,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && c.target_label.is_empty()
        {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        if matches!(a, Replace | Lowercase | Uppercase | KeepEqual | DropEqual)
            && !valid_target(&c.target_label)
        {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                c.target_label
            ));
        }
        if matches!(a, Lowercase | Uppercase | KeepEqual | DropEqual)
            && c.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == LabelMap && !valid_target(&c.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                c.replacement
            ));
        }
        if a == HashMod && !valid_label_name(&c.target_label) {
            return Err(format!(
                "{:?} is invalid 'target_label' for {a} action",
                c.target_label
            ));
        }
        if matches!(a, KeepEqual | DropEqual)
            && (regex_given
                || c.modulus != 0
                || c.separator != DEFAULT_SEPARATOR
                || c.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, LabelDrop | LabelKeep)
            && (source_given
                || !c.target_label.is_empty()
                || c.modulus != 0
                || c.separator != DEFAULT_SEPARATOR
                || c.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(c)
    }
}

/// Deserializes a list of relabel steps, naming the failing step by its index (the YAML
/// location serde gives is the list's).
pub fn de_configs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RelabelConfig>, D::Error> {
    struct Steps;
    impl<'de> serde::de::Visitor<'de> for Steps {
        type Value = Vec<RelabelConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of relabel configurations")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            loop {
                match seq.next_element::<RelabelConfig>() {
                    Ok(Some(c)) => out.push(c),
                    Ok(None) => return Ok(out),
                    Err(e) => {
                        return Err(serde::de::Error::custom(format!("[{}]: {e}", out.len())));
                    }
                }
            }
        }
    }
    d.deserialize_seq(Steps)
}

/// A label set being relabeled: sorted `(name, value)` pairs without empty values.
pub type LabelPairs = Vec<(String, String)>;

/// Applies `cfgs` in order; `None` when a step drops the series or no label is left.
pub fn process(mut labels: LabelPairs, cfgs: &[RelabelConfig]) -> Option<LabelPairs> {
    for cfg in cfgs {
        labels = step(labels, cfg)?;
    }
    (!labels.is_empty()).then_some(labels)
}

fn get<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .binary_search_by(|(n, _)| n.as_str().cmp(name))
        .map_or("", |i| labels[i].1.as_str())
}

/// Prometheus's `labels.Builder` for one step: deletions and additions against a base,
/// where setting an empty value deletes and a later set of the same name wins.
struct Builder {
    del: Vec<String>,
    add: Vec<(String, String)>,
}

impl Builder {
    fn set(&mut self, name: String, value: String) {
        if value.is_empty() {
            return self.del(&name);
        }
        match self.add.iter_mut().find(|(n, _)| *n == name) {
            Some(a) => a.1 = value,
            None => self.add.push((name, value)),
        }
    }

    fn del(&mut self, name: &str) {
        self.add.retain(|(n, _)| n != name);
        self.del.push(name.to_string());
    }

    fn apply(self, base: LabelPairs) -> LabelPairs {
        if self.del.is_empty() && self.add.is_empty() {
            return base;
        }
        let mut out: LabelPairs = base
            .into_iter()
            .filter(|(n, _)| !self.del.contains(n) && !self.add.iter().any(|(a, _)| a == n))
            .collect();
        if !self.add.is_empty() {
            out.extend(self.add);
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        out
    }
}

fn step(labels: LabelPairs, cfg: &RelabelConfig) -> Option<LabelPairs> {
    let val = cfg
        .source_labels
        .iter()
        .map(|n| get(&labels, n))
        .collect::<Vec<_>>()
        .join(&cfg.separator);
    let mut b = Builder {
        del: Vec::new(),
        add: Vec::new(),
    };
    match cfg.action {
        Action::Drop => {
            if cfg.regex.is_match(&val) {
                return None;
            }
        }
        Action::Keep => {
            if !cfg.regex.is_match(&val) {
                return None;
            }
        }
        Action::DropEqual => {
            if get(&labels, &cfg.target_label) == val {
                return None;
            }
        }
        Action::KeepEqual => {
            if get(&labels, &cfg.target_label) != val {
                return None;
            }
        }
        Action::Replace => {
            // No match: no replacement.
            if let Some(caps) = cfg.regex.re.captures(&val) {
                let target = expand(&cfg.regex.re, &caps, &cfg.target_label);
                if !valid_label_name(&target) {
                    b.del(&cfg.target_label);
                } else {
                    let res = expand(&cfg.regex.re, &caps, &cfg.replacement);
                    if res.is_empty() {
                        b.del(&cfg.target_label);
                    } else {
                        b.set(target, res);
                    }
                }
            }
        }
        Action::Lowercase => b.set(cfg.target_label.clone(), go_lower(&val)),
        Action::Uppercase => b.set(cfg.target_label.clone(), go_upper(&val)),
        Action::HashMod => {
            let sum = Md5::digest(val.as_bytes());
            // Prometheus's sum64 shifts each byte by (15 - i) * 8 bits into a uint64: only
            // the last eight bytes survive, big-endian.
            let mut last = [0u8; 8];
            last.copy_from_slice(&sum[8..16]);
            let m = u64::from_be_bytes(last) % cfg.modulus;
            b.set(cfg.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            for (n, v) in &labels {
                if let Some(caps) = cfg.regex.re.captures(n) {
                    b.set(expand(&cfg.regex.re, &caps, &cfg.replacement), v.clone());
                }
            }
        }
        Action::LabelDrop => {
            for (n, _) in &labels {
                if cfg.regex.is_match(n) {
                    b.del(n);
                }
            }
        }
        Action::LabelKeep => {
            for (n, _) in &labels {
                if !cfg.regex.is_match(n) {
                    b.del(n);
                }
            }
        }
    }
    Some(b.apply(labels))
}

/// Go's `unicode.ToLower` per character (simple case mapping: no context, one character).
fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut m = c.to_lowercase();
            match (m.next(), m.next()) {
                (Some(l), None) => l,
                // İ lowercases to "i̇" in full mapping; its simple mapping is 'i'.
                (Some(l), Some(_)) => l,
                _ => c,
            }
        })
        .collect()
}

/// Go's `unicode.ToUpper` per character: characters whose upper case is several (ß → SS)
/// have no simple mapping and stay as they are.
fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut m = c.to_uppercase();
            match (m.next(), m.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Go's `Regexp.ExpandString`: `$name`, `${name}` and `$$`; the longest run of letters,
/// digits and `_` is the name; a number without leading zeros is a group index; unknown or
/// unmatched groups expand to nothing; a malformed reference leaves the `$` as text.
fn expand(re: &Regex, caps: &Captures<'_>, template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some((name, after)) = extract(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// The name of a reference after `$`, and what follows it.
fn extract(s: &str) -> Option<(&str, &str)> {
    let (body, brace) = match s.strip_prefix('{') {
        Some(b) => (b, true),
        None => (s, false),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphabetic() || c.is_numeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let after = &body[end..];
    if brace {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

/// A group index as Go reads it: ASCII digits, below 1e8, no leading zero.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    let mut n = 0usize;
    for b in name.bytes() {
        if !b.is_ascii_digit() || n >= 100_000_000 {
            return None;
        }
        n = n * 10 + usize::from(b - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests;
