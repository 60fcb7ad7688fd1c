//! Validation of incoming series: Prometheus's name rules, Mimir-style limits on label counts
//! and lengths, timestamps too far in the future, and a naming-convention lint.
//!
//! Checks that depend on stored state (out-of-order and duplicate samples, active-series
//! limits) run in the store's writer, which owns that state; this module holds the stateless
//! rules and the [`Reason`] every rejection is counted under.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelValue;
use rules_engine::model::{METRIC_NAME, is_valid_label_name, is_valid_metric_name};
use serde::Deserialize;

use crate::config::de_duration;

/// Why a series or sample was rejected. Each is a `reason` label value of
/// `promgate_ingest_rejected_samples_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reason {
    missing_metric_name,
    invalid_metric_name,
    invalid_label_name,
    reserved_label_name,
    empty_label_name,
    empty_label_value,
    duplicate_label_name,
    labels_not_sorted,
    too_many_labels,
    label_name_too_long,
    label_value_too_long,
    invalid_utf8,
    naming_convention,
    too_far_in_future,
    too_old,
    out_of_order,
    duplicate_sample,
    series_limit,
    series_limit_per_metric,
    series_limit_per_job,
    native_histogram_unsupported,
    exemplar_unsupported,
    invalid_symbol_reference,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::missing_metric_name => "missing_metric_name",
            Reason::invalid_metric_name => "invalid_metric_name",
            Reason::invalid_label_name => "invalid_label_name",
            Reason::reserved_label_name => "reserved_label_name",
            Reason::empty_label_name => "empty_label_name",
            Reason::empty_label_value => "empty_label_value",
            Reason::duplicate_label_name => "duplicate_label_name",
            Reason::labels_not_sorted => "labels_not_sorted",
            Reason::too_many_labels => "too_many_labels",
            Reason::label_name_too_long => "label_name_too_long",
            Reason::label_value_too_long => "label_value_too_long",
            Reason::invalid_utf8 => "invalid_utf8",
            Reason::naming_convention => "naming_convention",
            Reason::too_far_in_future => "too_far_in_future",
            Reason::too_old => "too_old",
            Reason::out_of_order => "out_of_order",
            Reason::duplicate_sample => "duplicate_sample",
            Reason::series_limit => "series_limit",
            Reason::series_limit_per_metric => "series_limit_per_metric",
            Reason::series_limit_per_job => "series_limit_per_job",
            Reason::native_histogram_unsupported => "native_histogram_unsupported",
            Reason::exemplar_unsupported => "exemplar_unsupported",
            Reason::invalid_symbol_reference => "invalid_symbol_reference",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the naming lint does with a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LintMode {
    /// No lint.
    Off,
    /// Count and log (throttled) violations; store the series.
    Warn,
    /// Reject the series with reason `naming_convention`.
    Reject,
}

/// The `limits` section: validation rules applied to every series written or pushed. Defaults
/// are those of Grafana Mimir where Mimir has the limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Labels per series, `__name__` included (Mimir: 30).
    pub max_labels_per_series: usize,
    /// Bytes in a label name (Mimir: 1024).
    pub max_label_name_length: usize,
    /// Bytes in a label value (Mimir: 2048).
    pub max_label_value_length: usize,
    /// Active series in total; 0 disables the limit.
    pub max_series: usize,
    /// Active series per metric name; 0 disables the limit.
    pub max_series_per_metric: usize,
    /// Active series per `job` label value; 0 disables the limit.
    pub max_series_per_job: usize,
    /// Samples in one request; larger requests are refused whole with 400.
    pub max_samples_per_request: usize,
    /// Bytes of a compressed request body; larger bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Bytes of a decompressed request body; checked against the snappy header before
    /// allocating.
    pub max_decoded_bytes: usize,
    /// Samples per second accepted over all senders (token bucket); 0 disables the limit.
    /// Requests over it are answered 429 with `Retry-After`.
    pub ingestion_rate: f64,
    /// Bucket size of the rate limit, in samples.
    pub ingestion_burst: f64,
    /// How far ahead of promgate's clock a sample may be (Prometheus: 10m).
    #[serde(deserialize_with = "de_duration")]
    pub future_tolerance: Duration,
    /// Samples older than a series' newest sample by at most this much are accepted and
    /// inserted in order; 0 rejects every out-of-order sample, as Prometheus does by default.
    #[serde(deserialize_with = "de_duration")]
    pub out_of_order_window: Duration,
    /// Naming-convention lint: `off`, `warn` or `reject`.
    pub naming_lint: LintMode,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_labels_per_series: 30,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_series: 2_000_000,
            max_series_per_metric: 0,
            max_series_per_job: 0,
            max_samples_per_request: 1_000_000,
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 128 << 20,
            ingestion_rate: 0.0,
            ingestion_burst: 0.0,
            future_tolerance: Duration::from_secs(600),
            out_of_order_window: Duration::ZERO,
            naming_lint: LintMode::Warn,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let positive = [
            ("max_labels_per_series", self.max_labels_per_series),
            ("max_label_name_length", self.max_label_name_length),
            ("max_label_value_length", self.max_label_value_length),
            ("max_samples_per_request", self.max_samples_per_request),
            ("max_body_bytes", self.max_body_bytes),
            ("max_decoded_bytes", self.max_decoded_bytes),
        ];
        for (name, v) in positive {
            if v == 0 {
                errors.push(format!("limits.{name}: must be positive"));
            }
        }
        if self.ingestion_rate.is_nan() || self.ingestion_rate < 0.0 {
            errors.push("limits.ingestion_rate: must be zero or positive".into());
        }
        if self.ingestion_rate > 0.0 && self.ingestion_burst < self.ingestion_rate {
            errors.push(
                "limits.ingestion_burst: must be at least limits.ingestion_rate when a rate is set"
                    .into(),
            );
        }
        errors
    }
}

/// Checks one series' label pairs, in the order they arrived, against the name rules and
/// limits. Returns the first violation.
pub fn check_labels<'a>(
    limits: &LimitsConfig,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Result<(), Reason> {
    if pairs.len() > limits.max_labels_per_series {
        return Err(Reason::too_many_labels);
    }
    let mut prev: Option<&str> = None;
    let mut has_name = false;
    for (name, value) in pairs {
        if name.is_empty() {
            return Err(Reason::empty_label_name);
        }
        if name.len() > limits.max_label_name_length {
            return Err(Reason::label_name_too_long);
        }
        if value.len() > limits.max_label_value_length {
            return Err(Reason::label_value_too_long);
        }
        if name == METRIC_NAME {
            has_name = true;
            if !is_valid_metric_name(value) {
                return Err(Reason::invalid_metric_name);
            }
        } else {
            if !is_valid_label_name(name) {
                return Err(Reason::invalid_label_name);
            }
            if name.starts_with("__") {
                return Err(Reason::reserved_label_name);
            }
            if value.is_empty() {
                return Err(Reason::empty_label_value);
            }
        }
        if let Some(p) = prev {
            match p.cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(Reason::duplicate_label_name),
                std::cmp::Ordering::Greater => return Err(Reason::labels_not_sorted),
            }
        }
        prev = Some(name);
    }
    if has_name {
        Ok(())
    } else {
        Err(Reason::missing_metric_name)
    }
}

/// What was rejected in one request: samples per reason, and the first offending series.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejections {
    pub counts: std::collections::BTreeMap<Reason, u64>,
    /// The first offending series (as `{name="value", ...}`), its reason and a detail.
    pub first: Option<(String, Reason, String)>,
}

impl Rejections {
    /// Records `n` rejected samples; `describe` names the series, called for the first only.
    /// The description is cut at [`MAX_DESCRIPTION`] bytes: a series with hundreds of long
    /// labels must not turn a 400 into a megabyte.
    pub fn add(&mut self, reason: Reason, n: u64, describe: impl FnOnce() -> (String, String)) {
        if n == 0 {
            return;
        }
        *self.counts.entry(reason).or_default() += n;
        if self.first.is_none() {
            let (series, detail) = describe();
            self.first = Some((truncate(series), reason, truncate(detail)));
        }
    }

    pub fn merge(&mut self, other: Rejections) {
        for (r, n) in other.counts {
            *self.counts.entry(r).or_default() += n;
        }
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The answer's body: counts per reason, then the first offending series.
    pub fn message(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        let mut msg = format!("{} samples rejected ({})", self.total(), counts.join(", "));
        if let Some((series, reason, detail)) = &self.first {
            msg.push_str(&format!("; first: series {series}: {reason}"));
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(detail);
            }
        }
        msg
    }
}

/// Longest description of a series or detail in an answer.
pub const MAX_DESCRIPTION: usize = 1024;

fn truncate(mut s: String) -> String {
    if s.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let total = s.len();
        s.truncate(cut);
        s.push_str(&format!("… ({total} bytes in all)"));
    }
    s
}

/// Formats label pairs as Prometheus prints a label set, for error messages about series that
/// may not be valid label sets (invalid UTF-8 shows as U+FFFD).
pub fn describe_pairs<B: AsRef<[u8]>>(pairs: &[(B, B)]) -> String {
    let mut s = String::from("{");
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&String::from_utf8_lossy(n.as_ref()));
        s.push('=');
        let _ = rules_engine::model::write_go_quoted(&mut s, &String::from_utf8_lossy(v.as_ref()));
    }
    s.push('}');
    s
}

/// The metric type a sender declared (remote-write metadata), as far as the lint needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Other,
}

/// Unit suffixes that are not base units, with the base unit Prometheus recommends.
const NON_BASE_UNITS: &[(&str, &str)] = &[
    ("_milliseconds", "_seconds"),
    ("_microseconds", "_seconds"),
    ("_nanoseconds", "_seconds"),
    ("_ms", "_seconds"),
    ("_us", "_seconds"),
    ("_ns", "_seconds"),
    ("_minutes", "_seconds"),
    ("_hours", "_seconds"),
    ("_days", "_seconds"),
    ("_kilobytes", "_bytes"),
    ("_megabytes", "_bytes"),
    ("_gigabytes", "_bytes"),
    ("_kb", "_bytes"),
    ("_mb", "_bytes"),
    ("_gb", "_bytes"),
    ("_bits", "_bytes"),
    ("_percent", "_ratio"),
];

/// The naming convention of <https://prometheus.io/docs/practices/naming/>: counters end in
/// `_total`, gauges do not, units are base units. Returns a description of the first
/// violation. Histogram and summary series (`_bucket`, `_sum`, `_count`) are judged by their
/// family name.
pub fn lint_metric_name(name: &str, kind: Option<MetricKind>) -> Option<String> {
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|_| kind == Some(MetricKind::Other))
        .unwrap_or(name);
    let base = family.strip_suffix("_total").unwrap_or(family);
    for (suffix, better) in NON_BASE_UNITS {
        if base.ends_with(suffix) {
            return Some(format!("unit {suffix} is not a base unit; use {better}"));
        }
    }
    match kind {
        Some(MetricKind::Counter) if !name.ends_with("_total") => {
            Some("counter name does not end in _total".into())
        }
        Some(MetricKind::Gauge) if name.ends_with("_total") => {
            Some("gauge name ends in _total, which is reserved for counters".into())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pairs: &[(&str, &str)]) -> Result<(), Reason> {
        check_labels(&LimitsConfig::default(), pairs.iter().copied())
    }

    #[test]
    fn accepts_a_valid_series() {
        assert_eq!(
            check(&[("__name__", "up"), ("instance", "a:1"), ("job", "x")]),
            Ok(())
        );
    }

    #[test]
    fn each_rule_has_its_reason() {
        assert_eq!(check(&[("job", "x")]), Err(Reason::missing_metric_name));
        assert_eq!(
            check(&[("__name__", "1up")]),
            Err(Reason::invalid_metric_name)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a-b", "x")]),
            Err(Reason::invalid_label_name)
        );
        assert_eq!(
            check(&[("__meta", "x"), ("__name__", "up")]),
            Err(Reason::reserved_label_name)
        );
        assert_eq!(
            check(&[("", "x"), ("__name__", "up")]),
            Err(Reason::empty_label_name)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a", "")]),
            Err(Reason::empty_label_value)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("a", "1"), ("a", "2")]),
            Err(Reason::duplicate_label_name)
        );
        assert_eq!(
            check(&[("__name__", "up"), ("b", "1"), ("a", "2")]),
            Err(Reason::labels_not_sorted)
        );
    }

    #[test]
    fn limits_apply() {
        let limits = LimitsConfig {
            max_labels_per_series: 2,
            max_label_name_length: 8,
            max_label_value_length: 3,
            ..LimitsConfig::default()
        };
        let c = |p: &[(&str, &str)]| check_labels(&limits, p.iter().copied());
        assert_eq!(
            c(&[("__name__", "u"), ("a", "1"), ("b", "2")]),
            Err(Reason::too_many_labels)
        );
        assert_eq!(
            c(&[("__name__", "u"), ("abcdefghi", "1")]),
            Err(Reason::label_name_too_long)
        );
        assert_eq!(
            c(&[("__name__", "u"), ("a", "1234")]),
            Err(Reason::label_value_too_long)
        );
    }

    #[test]
    fn rejections_report_counts_and_first_series() {
        let mut r = Rejections::default();
        r.add(Reason::out_of_order, 2, || {
            ("{a=\"1\"}".into(), "sample at 5 is older than 9".into())
        });
        r.add(Reason::too_old, 1, || {
            unreachable!("only the first is described")
        });
        assert_eq!(
            r.message(),
            "3 samples rejected (too_old: 1, out_of_order: 2); first: series {a=\"1\"}: out_of_order: sample at 5 is older than 9"
        );
        assert_eq!(describe_pairs(&[("a", "x\"")]), r#"{a="x\""}"#);
        let mut r = Rejections::default();
        r.add(Reason::too_many_labels, 1, || {
            ("é".repeat(2000), String::new())
        });
        let (series, _, _) = r.first.unwrap();
        assert!(series.len() < MAX_DESCRIPTION + 40, "{}", series.len());
        assert!(series.ends_with("(4000 bytes in all)"), "{series}");
    }

    #[test]
    fn naming_lint() {
        assert_eq!(
            lint_metric_name("http_requests_total", Some(MetricKind::Counter)),
            None
        );
        assert!(lint_metric_name("http_requests", Some(MetricKind::Counter)).is_some());
        assert!(lint_metric_name("queue_total", Some(MetricKind::Gauge)).is_some());
        assert!(
            lint_metric_name("latency_milliseconds", None)
                .unwrap()
                .contains("_seconds")
        );
        assert!(lint_metric_name("size_kilobytes_total", Some(MetricKind::Counter)).is_some());
        assert_eq!(
            lint_metric_name("rpc_duration_seconds_bucket", Some(MetricKind::Other)),
            None
        );
        assert_eq!(lint_metric_name("order_book_depth", None), None);
    }
}
