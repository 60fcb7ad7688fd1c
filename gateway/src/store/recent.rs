//! The newest committed records, kept in memory (up to a byte budget) so that a forwarder
//! keeping up with ingest reads them here rather than back from SQLite.
//!
//! Only here do records also hold the request bodies they were decoded from (see
//! [`super::ReceivedBody`]): bodies are a way to send cheaply, not data, so they are not
//! written to SQLite (which cost as much as re-encoding saves). A forwarder further behind
//! than this budget, or after a restart, reads SQLite and re-encodes.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::ReceivedBody;

/// A committed record: its `log` data, and the request bodies it came from when every one of
/// its entries came from one.
#[derive(Debug, Clone)]
pub struct RecentRecord {
    pub seq: i64,
    pub data: Bytes,
    pub bodies: Option<Arc<[KeptBody]>>,
}

/// A request body kept with its record, with the series it holds (so that a forwarder can
/// keep each series on one connection at a time without decoding the record).
#[derive(Debug)]
pub struct KeptBody {
    pub body: ReceivedBody,
    pub ids: Box<[u64]>,
}

/// Records in commit order, with consecutive sequence numbers.
#[derive(Debug)]
pub struct Recent {
    records: VecDeque<RecentRecord>,
    bytes: usize,
    budget: usize,
    /// The newest record pushed, kept when every record has been released.
    newest: Option<i64>,
}

impl Recent {
    pub fn new(budget: usize) -> Self {
        Self {
            records: VecDeque::new(),
            bytes: 0,
            budget,
            newest: None,
        }
    }

    fn size(r: &RecentRecord) -> usize {
        let bodies = r.bodies.as_ref().map_or(0, |b| {
            b.iter().map(|k| k.body.data.len() + 8 * k.ids.len()).sum()
        });
        r.data.len() + bodies
    }

    /// Adds the record just committed (its seq follows the previous one's), dropping the
    /// oldest past the budget; returns those of them that held bodies.
    pub fn push(&mut self, record: RecentRecord) -> Vec<RecentRecord> {
        if self.newest.is_some_and(|last| last + 1 != record.seq) {
            self.records.clear();
            self.bytes = 0;
        }
        self.newest = Some(record.seq);
        self.bytes += Self::size(&record);
        self.records.push_back(record);
        let mut evicted = Vec::new();
        while self.bytes > self.budget {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= Self::size(&old);
            if old.bodies.is_some() {
                evicted.push(old);
            }
        }
        evicted
    }

    /// Drops the records up to `seq`, which every forwarder has sent: their memory (the
    /// bodies above all) is reused by the requests that follow while it is still in cache,
    /// instead of the budget's worth of fresh pages being faulted in and zeroed.
    pub fn release_through(&mut self, seq: i64) {
        while self.records.front().is_some_and(|r| r.seq <= seq) {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= Self::size(&old);
            }
        }
    }

    /// Appends to `out` up to `max` records after `after` and returns true, if every record
    /// after `after` is here; false if some must be read from the database.
    pub fn after(&self, after: i64, max: usize, out: &mut Vec<RecentRecord>) -> bool {
        let Some(front) = self
            .records
            .front()
            .map(|r| r.seq)
            .or_else(|| self.newest.map(|n| n + 1))
        else {
            return false;
        };
        let Some(skip) = after
            .checked_add(1)
            .and_then(|next| next.checked_sub(front))
            .and_then(|d| usize::try_from(d).ok())
        else {
            return false;
        };
        out.extend(self.records.iter().skip(skip).take(max).cloned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64, len: usize) -> RecentRecord {
        RecentRecord {
            seq,
            data: Bytes::from(vec![0; len]),
            bodies: None,
        }
    }

    fn seqs(r: &Recent, after: i64, max: usize) -> Option<Vec<i64>> {
        let mut out = Vec::new();
        r.after(after, max, &mut out)
            .then(|| out.iter().map(|r| r.seq).collect())
    }

    #[test]
    fn serves_only_what_it_holds_whole() {
        let mut r = Recent::new(100);
        assert_eq!(seqs(&r, 0, 10), None);
        for seq in 1..=5 {
            r.push(rec(seq, 30));
        }
        // 150 bytes pushed, budget 100: records 1 and 2 are gone.
        assert_eq!(seqs(&r, 1, 10), None);
        assert_eq!(seqs(&r, 2, 10), Some(vec![3, 4, 5]));
        assert_eq!(seqs(&r, 3, 1), Some(vec![4]));
        assert_eq!(seqs(&r, 5, 10), Some(vec![]));
        assert_eq!(seqs(&r, 9, 10), Some(vec![]));
        // A gap (a sequence not following on) starts over.
        r.push(rec(8, 10));
        assert_eq!(seqs(&r, 5, 10), None);
        assert_eq!(seqs(&r, 7, 10), Some(vec![8]));
    }

    #[test]
    fn released_records_are_gone_and_nothing_after_them_is_missing() {
        let mut r = Recent::new(1000);
        for seq in 1..=4 {
            r.push(rec(seq, 30));
        }
        r.release_through(2);
        assert_eq!(r.bytes, 60);
        assert_eq!(seqs(&r, 1, 10), None);
        assert_eq!(seqs(&r, 2, 10), Some(vec![3, 4]));
        r.release_through(4);
        assert_eq!(r.bytes, 0);
        // Empty, yet it knows nothing follows record 4 (no reading back from SQLite).
        assert_eq!(seqs(&r, 4, 10), Some(vec![]));
        assert_eq!(seqs(&r, 3, 10), None);
        r.push(rec(5, 30));
        assert_eq!(seqs(&r, 4, 10), Some(vec![5]));
    }
}
