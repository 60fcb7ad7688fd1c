//! Domain types shared by the engine, the store and the gateway: label sets, timestamps and
//! samples, with Prometheus's rules for names and staleness.

use std::fmt;

use promql_parser::label::Matcher;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of Prometheus's staleness marker, a NaN that must be kept bit-exact.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is the staleness marker (not merely any NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Milliseconds since the Unix epoch, as Prometheus timestamps are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Seconds as a float, the unit of PromQL's `time()` and the HTTP API.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One float sample of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

impl Sample {
    pub const fn new(t_ms: i64, v: f64) -> Self {
        Self {
            t: Timestamp(t_ms),
            v,
        }
    }
}

/// One label pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Why a list of pairs is not a valid label set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    #[error("invalid label name {0:?}")]
    InvalidName(String),
}

/// A label set: sorted by name, names unique, no empty values (an empty value means the label
/// is absent, as in Prometheus).
///
/// Shared behind an `Arc`: the engine hands a series' labels to every step of a range query
/// and a clone is a reference count, not a copy of the strings; the few methods that change a
/// set copy it first when it is shared.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(std::sync::Arc<Vec<Label>>);

impl Labels {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a label set from pairs in any order. Empty values are dropped; a repeated name
    /// is an error.
    pub fn new(mut pairs: Vec<Label>) -> Result<Self, LabelsError> {
        pairs.retain(|l| !l.value.is_empty());
        pairs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = pairs.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(LabelsError::Duplicate(w[0].name.clone()));
        }
        Ok(Self(pairs.into()))
    }

    /// Builds a label set from `(name, value)` pairs; see [`Labels::new`].
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Result<Self, LabelsError> {
        Self::new(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    /// Wraps pairs the caller has already sorted, deduplicated and stripped of empty values
    /// (the store's decoded series). Checked in debug builds.
    pub fn from_sorted(pairs: Vec<Label>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].name < w[1].name));
        debug_assert!(pairs.iter().all(|l| !l.value.is_empty()));
        Self(pairs.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        std::sync::Arc::unwrap_or_clone(self.0)
    }

    /// The value of `name`, if the label is present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Sets `name` to `value`, keeping the set sorted; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                std::sync::Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) if self.0[i].value == value => {}
            Ok(i) => value.clone_into(&mut std::sync::Arc::make_mut(&mut self.0)[i].value),
            Err(_) if value.is_empty() => {}
            Err(i) => std::sync::Arc::make_mut(&mut self.0).insert(i, Label::new(name, value)),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&mut self, name: &str) {
        if let Ok(i) = self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            std::sync::Arc::make_mut(&mut self.0).remove(i);
        }
    }

    /// A copy without the metric name, as most PromQL functions and operators return.
    pub fn without_metric_name(&self) -> Self {
        let mut out = self.clone();
        out.remove(METRIC_NAME);
        out
    }

    /// Keeps only the labels whose names are in `names` (PromQL `by`, `on`).
    pub fn keep(&self, names: &[impl AsRef<str>]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| n.as_ref() == l.name))
                .cloned()
                .collect::<Vec<_>>()
                .into(),
        )
    }

    /// Drops the labels whose names are in `names` (PromQL `without`, `ignoring`).
    pub fn drop_names(&self, names: &[impl AsRef<str>]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|l| !names.iter().any(|n| n.as_ref() == l.name))
                .cloned()
                .collect::<Vec<_>>()
                .into(),
        )
    }

    /// Whether every matcher accepts this set; an absent label matches as the empty string.
    pub fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers
            .iter()
            .all(|m| m.is_match(self.get(&m.name).unwrap_or("")))
    }

    /// A 64-bit hash of the set (xxh3 over `name 0xff value 0xff ...`), stable within a
    /// process, used to key series maps.
    pub fn fingerprint(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for l in self.0.iter() {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prometheus's `labels.String()`: `{a="1", b="2"}` with Go-quoted values. promtool prints
/// label sets this way, so test output depends on it.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_label_set(f, &self.0)
    }
}

/// Writes labels in Prometheus's `labels.String()` form.
pub fn write_label_set(f: &mut impl fmt::Write, labels: &[Label]) -> fmt::Result {
    f.write_str("{")?;
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{}=", l.name)?;
        write_go_quoted(f, &l.value)?;
    }
    f.write_str("}")
}

/// How Go prints a non-finite float (`NaN`, `+Inf`, `-Inf`); `None` for a finite one.
pub fn go_nonfinite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        None
    }
}

/// Go's `strconv.FormatFloat(v, 'e' or 'E', -1, 64)`: shortest round-trip mantissa, exponent
/// signed and at least two digits (`2e-01`). Prometheus's API prints alert values with `'e'`,
/// promtool prints samples with `'E'`.
pub fn format_go_float_exp(v: f64, letter: char) -> String {
    if let Some(s) = go_nonfinite(v) {
        return s.into();
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}{letter}{sign}{:02}", exp.abs())
}

/// [`format_go_float_exp`] with `'e'`, as the API prints an alert's value.
pub fn format_go_float_e(v: f64) -> String {
    format_go_float_exp(v, 'e')
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, how Prometheus prints sample values (the HTTP
/// API, `count_values` labels): shortest round-trip digits, no exponent, `NaN`, `±Inf`.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's Display for f64 is the shortest round-trip form without an exponent.
        format!("{v}")
    }
}

/// Writes `s` as Go's `strconv.Quote` does for valid UTF-8: `\"`, `\\`, the C escapes, `\xNN`
/// for other control bytes below 0x20 and DEL, `\u`/`\U` for non-printable code points.
pub fn write_go_quoted(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\x07' => out.write_str("\\a")?,
            '\x08' => out.write_str("\\b")?,
            '\x0c' => out.write_str("\\f")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            '\x0b' => out.write_str("\\v")?,
            c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32)?,
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)?
                } else {
                    write!(out, "\\U{:08x}", c as u32)?
                }
            }
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sorts_drops_empty_and_rejects_duplicates() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", "")]).unwrap();
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "2")]),
            Err(LabelsError::Duplicate("a".into()))
        );
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs([("b", "2")]).unwrap();
        l.set("a", "1");
        l.set("c", "3");
        l.set("b", "");
        assert_eq!(l.to_string(), r#"{a="1", c="3"}"#);
    }

    #[test]
    fn display_quotes_like_go() {
        let l = Labels::from_pairs([("a", "x\"y\\z\n\u{7}é")]).unwrap();
        assert_eq!(l.to_string(), r#"{a="x\"y\\z\n\aé"}"#);
    }

    #[test]
    fn name_rules() {
        assert!(is_valid_metric_name("a:b_c1"));
        assert!(!is_valid_metric_name("1a"));
        assert!(!is_valid_metric_name(""));
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("a-b"));
    }

    #[test]
    fn go_e_format() {
        assert_eq!(format_go_float_e(0.2), "2e-01");
        assert_eq!(format_go_float_e(1.0), "1e+00");
        assert_eq!(format_go_float_e(123456.0), "1.23456e+05");
        assert_eq!(format_go_float_e(-1e-300), "-1e-300");
        assert_eq!(format_go_float_e(0.0), "0e+00");
    }

    #[test]
    fn stale_marker_is_bit_exact() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
    }
}
