//! The in-memory head of the window: every active series with its samples, a hash index for
//! ingest lookups and a postings index for label-matcher selection, so neither ingest nor
//! queries touch SQLite. Rebuilt from SQLite at start.
//!
//! Locking: one `RwLock` over the indexes (ingest and queries read it; the writer takes it
//! briefly to add or retire series) and one `Mutex` per series over its samples.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap as FastMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use promql_parser::label::{MatchOp, Matcher};
use rules_engine::model::METRIC_NAME;
use rules_engine::{Labels, Sample};

use super::chunk::SampleBuf;

/// A series' id in the database; never reused.
pub type SeriesId = u64;

/// One active series.
#[derive(Debug)]
pub struct MemSeries {
    pub id: SeriesId,
    pub labels: Labels,
    pub hash: u64,
    /// Samples in ascending timestamp order, unique timestamps, compressed.
    pub(crate) samples: Mutex<SampleBuf>,
    /// Set when retention removed the series from the head: a writer holding it from an
    /// earlier lookup must create it again rather than write into a detached series.
    retired: AtomicBool,
    /// The newest record (`log.seq`) holding samples of this series: retention keeps the
    /// series (and its labels) while a forwarder has not sent that record.
    last_seq: AtomicI64,
}

impl MemSeries {
    /// A series; `hash` is its [`SeriesKey`]'s.
    pub fn new(id: SeriesId, labels: Labels, hash: u64) -> Self {
        Self {
            id,
            labels,
            hash,
            samples: Mutex::new(SampleBuf::default()),
            retired: AtomicBool::new(false),
            last_seq: AtomicI64::new(0),
        }
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub fn set_last_seq(&self, seq: i64) {
        self.last_seq.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Copies the samples in `[start, end]`.
    pub fn samples_in(&self, start: i64, end: i64) -> Vec<Sample> {
        self.samples.lock().range(start, end)
    }

    /// The timestamps of the oldest and newest samples.
    pub fn time_bounds(&self) -> Option<(i64, i64)> {
        self.samples.lock().bounds()
    }

    /// Whether any sample lies in `[start, end]`.
    pub fn has_samples_in(&self, start: i64, end: i64) -> bool {
        self.samples.lock().has_in(start, end)
    }
}

/// Writes the canonical key of a label set, `name 0xff value 0xff ...`, into `key` and returns
/// its xxh3 hash (equal to [`Labels::fingerprint`] for the same pairs).
///
/// Pairs arrive as unchecked bytes. A key equal to a stored series' key, from the same number
/// of pairs, has the same fields: the stored key holds exactly two 0xff bytes per pair (valid
/// UTF-8 never contains 0xff), so the incoming fields can contain none either and split the
/// same way. A match therefore also proves the bytes valid UTF-8.
pub fn series_key<'a>(
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    key: &mut Vec<u8>,
) -> u64 {
    key.clear();
    for (n, v) in pairs {
        key.extend_from_slice(n);
        key.push(0xff);
        key.extend_from_slice(v);
        key.push(0xff);
    }
    xxhash_rust::xxh3::xxh3_64(key)
}

/// A label set's canonical key bytes and hash, computed once per new series.
#[derive(Debug, Clone)]
pub struct SeriesKey {
    pub bytes: Vec<u8>,
    pub hash: u64,
}

impl SeriesKey {
    pub fn of(labels: &Labels) -> Self {
        let mut bytes = Vec::new();
        let hash = series_key(
            labels
                .iter()
                .map(|l| (l.name.as_bytes(), l.value.as_bytes())),
            &mut bytes,
        );
        Self { bytes, hash }
    }
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

/// A hash-index entry. It holds the series' canonical key bytes (see [`series_key`]) itself,
/// so a lookup costs the bucket and one `memcmp`, not a walk through the series' labels.
struct Slot {
    key: Box<[u8]>,
    labels: usize,
    series: Arc<MemSeries>,
}

impl Slot {
    fn new(series: Arc<MemSeries>, key: Vec<u8>) -> Self {
        Self {
            key: key.into_boxed_slice(),
            labels: series.labels.len(),
            series,
        }
    }

    fn is(&self, key: &[u8], n: usize) -> bool {
        *self.key == *key && self.labels == n
    }
}

#[derive(Default)]
struct Index {
    by_hash: ByHash<Slot>,
    /// Series whose hash another series already holds in `by_hash` (64-bit collisions).
    collisions: ByHash<Vec<Slot>>,
    by_id: FastMap<SeriesId, Arc<MemSeries>>,
    /// label name → value → ids, ascending.
    postings: FastMap<Box<str>, FastMap<Box<str>, Vec<SeriesId>>>,
    per_metric: FastMap<Box<str>, usize>,
    per_job: FastMap<Box<str>, usize>,
}

impl Index {
    fn lookup(&self, hash: u64, key: &[u8], n: usize) -> Option<&Arc<MemSeries>> {
        let s = self.by_hash.get(&hash)?;
        if s.is(key, n) {
            return Some(&s.series);
        }
        self.collisions
            .get(&hash)?
            .iter()
            .find(|s| s.is(key, n))
            .map(|s| &s.series)
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
    /// The series whose key (from [`series_key`]) and label count are these.
    pub fn lookup(&self, hash: u64, key: &[u8], n: usize) -> Option<Arc<MemSeries>> {
        self.0.lookup(hash, key, n).cloned()
    }
}

impl Head {
    pub fn reader(&self) -> HeadReader<'_> {
        HeadReader(self.index.read())
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

    /// The series with this key, or (under the same lock) the counts the series limits need:
    /// series in total, with its metric name, with its `job`.
    pub fn lookup_or_counts(
        &self,
        key: &SeriesKey,
        labels: &Labels,
    ) -> Result<Arc<MemSeries>, (usize, usize, usize)> {
        let ix = self.index.read();
        if let Some(s) = ix.lookup(key.hash, &key.bytes, labels.len()) {
            return Ok(s.clone());
        }
        let count = |map: &FastMap<Box<str>, usize>, k: Option<&str>| {
            k.and_then(|k| map.get(k)).copied().unwrap_or(0)
        };
        Err((
            ix.by_id.len(),
            count(&ix.per_metric, labels.metric_name()),
            count(&ix.per_job, labels.get("job")),
        ))
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

    /// Adds a series with its key. The caller (the writer) has checked it is not present.
    pub fn insert(&self, series: Arc<MemSeries>, key: SeriesKey) {
        let mut ix = self.index.write();
        for l in &series.labels {
            ix.postings
                .entry_ref(l.name.as_str())
                .or_default()
                .entry_ref(l.value.as_str())
                .or_default()
                .push(series.id);
        }
        if let Some(m) = series.labels.metric_name() {
            *ix.per_metric.entry_ref(m).or_default() += 1;
        }
        if let Some(j) = series.labels.get("job") {
            *ix.per_job.entry_ref(j).or_default() += 1;
        }
        ix.by_id.insert(series.id, series.clone());
        let hash = key.hash;
        let slot = Slot::new(series, key.bytes);
        match ix.by_hash.get(&hash) {
            None => {
                ix.by_hash.insert(hash, slot);
            }
            Some(_) => ix.collisions.entry(hash).or_default().push(slot),
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
        let dec = |map: &mut FastMap<Box<str>, usize>, key: Option<&str>| {
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
        if ix.by_hash.get(&hash).is_some_and(|s| s.series.id == id) {
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
            list.retain(|s| s.series.id != id);
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

    fn insert(head: &Head, id: SeriesId, pairs: &[(&str, &str)]) {
        let labels = Labels::from_pairs(pairs.iter().copied()).unwrap();
        let key = SeriesKey::of(&labels);
        head.insert(Arc::new(MemSeries::new(id, labels, key.hash)), key);
    }

    fn raw<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
    }

    fn lookup(head: &Head, pairs: &[(&str, &str)]) -> Option<Arc<MemSeries>> {
        let mut key = Vec::new();
        let hash = series_key(raw(pairs), &mut key);
        head.reader().lookup(hash, &key, pairs.len())
    }

    #[test]
    fn hash_matches_labels_fingerprint() {
        let pairs = [("__name__", "up"), ("job", "x")];
        let labels = Labels::from_pairs(pairs).unwrap();
        assert_eq!(
            series_key(raw(&pairs), &mut Vec::new()),
            labels.fingerprint()
        );
    }

    #[test]
    fn a_key_with_extra_separators_never_matches() {
        let head = Head::default();
        insert(&head, 1, &[("a", "b"), ("c", "d")]);
        assert_eq!(lookup(&head, &[("a", "b"), ("c", "d")]).unwrap().id, 1);
        // Same key bytes from one (invalid UTF-8) pair.
        let bad: [(&[u8], &[u8]); 1] = [(b"a", b"b\xffc\xffd")];
        let mut key = Vec::new();
        let hash = series_key(bad, &mut key);
        assert!(head.reader().lookup(hash, &key, 1).is_none());
    }

    #[test]
    fn select_uses_postings_and_matchers() {
        let head = Head::default();
        insert(&head, 1, &[("__name__", "up"), ("job", "a")]);
        insert(&head, 2, &[("__name__", "up"), ("job", "b")]);
        insert(&head, 3, &[("__name__", "down"), ("job", "a")]);
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
        insert(&head, 1, &[("__name__", "up"), ("job", "a")]);
        head.remove(1);
        assert!(head.is_empty());
        assert_eq!(head.postings_len("job"), 0);
        assert_eq!(head.counts_for(Some("up"), Some("a")), (0, 0));
        assert!(lookup(&head, &[("__name__", "up"), ("job", "a")]).is_none());
    }

    #[test]
    fn colliding_hashes_are_told_apart() {
        let head = Head::default();
        let forced = |id, name: &str| {
            let labels = Labels::from_pairs([("__name__", name)]).unwrap();
            let key = SeriesKey::of(&labels).bytes;
            head.insert(
                Arc::new(MemSeries::new(id, labels, 42)),
                SeriesKey {
                    bytes: key.clone(),
                    hash: 42,
                },
            );
            key
        };
        let key_a = forced(1, "a");
        let key_b = forced(2, "b");
        assert_eq!(head.reader().lookup(42, &key_b, 1).unwrap().id, 2);
        head.remove(1);
        assert_eq!(head.reader().lookup(42, &key_b, 1).unwrap().id, 2);
        assert!(head.reader().lookup(42, &key_a, 1).is_none());
    }
}
