//! Byte layouts of what the store writes to SQLite: label sets (one blob per series row) and
//! sample records (one blob per committed group of writes).
//!
//! A sample record is a run of `series_id, n, n × (timestamp, value)` entries. Timestamps are
//! zigzag varints, each a delta from the previous one in the entry; values are varints of the
//! XOR with the previous value's bits (a repeated value costs one byte), so any f64, the
//! staleness marker included, round-trips bit-exact.

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

/// Appends one series' samples to a record.
pub fn encode_entry(out: &mut Vec<u8>, series_id: u64, samples: &[Sample]) {
    put_varint(out, series_id);
    put_varint(out, samples.len() as u64);
    let (mut prev_t, mut prev_v) = (0i64, 0u64);
    for s in samples {
        put_varint(out, zigzag(s.t.0.wrapping_sub(prev_t)));
        let bits = s.v.to_bits();
        put_varint(out, bits ^ prev_v);
        prev_t = s.t.0;
        prev_v = bits;
    }
}

/// Decodes a record, calling `f(series_id, samples)` per entry.
pub fn decode_record(buf: &[u8], mut f: impl FnMut(u64, &[Sample])) -> Result<(), CorruptBlob> {
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

    proptest! {
        #[test]
        fn records_round_trip_bit_exact(entries in prop::collection::vec(
            (any::<u64>(), prop::collection::vec((any::<i64>(), any::<u64>()), 0..20)), 0..10)) {
            let mut buf = Vec::new();
            for (id, s) in &entries {
                let samples: Vec<Sample> = s.iter().map(|&(t, b)| Sample::new(t, f64::from_bits(b))).collect();
                encode_entry(&mut buf, *id, &samples);
            }
            let mut got = Vec::new();
            decode_record(&buf, |id, s| got.push((id, s.iter().map(|x| (x.t.0, x.v.to_bits())).collect::<Vec<_>>()))).unwrap();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_record(&bytes, |_, _| {});
            let _ = decode_labels(&bytes);
        }
    }
}
