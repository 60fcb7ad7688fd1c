//! The in-memory head of the window: every active series with its samples, a hash index for
//! ingest lookups and a postings index for label-matcher selection, so neither ingest nor
//! queries touch SQLite. Rebuilt from SQLite at start.
//!
//! Locking: one `RwLock` over the indexes (ingest and queries read it; the writer takes it
//! briefly to add or retire series) and one `Mutex` per series over its samples.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use promql_parser::label::{MatchOp, Matcher};
use rules_engine::model::METRIC_NAME;
use rules_engine::{Labels, Sample};

/// A series' id in the database; never reused.
pub type SeriesId = u64;

/// One active series.
#[derive(Debug)]
pub struct MemSeries {
    pub id: SeriesId,
    pub labels: Labels,
    pub hash: u64,
    /// Samples in ascending timestamp order, unique timestamps.
    pub(crate) samples: Mutex<Vec<Sample>>,
    /// Set when retention removed the series from the head: a writer holding it from an
    /// earlier lookup must create it again rather than write into a detached series.
    retired: AtomicBool,
}

impl MemSeries {
    pub fn new(id: SeriesId, labels: Labels, hash: u64) -> Self {
        Self {
            id,
            labels,
            hash,
            samples: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
        }
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Copies the samples in `[start, end]`.
    pub fn samples_in(&self, start: i64, end: i64) -> Vec<Sample> {
        let s = self.samples.lock();
        let lo = s.partition_point(|x| x.t.0 < start);
        let hi = s.partition_point(|x| x.t.0 <= end);
        s[lo..hi.max(lo)].to_vec()
    }

    /// Whether any sample lies in `[start, end]`.
    pub fn has_samples_in(&self, start: i64, end: i64) -> bool {
        let s = self.samples.lock();
        let lo = s.partition_point(|x| x.t.0 < start);
        s.get(lo).is_some_and(|x| x.t.0 <= end)
    }
}

/// The hash of a label set as the head keys it: xxh3 over `name 0xff value 0xff ...`, equal to
/// [`Labels::fingerprint`] for the same pairs. `scratch` is reused between calls.
pub fn hash_pairs(pairs: &[(&str, &str)], scratch: &mut Vec<u8>) -> u64 {
    scratch.clear();
    for (n, v) in pairs {
        scratch.extend_from_slice(n.as_bytes());
        scratch.push(0xff);
        scratch.extend_from_slice(v.as_bytes());
        scratch.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(scratch)
}

fn same_pairs(labels: &Labels, pairs: &[(&str, &str)]) -> bool {
    labels.len() == pairs.len()
        && labels
            .iter()
            .zip(pairs)
            .all(|(l, (n, v))| l.name == *n && l.value == *v)
}

/// Keys that are already hashes need no hashing again.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type ByHash<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Index {
    by_hash: ByHash<Arc<MemSeries>>,
    /// Series whose hash another series already holds in `by_hash` (64-bit collisions).
    collisions: ByHash<Vec<Arc<MemSeries>>>,
    by_id: HashMap<SeriesId, Arc<MemSeries>>,
    /// label name → value → ids, ascending.
    postings: HashMap<Box<str>, HashMap<Box<str>, Vec<SeriesId>>>,
    per_metric: HashMap<Box<str>, usize>,
    per_job: HashMap<Box<str>, usize>,
}

impl Index {
    fn lookup(&self, hash: u64, pairs: &[(&str, &str)]) -> Option<&Arc<MemSeries>> {
        let s = self.by_hash.get(&hash)?;
        if same_pairs(&s.labels, pairs) {
            return Some(s);
        }
        self.collisions
            .get(&hash)?
            .iter()
            .find(|s| same_pairs(&s.labels, pairs))
    }
}

/// The head. See the module doc.
#[derive(Default)]
pub struct Head {
    index: RwLock<Index>,
}

/// A read view of the index for resolving many series under one lock acquisition.
pub struct HeadReader<'a>(RwLockReadGuard<'a, Index>);

impl HeadReader<'_> {
    pub fn lookup(&self, hash: u64, pairs: &[(&str, &str)]) -> Option<Arc<MemSeries>> {
        self.0.lookup(hash, pairs).cloned()
    }
}

fn pairs_of(labels: &Labels) -> Vec<(&str, &str)> {
    labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

impl Head {
    pub fn reader(&self) -> HeadReader<'_> {
        HeadReader(self.index.read())
    }

    pub fn lookup_labels(&self, hash: u64, labels: &Labels) -> Option<Arc<MemSeries>> {
        self.index.read().lookup(hash, &pairs_of(labels)).cloned()
    }

    pub fn get(&self, id: SeriesId) -> Option<Arc<MemSeries>> {
        self.index.read().by_id.get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.index.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Active series with this metric name and with this `job`.
    pub fn counts_for(&self, metric: Option<&str>, job: Option<&str>) -> (usize, usize) {
        let ix = self.index.read();
        (
            metric
                .and_then(|m| ix.per_metric.get(m))
                .copied()
                .unwrap_or(0),
            job.and_then(|j| ix.per_job.get(j)).copied().unwrap_or(0),
        )
    }

    /// Adds a series. The caller (the writer) has checked it is not present.
    pub fn insert(&self, series: Arc<MemSeries>) {
        let mut ix = self.index.write();
        for l in &series.labels {
            ix.postings
                .entry(l.name.as_str().into())
                .or_default()
                .entry(l.value.as_str().into())
                .or_default()
                .push(series.id);
        }
        if let Some(m) = series.labels.metric_name() {
            *ix.per_metric.entry(m.into()).or_default() += 1;
        }
        if let Some(j) = series.labels.get("job") {
            *ix.per_job.entry(j.into()).or_default() += 1;
        }
        ix.by_id.insert(series.id, series.clone());
        match ix.by_hash.get(&series.hash) {
            None => {
                ix.by_hash.insert(series.hash, series);
            }
            Some(_) => ix.collisions.entry(series.hash).or_default().push(series),
        }
    }

    /// Removes a series from every index.
    pub fn remove(&self, id: SeriesId) -> Option<Arc<MemSeries>> {
        let mut ix = self.index.write();
        let series = ix.by_id.remove(&id)?;
        for l in &series.labels {
            if let Some(values) = ix.postings.get_mut(l.name.as_str()) {
                if let Some(ids) = values.get_mut(l.value.as_str()) {
                    if let Ok(i) = ids.binary_search(&id) {
                        ids.remove(i);
                    }
                    if ids.is_empty() {
                        values.remove(l.value.as_str());
                    }
                }
                if values.is_empty() {
                    ix.postings.remove(l.name.as_str());
                }
            }
        }
        let dec = |map: &mut HashMap<Box<str>, usize>, key: Option<&str>| {
            if let Some(k) = key
                && let Some(n) = map.get_mut(k)
            {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        };
        dec(&mut ix.per_metric, series.labels.metric_name());
        dec(&mut ix.per_job, series.labels.get("job"));
        let hash = series.hash;
        if ix.by_hash.get(&hash).is_some_and(|s| s.id == id) {
            ix.by_hash.remove(&hash);
            // Promote a colliding series, if any, to the primary slot.
            let next = ix.collisions.get_mut(&hash).and_then(Vec::pop);
            if ix.collisions.get(&hash).is_some_and(Vec::is_empty) {
                ix.collisions.remove(&hash);
            }
            if let Some(next) = next {
                ix.by_hash.insert(hash, next);
            }
        } else if let Some(list) = ix.collisions.get_mut(&hash) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                ix.collisions.remove(&hash);
            }
        }
        Some(series)
    }

    /// Every series.
    pub fn all(&self) -> Vec<Arc<MemSeries>> {
        self.index.read().by_id.values().cloned().collect()
    }

    /// The series every matcher accepts, in label order. Postings narrow the candidates
    /// (equality matchers intersect, a regex on one label unions its matching values); the
    /// matchers themselves decide.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let ix = self.index.read();
        let mut candidates: Option<Vec<SeriesId>> = None;
        for m in matchers {
            let list: Vec<SeriesId> = match &m.op {
                MatchOp::Equal if !m.value.is_empty() => ix
                    .postings
                    .get(m.name.as_str())
                    .and_then(|v| v.get(m.value.as_str()))
                    .cloned()
                    .unwrap_or_default(),
                MatchOp::Re(_) if !m.is_match("") => {
                    let mut ids: Vec<SeriesId> = ix
                        .postings
                        .get(m.name.as_str())
                        .map(|values| {
                            values
                                .iter()
                                .filter(|(v, _)| m.is_match(v))
                                .flat_map(|(_, ids)| ids.iter().copied())
                                .collect()
                        })
                        .unwrap_or_default();
                    ids.sort_unstable();
                    ids
                }
                _ => continue,
            };
            candidates = Some(match candidates {
                None => list,
                Some(c) => intersect(&c, &list),
            });
        }
        let mut out: Vec<Arc<MemSeries>> = match candidates {
            Some(ids) => ids
                .iter()
                .filter_map(|id| ix.by_id.get(id))
                .filter(|s| s.labels.matches(matchers))
                .cloned()
                .collect(),
            None => ix
                .by_id
                .values()
                .filter(|s| s.labels.matches(matchers))
                .cloned()
                .collect(),
        };
        drop(ix);
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Label names that occur in the head (for the labels API).
    pub fn label_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .index
            .read()
            .postings
            .keys()
            .map(|k| k.to_string())
            .collect();
        v.sort_unstable();
        v
    }

    /// Series count per metric name, for the cardinality view.
    pub fn metric_counts(&self) -> Vec<(String, usize)> {
        let ix = self.index.read();
        let mut v: Vec<(String, usize)> = ix
            .per_metric
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// The number of series that carry the metric name label at all (sanity check in tests).
    pub fn postings_len(&self, name: &str) -> usize {
        self.index
            .read()
            .postings
            .get(if name.is_empty() { METRIC_NAME } else { name })
            .map_or(0, |v| v.values().map(Vec::len).sum())
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use promql_parser::label::MatchOp;

    use super::*;

    fn series(id: SeriesId, pairs: &[(&str, &str)]) -> Arc<MemSeries> {
        let labels = Labels::from_pairs(pairs.iter().copied()).unwrap();
        let hash = hash_pairs(pairs, &mut Vec::new());
        Arc::new(MemSeries::new(id, labels, hash))
    }

    #[test]
    fn hash_matches_labels_fingerprint() {
        let pairs = [("__name__", "up"), ("job", "x")];
        let labels = Labels::from_pairs(pairs).unwrap();
        assert_eq!(hash_pairs(&pairs, &mut Vec::new()), labels.fingerprint());
    }

    #[test]
    fn select_uses_postings_and_matchers() {
        let head = Head::default();
        head.insert(series(1, &[("__name__", "up"), ("job", "a")]));
        head.insert(series(2, &[("__name__", "up"), ("job", "b")]));
        head.insert(series(3, &[("__name__", "down"), ("job", "a")]));
        let ids = |ms: &[Matcher]| head.select(ms).iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(&[Matcher::new(MatchOp::Equal, "__name__", "up")]),
            vec![1, 2]
        );
        assert_eq!(
            ids(&[
                Matcher::new(MatchOp::Equal, "__name__", "up"),
                Matcher::new(MatchOp::NotEqual, "job", "a")
            ]),
            vec![2]
        );
        let re = Matcher::new_matcher(
            promql_parser::parser::token::T_EQL_REGEX,
            "job".into(),
            "a|c".into(),
        )
        .unwrap();
        assert_eq!(ids(&[re]), vec![3, 1]);
        assert_eq!(
            ids(&[Matcher::new(MatchOp::Equal, "job", "")]),
            Vec::<u64>::new()
        );
        assert_eq!(head.counts_for(Some("up"), Some("a")), (2, 2));
    }

    #[test]
    fn remove_clears_every_index() {
        let head = Head::default();
        let s = series(1, &[("__name__", "up"), ("job", "a")]);
        head.insert(s.clone());
        head.remove(1);
        assert!(head.is_empty());
        assert_eq!(head.postings_len("job"), 0);
        assert_eq!(head.counts_for(Some("up"), Some("a")), (0, 0));
        assert!(
            head.reader()
                .lookup(s.hash, &[("__name__", "up"), ("job", "a")])
                .is_none()
        );
    }

    #[test]
    fn colliding_hashes_are_told_apart() {
        let head = Head::default();
        let a = Arc::new(MemSeries::new(
            1,
            Labels::from_pairs([("__name__", "a")]).unwrap(),
            42,
        ));
        let b = Arc::new(MemSeries::new(
            2,
            Labels::from_pairs([("__name__", "b")]).unwrap(),
            42,
        ));
        head.insert(a);
        head.insert(b);
        assert_eq!(
            head.reader().lookup(42, &[("__name__", "b")]).unwrap().id,
            2
        );
        head.remove(1);
        assert_eq!(
            head.reader().lookup(42, &[("__name__", "b")]).unwrap().id,
            2
        );
        assert!(head.reader().lookup(42, &[("__name__", "a")]).is_none());
    }
}
