//! The storage port the engine evaluates over. The gateway implements it over its SQLite
//! window; [`MemStorage`] implements it in memory for tests and for `promgate test rules`
//! (which is why it is not behind a test-only feature).
//!
//! The traits are synchronous: the engine runs on a blocking thread and reads everything a
//! query needs up front (one `select` per selector), then evaluates in memory.

use std::collections::BTreeMap;

use parking_lot::RwLock;
use promql_parser::label::Matcher;

use crate::model::{Labels, Sample, Timestamp};

/// An inclusive range of timestamps, `[start, end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl TimeRange {
    pub const fn new(start_ms: i64, end_ms: i64) -> Self {
        Self {
            start: Timestamp(start_ms),
            end: Timestamp(end_ms),
        }
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }
}

/// A series and its samples in ascending timestamp order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Storage failures, as the engine sees them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed; a retry may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store refused the request (for example a limit on series or samples).
    #[error("storage refused the request: {0}")]
    Refused(String),
}

/// Reads series by label matchers over a time range.
pub trait Queryable: Send + Sync {
    /// Every series that all `matchers` accept and that has at least one sample in `range`,
    /// with those samples (ascending, stale markers included) in label order.
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError>;

    /// The label sets of the series [`Queryable::select`] would return, without samples.
    fn series(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .select(matchers, range)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }
}

/// Writes samples (recording-rule output, `ALERTS` series). One call is applied atomically.
pub trait Appender: Send + Sync {
    fn append(&self, series: Vec<Series>) -> Result<(), StorageError>;
}

/// An in-memory store: a sorted map from label set to samples. A sample at an existing
/// timestamp replaces the old one, as promtool's loader does.
#[derive(Debug, Default)]
pub struct MemStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to one series, keeping timestamps ascending and unique.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let mut map = self.series.write();
        let dst = map.entry(labels).or_default();
        for s in samples {
            match dst.binary_search_by(|x| x.t.cmp(&s.t)) {
                Ok(i) => dst[i] = s,
                Err(i) => dst.insert(i, s),
            }
        }
    }

    /// Drops every series.
    pub fn clear(&self) {
        self.series.write().clear();
    }

    pub fn series_count(&self) -> usize {
        self.series.read().len()
    }
}

impl Queryable for MemStorage {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        let map = self.series.read();
        Ok(map
            .iter()
            .filter(|(labels, _)| labels.matches(matchers))
            .filter_map(|(labels, samples)| {
                let lo = samples.partition_point(|s| s.t < range.start);
                let hi = samples.partition_point(|s| s.t <= range.end);
                (lo < hi).then(|| Series {
                    labels: labels.clone(),
                    samples: samples[lo..hi].to_vec(),
                })
            })
            .collect())
    }
}

impl Appender for MemStorage {
    fn append(&self, series: Vec<Series>) -> Result<(), StorageError> {
        for s in series {
            self.add(s.labels, s.samples);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use promql_parser::label::MatchOp;

    use super::*;

    #[test]
    fn select_filters_by_matchers_and_range() {
        let st = MemStorage::new();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]).unwrap();
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]).unwrap();
        st.add(
            a.clone(),
            [
                Sample::new(0, 1.0),
                Sample::new(10, 2.0),
                Sample::new(20, 3.0),
            ],
        );
        st.add(b, [Sample::new(30, 1.0)]);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "up")];
        let got = st.select(&m, TimeRange::new(5, 25)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels, a);
        assert_eq!(
            got[0].samples,
            vec![Sample::new(10, 2.0), Sample::new(20, 3.0)]
        );
    }
}
