//! The pushed data model: metric families as the client libraries expose them (the
//! `io.prometheus.client` model), independent of the body format they arrived in.

use serde::{Deserialize, Serialize};

/// A family's type, named as Pushgateway's JSON names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
}

impl Kind {
    /// The word of a `# TYPE` line.
    pub fn text(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
        }
    }

    /// The protobuf enum name (Pushgateway's `/api/v1/metrics` `type`).
    pub fn proto_name(self) -> &'static str {
        match self {
            Kind::Counter => "COUNTER",
            Kind::Gauge => "GAUGE",
            Kind::Summary => "SUMMARY",
            Kind::Untyped => "UNTYPED",
            Kind::Histogram => "HISTOGRAM",
        }
    }

    /// The remote-write metadata type stored for the family.
    pub fn metadata(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Untyped => "unknown",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric's value. Counts are integers, as in the protobuf model (the text parser truncates
/// a fractional count the way Go's `uint64(float64)` does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Counter, gauge or untyped.
    Simple(f64),
    Summary {
        count: u64,
        sum: f64,
        /// (quantile, value) in arrival order.
        quantiles: Vec<(f64, f64)>,
    },
    Histogram {
        count: u64,
        sum: f64,
        /// (upper bound, cumulative count) in arrival order.
        buckets: Vec<(f64, u64)>,
    },
}

/// One metric of a family. `labels` are sorted by name once the metric is stored (after the
/// grouping labels were applied); as parsed they are in arrival order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub labels: Vec<(String, String)>,
    pub value: Value,
    /// A timestamp given in the body; pushes carrying one are refused (as by Pushgateway).
    #[serde(skip)]
    pub timestamp_ms: Option<i64>,
}

/// A metric family: a name, its help and type, and its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Family {
    pub name: String,
    /// `None` when the body gave no help (rendered without a `# HELP` line).
    pub help: Option<String>,
    pub kind: Kind,
    pub metrics: Vec<Metric>,
}

impl Family {
    /// Samples the family expands to (a histogram bucket, a quantile, `_sum` and `_count` each
    /// count one), the unit of the request-size limit.
    pub fn sample_count(&self) -> usize {
        self.metrics
            .iter()
            .map(|m| match &m.value {
                Value::Simple(_) => 1,
                Value::Summary { quantiles, .. } => quantiles.len() + 2,
                Value::Histogram { buckets, .. } => buckets.len() + 2,
            })
            .sum()
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, how the text exposition and Pushgateway's JSON
/// print values: shortest round-trip digits, an exponent when it is below -4 or at least 6.
pub fn format_go_g(v: f64) -> String {
    if let Some(s) = rules_engine::model::go_nonfinite(v) {
        return s.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{v:e}");
    let exp: i32 = e
        .split_once('e')
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    if !(-4..6).contains(&exp) {
        rules_engine::model::format_go_float_exp(v, 'e')
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_formatting() {
        assert_eq!(format_go_g(1.5), "1.5");
        assert_eq!(format_go_g(100000.0), "100000");
        assert_eq!(format_go_g(1e6), "1e+06");
        assert_eq!(format_go_g(1795327845.2535934), "1.7953278452535934e+09");
        assert_eq!(format_go_g(0.0001), "0.0001");
        assert_eq!(format_go_g(0.00001), "1e-05");
        assert_eq!(format_go_g(f64::INFINITY), "+Inf");
        assert_eq!(format_go_g(f64::NAN), "NaN");
        assert_eq!(format_go_g(0.0), "0");
        assert_eq!(format_go_g(-2.0), "-2");
    }
}
