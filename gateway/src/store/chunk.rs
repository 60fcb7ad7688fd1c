//! A series' samples in memory, compressed in chunks of up to [`CHUNK_SAMPLES`].
//!
//! Timestamps are stored as zigzag varints of their delta-of-delta (a regular scrape interval
//! costs one byte per sample); values as the XOR with the previous value's bits, shifted right
//! by its trailing zeros, behind one byte giving the shift (`0xff` alone for a repeated value).
//! It is Gorilla's idea with byte alignment instead of bit packing: a little larger, much
//! simpler, and every f64 (the staleness marker included) round-trips bit-exact. A sample
//! costs 2–5 bytes for typical counters and gauges instead of 16.
//!
//! Appends go to the last chunk in place. Everything else (an out-of-order insert, removing a
//! sample, cutting at the retention boundary) decodes the chunks it touches and encodes them
//! again: those paths are rare (an out-of-order window, undoing a failed commit, retention).

use rules_engine::Sample;

use super::codec::{
    Cursor, next_timestamp, put_next_timestamp, put_varint, put_xor, unzigzag, xor, zigzag,
};

/// Samples per chunk before a new one is started.
pub const CHUNK_SAMPLES: u32 = 120;

/// Capacity of a series' first chunk: a few bytes a sample, grown by doubling if need be.
const FIRST_CHUNK_BYTES: usize = 64;

#[derive(Debug, Clone, Default)]
struct Chunk {
    min_t: i64,
    max_t: i64,
    count: u32,
    /// State of the encoder after the last sample, so appends need no decoding.
    last_v: u64,
    last_delta: i64,
    bytes: Vec<u8>,
}

impl Chunk {
    fn append(&mut self, s: Sample) {
        let t = s.t.0;
        let bits = s.v.to_bits();
        if self.count == 0 {
            put_varint(&mut self.bytes, zigzag(t));
            self.min_t = t;
            self.last_delta = 0;
        } else {
            self.last_delta = put_next_timestamp(&mut self.bytes, t, self.max_t, self.last_delta);
        }
        put_xor(&mut self.bytes, bits ^ self.last_v);
        self.max_t = t;
        self.last_v = bits;
        self.count += 1;
    }

    fn decode_into(&self, out: &mut Vec<Sample>) {
        self.decode_range(i64::MIN, i64::MAX, out);
    }

    /// Appends the samples in `[start, end]`, decoding no further than `end`.
    fn decode_range(&self, start: i64, end: i64, out: &mut Vec<Sample>) {
        // The chunk was written by `append`; a truncated one cannot occur, but reading stops
        // rather than panics if it ever did.
        let mut c = Cursor::new(&self.bytes, "chunk");
        let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
        for i in 0..self.count {
            let read = if i == 0 {
                c.varint().map(|raw| (unzigzag(raw), 0))
            } else {
                next_timestamp(&mut c, t, delta)
            };
            let Ok(next) = read else { return };
            (t, delta) = next;
            if t > end {
                return;
            }
            let Ok(x) = xor(&mut c) else { return };
            v ^= x;
            if t >= start {
                out.push(Sample::new(t, f64::from_bits(v)));
            }
        }
    }

    fn from_samples(samples: &[Sample]) -> Self {
        let mut c = Chunk::default();
        for s in samples {
            c.append(*s);
        }
        c.bytes.shrink_to_fit();
        c
    }
}

/// A series' samples: ascending, unique timestamps.
#[derive(Debug, Clone, Default)]
pub struct SampleBuf {
    chunks: Vec<Chunk>,
    len: usize,
}

impl SampleBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The newest sample.
    pub fn last(&self) -> Option<Sample> {
        self.chunks
            .last()
            .map(|c| Sample::new(c.max_t, f64::from_bits(c.last_v)))
    }

    /// Oldest and newest timestamps.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        Some((self.chunks.first()?.min_t, self.chunks.last()?.max_t))
    }

    /// Appends a sample newer than [`SampleBuf::last`].
    pub fn push(&mut self, s: Sample) {
        self.extend_ascending(std::slice::from_ref(&s));
    }

    /// Appends samples in ascending timestamp order, all newer than [`SampleBuf::last`]: the
    /// writer's usual case, so the open chunk is looked up once per series, not per sample.
    pub fn extend_ascending(&mut self, mut samples: &[Sample]) {
        debug_assert!(samples.windows(2).all(|w| w[0].t < w[1].t));
        debug_assert!(
            self.last()
                .zip(samples.first())
                .is_none_or(|(l, s)| l.t < s.t)
        );
        self.len += samples.len();
        while !samples.is_empty() {
            if self.chunks.last().is_none_or(|c| c.count >= CHUNK_SAMPLES) {
                self.open_chunk();
            }
            let last = self.chunks.len() - 1;
            let c = &mut self.chunks[last];
            let n = samples.len().min((CHUNK_SAMPLES - c.count) as usize);
            for s in &samples[..n] {
                c.append(*s);
            }
            samples = &samples[n..];
        }
    }

    /// Closes the last chunk and starts a new one, sized like the one before: a series' chunks
    /// are much alike, so the new one is written without growing by copies, and the closed one
    /// is trimmed only when a good part of it is unused.
    fn open_chunk(&mut self) {
        let capacity = match self.chunks.last_mut() {
            Some(c) => {
                if c.bytes.capacity() - c.bytes.len() > c.bytes.len() / 8 {
                    c.bytes.shrink_to_fit();
                }
                c.bytes.len() + c.bytes.len() / 16 + 8
            }
            None => FIRST_CHUNK_BYTES,
        };
        self.chunks.push(Chunk {
            bytes: Vec::with_capacity(capacity),
            ..Chunk::default()
        });
    }

    /// Index of the chunk whose range could hold `t` (the last one starting at or before it).
    fn chunk_for(&self, t: i64) -> usize {
        self.chunks
            .partition_point(|c| c.min_t <= t)
            .saturating_sub(1)
    }

    fn decode(&self, i: usize) -> Vec<Sample> {
        let mut v = Vec::with_capacity(self.chunks[i].count as usize);
        self.chunks[i].decode_into(&mut v);
        v
    }

    /// Replaces chunk `i` with `samples` (removing it when empty), keeping `len` right.
    fn rewrite(&mut self, i: usize, samples: &[Sample]) {
        self.len = self.len - self.chunks[i].count as usize + samples.len();
        if samples.is_empty() {
            self.chunks.remove(i);
        } else {
            self.chunks[i] = Chunk::from_samples(samples);
        }
    }

    /// The sample at `t`, if any.
    pub fn get(&self, t: i64) -> Option<Sample> {
        if self.chunks.is_empty() {
            return None;
        }
        let i = self.chunk_for(t);
        let c = &self.chunks[i];
        if t < c.min_t || t > c.max_t {
            return None;
        }
        let s = self.decode(i);
        s.binary_search_by(|x| x.t.0.cmp(&t)).ok().map(|k| s[k])
    }

    /// Inserts a sample at a timestamp not present, anywhere in the series.
    pub fn insert(&mut self, s: Sample) {
        if self.last().is_none_or(|l| l.t < s.t) {
            return self.push(s);
        }
        let i = self.chunk_for(s.t.0);
        let mut samples = self.decode(i);
        match samples.binary_search_by(|x| x.t.cmp(&s.t)) {
            Ok(k) => samples[k] = s,
            Err(k) => samples.insert(k, s),
        }
        self.rewrite(i, &samples);
    }

    /// Inserts or replaces (the loader's rule: the later write of a timestamp wins).
    pub fn upsert(&mut self, s: Sample) {
        self.insert(s);
    }

    /// Removes the newest sample.
    pub fn pop(&mut self) -> Option<Sample> {
        let i = self.chunks.len().checked_sub(1)?;
        let mut samples = self.decode(i);
        let last = samples.pop();
        self.rewrite(i, &samples);
        last
    }

    /// Removes the sample at `t`; whether there was one.
    pub fn remove(&mut self, t: i64) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let i = self.chunk_for(t);
        let mut samples = self.decode(i);
        match samples.binary_search_by(|x| x.t.0.cmp(&t)) {
            Ok(k) => {
                samples.remove(k);
                self.rewrite(i, &samples);
                true
            }
            Err(_) => false,
        }
    }

    /// Drops every sample older than `cutoff`; returns how many.
    pub fn drop_before(&mut self, cutoff: i64) -> usize {
        let before = self.len;
        let whole = self.chunks.partition_point(|c| c.max_t < cutoff);
        let dropped: usize = self.chunks[..whole].iter().map(|c| c.count as usize).sum();
        self.chunks.drain(..whole);
        self.len -= dropped;
        if self.chunks.first().is_some_and(|c| c.min_t < cutoff) {
            let samples = self.decode(0);
            let keep = samples.partition_point(|x| x.t.0 < cutoff);
            self.rewrite(0, &samples[keep..]);
        }
        before - self.len
    }

    /// The samples in `[start, end]`.
    pub fn range(&self, start: i64, end: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        let first = self.chunks.partition_point(|c| c.max_t < start);
        for c in self.chunks[first..].iter().take_while(|c| c.min_t <= end) {
            c.decode_range(start, end, &mut out);
        }
        out
    }

    /// Whether any sample lies in `[start, end]`.
    pub fn has_in(&self, start: i64, end: i64) -> bool {
        let first = self.chunks.partition_point(|c| c.max_t < start);
        match self.chunks.get(first) {
            None => false,
            Some(c) if c.min_t > end => false,
            // The chunk overlaps the range; its samples may still all fall outside it.
            Some(c) if c.min_t >= start || c.max_t <= end => true,
            Some(_) => !self.range(start, end).is_empty(),
        }
    }

    /// Bytes held by the encoded samples (for the memory self-metric and benchmarks).
    pub fn encoded_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.bytes.capacity() + std::mem::size_of::<Chunk>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn bits(v: &[Sample]) -> Vec<(i64, u64)> {
        v.iter().map(|s| (s.t.0, s.v.to_bits())).collect()
    }

    #[test]
    fn regular_scrapes_compress() {
        let mut b = SampleBuf::default();
        for i in 0..1200 {
            b.push(Sample::new(1_700_000_000_000 + i * 15_000, (i / 10) as f64));
        }
        assert_eq!(b.len(), 1200);
        let per_sample = b.encoded_bytes() as f64 / 1200.0;
        assert!(per_sample < 3.5, "{per_sample} bytes per sample");
        assert_eq!(b.range(i64::MIN, i64::MAX).len(), 1200);
        assert_eq!(b.get(1_700_000_000_000 + 15_000 * 1199).unwrap().v, 119.0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(i64, u64),
        Insert(i64, u64),
        Pop,
        Remove(i64),
        DropBefore(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let v = prop_oneof![
            Just(0u64),
            Just(0x7ff0000000000002u64),
            any::<u64>(),
            (0u64..8).prop_map(|x| (x as f64).to_bits())
        ];
        prop_oneof![
            6 => (1i64..40, v.clone()).prop_map(|(d, v)| Op::Push(d, v)),
            2 => (0i64..2000, v).prop_map(|(t, v)| Op::Insert(t, v)),
            1 => Just(Op::Pop),
            1 => (0i64..2000).prop_map(Op::Remove),
            1 => (0i64..2000).prop_map(Op::DropBefore),
        ]
    }

    proptest! {
        /// SampleBuf behaves as a sorted Vec<Sample> with unique timestamps.
        #[test]
        fn matches_a_sorted_vec_model(ops in prop::collection::vec(op(), 0..600)) {
            let mut buf = SampleBuf::default();
            let mut model: Vec<Sample> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(d, v) => {
                        let t = model.last().map_or(0, |s| s.t.0) + d;
                        let s = Sample::new(t, f64::from_bits(v));
                        buf.push(s);
                        model.push(s);
                    }
                    Op::Insert(t, v) => {
                        let s = Sample::new(t, f64::from_bits(v));
                        buf.insert(s);
                        match model.binary_search_by(|x| x.t.0.cmp(&t)) {
                            Ok(k) => model[k] = s,
                            Err(k) => model.insert(k, s),
                        }
                    }
                    Op::Pop => prop_assert_eq!(buf.pop().map(|s| s.t.0), model.pop().map(|s| s.t.0)),
                    Op::Remove(t) => {
                        let k = model.binary_search_by(|x| x.t.0.cmp(&t));
                        prop_assert_eq!(buf.remove(t), k.is_ok());
                        if let Ok(k) = k { model.remove(k); }
                    }
                    Op::DropBefore(c) => {
                        let k = model.partition_point(|x| x.t.0 < c);
                        prop_assert_eq!(buf.drop_before(c), k);
                        model.drain(..k);
                    }
                }
                prop_assert_eq!(buf.len(), model.len());
                prop_assert_eq!(buf.last().map(|s| (s.t.0, s.v.to_bits())), model.last().map(|s| (s.t.0, s.v.to_bits())));
            }
            prop_assert_eq!(bits(&buf.range(i64::MIN, i64::MAX)), bits(&model));
            for (a, b) in [(0, 500), (250, 260), (1000, 999), (-5, 3)] {
                let want: Vec<Sample> = model.iter().copied().filter(|s| s.t.0 >= a && s.t.0 <= b).collect();
                prop_assert_eq!(bits(&buf.range(a, b)), bits(&want));
                prop_assert_eq!(buf.has_in(a, b), !want.is_empty());
            }
            for s in &model {
                prop_assert_eq!(buf.get(s.t.0).map(|x| x.v.to_bits()), Some(s.v.to_bits()));
            }
        }
    }
}
