//! Remote write 2.0 request bytes (`io.prometheus.write.v2.Request`), written directly.
//!
//! Each series' labels are interned once into forwarder-wide symbol ids (cached by series id
//! like the 1.0 label blocks). A request's symbol table holds only the symbols its series use:
//! a per-request map from global id to request index, kept in two vectors stamped with a
//! request generation, so building a request costs no hashing and no string copies beyond
//! the table itself. `symbols[0]` is the empty string, as the spec requires.

use rules_engine::Sample;

use super::encode::{put_bytes_field, put_sample, sample_len, varint_len};
use crate::store::codec::put_varint;

/// Strings seen in forwarded label sets, numbered once.
#[derive(Debug, Default)]
pub struct Interner {
    ids: hashbrown::HashMap<Box<str>, u32>,
    strings: Vec<Box<str>>,
}

impl Interner {
    pub fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// Interned ids of sorted label pairs: name, value, name, value, ...
    pub fn refs(&mut self, pairs: &[(String, String)]) -> Box<[u32]> {
        pairs
            .iter()
            .flat_map(|(n, v)| [n.as_str(), v.as_str()])
            .map(|s| self.id(s))
            .collect()
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.strings.clear();
    }
}

/// A `Request` being built.
#[derive(Debug, Default)]
pub struct RequestBuilder {
    /// Encoded `timeseries` fields (5), with request-local symbol refs.
    series: Vec<u8>,
    /// Global ids of this request's symbols, in table order (after the leading "").
    symbols: Vec<u32>,
    /// Per global id: the generation that last gave it a local index, and that index.
    stamp: Vec<u32>,
    local: Vec<u32>,
    generation: u32,
    refs: Vec<u32>,
    scratch: Vec<u8>,
    samples: usize,
    newest: i64,
}

impl RequestBuilder {
    fn local_ref(&mut self, global: u32) -> u32 {
        let g = global as usize;
        if g >= self.stamp.len() {
            self.stamp.resize(g + 1, 0);
            self.local.resize(g + 1, 0);
        }
        if self.stamp[g] != self.generation {
            self.stamp[g] = self.generation;
            self.symbols.push(global);
            // Index 0 is the empty string.
            self.local[g] = self.symbols.len() as u32;
        }
        self.local[g]
    }

    /// Adds one `TimeSeries` of interned label refs and its samples.
    pub fn push(&mut self, label_refs: &[u32], samples: &[Sample]) {
        if self.generation == 0 {
            self.generation = 1;
        }
        let mut refs = std::mem::take(&mut self.refs);
        refs.clear();
        refs.extend(label_refs.iter().map(|&g| self.local_ref(g)));
        let mut ts = std::mem::take(&mut self.scratch);
        ts.clear();
        // labels_refs: field 1, packed uint32.
        let packed: usize = refs.iter().map(|&r| varint_len(u64::from(r))).sum();
        ts.push(0x0a);
        put_varint(&mut ts, packed as u64);
        for &r in &refs {
            put_varint(&mut ts, u64::from(r));
        }
        // samples: field 2, `Sample { value = 1 (double), timestamp = 2 (int64) }` as in 1.0.
        for s in samples {
            ts.push(0x12);
            put_varint(&mut ts, sample_len(s) as u64);
            put_sample(&mut ts, s);
            self.newest = self.newest.max(s.t.0);
        }
        put_bytes_field(&mut self.series, 0x2a, &ts);
        self.samples += samples.len();
        self.refs = refs;
        self.scratch = ts;
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Writes the request (its symbol table resolved through `interner`) into `out`,
    /// replacing what was there; returns its sample count and newest timestamp and resets
    /// the builder (keeping its buffers' capacity).
    pub fn encode_into(&mut self, interner: &Interner, out: &mut Vec<u8>) -> (usize, i64) {
        out.clear();
        // symbols: field 4, repeated string; the first is "".
        put_bytes_field(out, 0x22, b"");
        for &g in &self.symbols {
            put_bytes_field(out, 0x22, interner.strings[g as usize].as_bytes());
        }
        out.extend_from_slice(&self.series);
        let result = (self.samples, self.newest);
        self.series.clear();
        self.symbols.clear();
        self.samples = 0;
        self.newest = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: old stamps could collide with the new generation.
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        result
    }

    #[cfg(test)]
    pub fn take(&mut self, interner: &Interner) -> (Vec<u8>, usize, i64) {
        let mut out = Vec::new();
        let (n, newest) = self.encode_into(interner, &mut out);
        (out, n, newest)
    }

    /// Forgets local indexes (the interner was cleared).
    pub fn reset_symbols(&mut self) {
        self.stamp.clear();
        self.local.clear();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proto::{Message, v2};

    use super::*;

    /// A decoded series: label pairs and (timestamp, value bits).
    type Decoded = (Vec<(String, String)>, Vec<(i64, u64)>);

    fn decode(bytes: &[u8]) -> Vec<Decoded> {
        let req = v2::Request::decode(bytes).unwrap();
        assert_eq!(req.symbols.first().map(String::as_str), Some(""));
        req.timeseries
            .into_iter()
            .map(|ts| {
                let labels = ts
                    .labels_refs
                    .chunks(2)
                    .map(|p| {
                        (
                            req.symbols[p[0] as usize].clone(),
                            req.symbols[p[1] as usize].clone(),
                        )
                    })
                    .collect();
                let samples = ts
                    .samples
                    .into_iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect();
                (labels, samples)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn prost_decodes_what_we_write(
            requests in prop::collection::vec(prop::collection::vec((
                prop::collection::btree_map("[a-z_]{1,4}", "\\PC{1,6}", 1..4),
                prop::collection::vec((any::<i64>(), any::<u64>()), 0..3),
            ), 0..5), 1..4)
        ) {
            let mut interner = Interner::default();
            let mut b = RequestBuilder::default();
            // Several requests through one builder: each has its own symbol table.
            for series in requests {
                let mut want = Vec::new();
                for (labels, samples) in &series {
                    let pairs: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, f64::from_bits(v))).collect();
                    b.push(&interner.refs(&pairs), &samples);
                    want.push((pairs, samples.iter().map(|s| (s.t.0, s.v.to_bits())).collect::<Vec<_>>()));
                }
                let (bytes, n, _) = b.take(&interner);
                prop_assert_eq!(n, want.iter().map(|w| w.1.len()).sum::<usize>());
                let req = v2::Request::decode(bytes.as_slice()).unwrap();
                let distinct: std::collections::BTreeSet<&str> = want.iter().flat_map(|w| w.0.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()])).collect();
                // Only this request's symbols, each once (plus the leading "").
                prop_assert_eq!(req.symbols.len(), 1 + distinct.len());
                prop_assert_eq!(decode(&bytes), want);
            }
        }
    }
}
