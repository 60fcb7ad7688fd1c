//! Byte layouts of what the store writes to SQLite: label sets (one blob per series row) and
//! sample records (one blob per committed group of writes).
//!
//! A sample record is a run of `series_id, n, n × (timestamp, value)` entries, with the
//! layout of an in-memory chunk ([`super::chunk`]), so a sample costs what it costs in memory
//! (2–7 bytes for usual counters and gauges; every byte is written twice, to the WAL and at
//! the checkpoint):
//! - the first timestamp of an entry is a zigzag varint of its delta from the previous
//!   entry's first timestamp (entries of one write are close in time), the next ones zigzag
//!   varints of their delta-of-delta (a regular interval costs one byte);
//! - a value is one control byte, `0xff` when it repeats the previous one, else the number
//!   of trailing zeros of its XOR with the previous value's bits (0 before the first),
//!   followed by a varint of that XOR shifted right by them. Any f64, the staleness marker
//!   included, round-trips bit-exact.
//!
//! Databases of schema version 2 and before wrote plain deltas and unshifted XORs;
//! [`decode_record_v2`] reads them once, when the store migrates them.

use rules_engine::{Label, Labels, Sample};

/// A blob that does not decode: the database was written by something else or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt {what} at byte {offset}")]
pub struct CorruptBlob {
    pub what: &'static str,
    pub offset: usize,
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over a blob.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn corrupt(&self) -> CorruptBlob {
        CorruptBlob {
            what: self.what,
            offset: self.pos,
        }
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, CorruptBlob> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.corrupt())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.corrupt())
    }

    #[inline]
    pub fn byte(&mut self) -> Result<u8, CorruptBlob> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.corrupt())?;
        self.pos += 1;
        Ok(b)
    }

    pub fn str(&mut self) -> Result<&'a str, CorruptBlob> {
        let len = usize::try_from(self.varint()?).map_err(|_| self.corrupt())?;
        let end = self.pos.checked_add(len).ok_or_else(|| self.corrupt())?;
        let bytes = self.buf.get(self.pos..end).ok_or_else(|| self.corrupt())?;
        let s = std::str::from_utf8(bytes).map_err(|_| self.corrupt())?;
        self.pos = end;
        Ok(s)
    }
}

/// Encodes a label set.
pub fn encode_labels(labels: &Labels, out: &mut Vec<u8>) {
    put_varint(out, labels.len() as u64);
    for l in labels {
        put_varint(out, l.name.len() as u64);
        out.extend_from_slice(l.name.as_bytes());
        put_varint(out, l.value.len() as u64);
        out.extend_from_slice(l.value.as_bytes());
    }
}

/// Decodes a label set written by [`encode_labels`].
pub fn decode_labels(buf: &[u8]) -> Result<Labels, CorruptBlob> {
    let mut c = Cursor::new(buf, "label set");
    let n = c.varint()?;
    let mut pairs = Vec::with_capacity(n.min(64) as usize);
    for _ in 0..n {
        let name = c.str()?;
        let value = c.str()?;
        pairs.push(Label::new(name, value));
    }
    Labels::new(pairs).map_err(|_| c.corrupt())
}

/// Marks a value equal to the previous one.
const REPEAT: u8 = 0xff;

/// Appends one series' samples to a record. `prev_first` is the previous entry's first
/// timestamp (0 for a record's first entry), updated here.
pub fn encode_entry(out: &mut Vec<u8>, prev_first: &mut i64, series_id: u64, samples: &[Sample]) {
    put_varint(out, series_id);
    put_varint(out, samples.len() as u64);
    let Some((first, rest)) = samples.split_first() else {
        return;
    };
    put_varint(out, zigzag(first.t.0.wrapping_sub(*prev_first)));
    *prev_first = first.t.0;
    let mut prev_v = first.v.to_bits();
    put_xor(out, prev_v);
    let (mut prev_t, mut prev_delta) = (first.t.0, 0i64);
    for s in rest {
        prev_delta = put_next_timestamp(out, s.t.0, prev_t, prev_delta);
        prev_t = s.t.0;
        let bits = s.v.to_bits();
        put_xor(out, bits ^ prev_v);
        prev_v = bits;
    }
}

/// A timestamp after the first of a run, as the zigzag varint of its delta-of-delta from the
/// previous timestamp `prev_t` and the delta `prev_delta` that led to it; returns its delta.
#[inline]
pub fn put_next_timestamp(out: &mut Vec<u8>, t: i64, prev_t: i64, prev_delta: i64) -> i64 {
    let delta = t.wrapping_sub(prev_t);
    put_varint(out, zigzag(delta.wrapping_sub(prev_delta)));
    delta
}

/// Reads what [`put_next_timestamp`] wrote: the timestamp and its delta.
#[inline]
pub fn next_timestamp(
    c: &mut Cursor<'_>,
    prev_t: i64,
    prev_delta: i64,
) -> Result<(i64, i64), CorruptBlob> {
    let delta = prev_delta.wrapping_add(unzigzag(c.varint()?));
    Ok((prev_t.wrapping_add(delta), delta))
}

/// A value's XOR with the previous one: control byte, then the XOR without its trailing zeros.
#[inline]
pub fn put_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(REPEAT);
    } else {
        let tz = x.trailing_zeros();
        out.push(tz as u8);
        put_varint(out, x >> tz);
    }
}

/// Reads what [`put_xor`] wrote.
#[inline]
pub fn xor(c: &mut Cursor<'_>) -> Result<u64, CorruptBlob> {
    match c.byte()? {
        REPEAT => Ok(0),
        tz @ 0..64 => Ok(c.varint()? << tz),
        _ => Err(c.corrupt()),
    }
}

/// Decodes a record, calling `f(series_id, samples)` per entry.
pub fn decode_record(buf: &[u8], mut f: impl FnMut(u64, &[Sample])) -> Result<(), CorruptBlob> {
    let mut c = Cursor::new(buf, "sample record");
    let mut scratch = Vec::new();
    let mut prev_first = 0i64;
    while !c.done() {
        let id = c.varint()?;
        let n = c.varint()?;
        scratch.clear();
        let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
        for i in 0..n {
            if i == 0 {
                t = prev_first.wrapping_add(unzigzag(c.varint()?));
                prev_first = t;
            } else {
                (t, delta) = next_timestamp(&mut c, t, delta)?;
            }
            v ^= xor(&mut c)?;
            scratch.push(Sample::new(t, f64::from_bits(v)));
        }
        f(id, &scratch);
    }
    Ok(())
}

/// Decodes a record of schema version 2 or before (plain timestamp deltas, unshifted XORs).
pub fn decode_record_v2(buf: &[u8], mut f: impl FnMut(u64, &[Sample])) -> Result<(), CorruptBlob> {
    let mut c = Cursor::new(buf, "sample record");
    let mut scratch = Vec::new();
    while !c.done() {
        let id = c.varint()?;
        let n = c.varint()?;
        scratch.clear();
        let (mut t, mut v) = (0i64, 0u64);
        for _ in 0..n {
            t = t.wrapping_add(unzigzag(c.varint()?));
            v ^= c.varint()?;
            scratch.push(Sample::new(t, f64::from_bits(v)));
        }
        f(id, &scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn labels_round_trip() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "é")]).unwrap();
        let mut buf = Vec::new();
        encode_labels(&l, &mut buf);
        assert_eq!(decode_labels(&buf).unwrap(), l);
        assert!(decode_labels(&buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn usual_samples_cost_a_few_bytes() {
        let size = |samples: &[(i64, f64)]| {
            let s: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, v)).collect();
            let (mut one, mut prev) = (Vec::new(), 0);
            encode_entry(&mut one, &mut prev, 7, &s[..1]);
            let mut all = Vec::new();
            let mut prev = 0;
            encode_entry(&mut all, &mut prev, 7, &s);
            (all.len() - one.len()) / (s.len() - 1)
        };
        let t = 1_700_000_000_000;
        // A counter going up by small integers every 15 s: one timestamp byte, two value bytes.
        let counter: Vec<(i64, f64)> = (0..50)
            .map(|i| (t + i * 15_000, 99_700.0 + i as f64 * 3.0))
            .collect();
        assert!(size(&counter) <= 3, "{}", size(&counter));
        // A constant gauge: two bytes.
        let flat: Vec<(i64, f64)> = (0..50).map(|i| (t + i * 15_000, 42.0)).collect();
        assert_eq!(size(&flat), 2);
    }

    #[test]
    fn entries_of_one_write_share_their_timestamps() {
        let t = 1_700_000_000_000;
        let mut buf = Vec::new();
        let mut prev = 0;
        encode_entry(&mut buf, &mut prev, 1, &[Sample::new(t, 1.0)]);
        let first = buf.len();
        encode_entry(&mut buf, &mut prev, 2, &[Sample::new(t, 1.0)]);
        // id, count, a zero delta from the first entry, the value's control byte and varint.
        assert!(
            buf.len() - first <= 1 + 1 + 1 + 1 + 2,
            "{}",
            buf.len() - first
        );
        let mut got = Vec::new();
        decode_record(&buf, |id, s| got.push((id, s.to_vec()))).unwrap();
        assert_eq!(
            got,
            vec![
                (1, vec![Sample::new(t, 1.0)]),
                (2, vec![Sample::new(t, 1.0)])
            ]
        );
    }

    proptest! {
        #[test]
        fn records_round_trip_bit_exact(entries in prop::collection::vec(
            (any::<u64>(), prop::collection::vec((any::<i64>(), any::<u64>()), 0..20)), 0..10)) {
            let mut buf = Vec::new();
            let mut prev_first = 0;
            for (id, s) in &entries {
                let samples: Vec<Sample> = s.iter().map(|&(t, b)| Sample::new(t, f64::from_bits(b))).collect();
                encode_entry(&mut buf, &mut prev_first, *id, &samples);
            }
            let mut got = Vec::new();
            decode_record(&buf, |id, s| got.push((id, s.iter().map(|x| (x.t.0, x.v.to_bits())).collect::<Vec<_>>()))).unwrap();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes, |_, _| {});
            let _ = decode_record_v2(&bytes, |_, _| {});
            let _ = decode_labels(&bytes);
        }
    }
}
