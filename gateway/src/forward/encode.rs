//! Remote write 1.0 request bytes, written directly rather than through prost structs.
//!
//! Building `v1::TimeSeries` values allocates two strings per label per series per request,
//! which made forwarding cost 3–4× vmagent's CPU (BENCHMARKS.md). Here each series' label
//! block (its `Label` messages, external labels merged in) is encoded once and cached by the
//! forwarder, and a request is the concatenation of `TimeSeries` messages around those blocks.
//! The tests decode the output with prost.

use rules_engine::{Labels, Sample};

use crate::store::codec::put_varint;

pub(super) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub(super) fn put_bytes_field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A series' labels with the external labels it lacks, sorted by name (Prometheus's
/// `processExternalLabels`: the series' own value wins).
pub fn with_external(labels: &Labels, external: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    for (k, v) in external {
        if labels.get(k).is_none() {
            pairs.push((k.clone(), v.clone()));
        }
    }
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// The `labels` of a `TimeSeries` (field 1, repeated `Label`) for sorted label pairs.
pub fn label_block(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut label = Vec::new();
    for (n, v) in pairs {
        label.clear();
        put_bytes_field(&mut label, 0x0a, n.as_bytes());
        put_bytes_field(&mut label, 0x12, v.as_bytes());
        put_bytes_field(&mut out, 0x0a, &label);
    }
    out
}

/// Encoded length of a `Sample` message: field 1 double (tag 0x09, 8 bytes), field 2 int64
/// (tag 0x10, varint). Remote write 1.0 and 2.0 share this layout.
pub(super) fn sample_len(s: &Sample) -> usize {
    1 + 8 + 1 + varint_len(s.t.0 as u64)
}

/// Writes a `Sample` message's fields (without its own tag and length).
pub(super) fn put_sample(out: &mut Vec<u8>, s: &Sample) {
    out.push(0x09);
    out.extend_from_slice(&s.v.to_bits().to_le_bytes());
    out.push(0x10);
    put_varint(out, s.t.0 as u64);
}

/// A `WriteRequest` being built.
#[derive(Debug, Default)]
pub struct RequestBuilder {
    buf: Vec<u8>,
    samples: usize,
    newest: i64,
}

impl RequestBuilder {
    /// Adds one `TimeSeries` with a cached label block and its samples.
    pub fn push(&mut self, label_block: &[u8], samples: &[Sample]) {
        let body: usize = label_block.len()
            + samples
                .iter()
                .map(|s| {
                    let n = sample_len(s);
                    1 + varint_len(n as u64) + n
                })
                .sum::<usize>();
        self.buf.push(0x0a);
        put_varint(&mut self.buf, body as u64);
        self.buf.extend_from_slice(label_block);
        for s in samples {
            self.buf.push(0x12);
            put_varint(&mut self.buf, sample_len(s) as u64);
            put_sample(&mut self.buf, s);
            self.newest = self.newest.max(s.t.0);
        }
        self.samples += samples.len();
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    #[cfg(test)]
    pub fn take(&mut self) -> (Vec<u8>, usize, i64) {
        let out = (self.buf.clone(), self.samples, self.newest);
        self.clear();
        out
    }

    /// The encoded request, its sample count and newest timestamp.
    pub fn encoded(&self) -> (&[u8], usize, i64) {
        (&self.buf, self.samples, self.newest)
    }

    /// Starts the next request, keeping the buffer's capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.samples = 0;
        self.newest = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proto::{Message, v1};

    use super::*;

    #[test]
    fn external_labels_never_override() {
        let l = Labels::from_pairs([("__name__", "up"), ("region", "eu")]).unwrap();
        let ext = vec![
            ("region".to_string(), "us".to_string()),
            ("cluster".to_string(), "a".to_string()),
        ];
        let mut b = RequestBuilder::default();
        b.push(
            &label_block(&with_external(&l, &ext)),
            &[Sample::new(1, 1.0)],
        );
        let req = v1::WriteRequest::decode(b.take().0.as_slice()).unwrap();
        let got: Vec<(String, String)> = req.timeseries[0]
            .labels
            .iter()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        assert_eq!(
            got,
            [("__name__", "up"), ("cluster", "a"), ("region", "eu")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    /// A decoded series: label pairs and (timestamp, value bits).
    type Decoded = (Vec<(String, String)>, Vec<(i64, u64)>);

    proptest! {
        #[test]
        fn prost_decodes_what_we_write(
            series in prop::collection::vec((
                prop::collection::btree_map("[a-z_]{1,6}", "\\PC{1,10}", 1..5),
                prop::collection::vec((any::<i64>(), any::<u64>()), 0..4),
            ), 0..6)
        ) {
            let external = vec![("cluster".to_string(), "eu".to_string())];
            let mut b = RequestBuilder::default();
            let mut want = Vec::new();
            for (labels, samples) in &series {
                let l = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
                let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample::new(t, f64::from_bits(v))).collect();
                b.push(&label_block(&with_external(&l, &external)), &samples);
                let mut pairs: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                if !labels.contains_key("cluster") {
                    pairs.push(("cluster".into(), "eu".into()));
                }
                pairs.sort();
                want.push((pairs, samples.iter().map(|s| (s.t.0, s.v.to_bits())).collect::<Vec<_>>()));
            }
            let (bytes, n, _) = b.take();
            prop_assert_eq!(n, want.iter().map(|w| w.1.len()).sum::<usize>());
            let got = v1::WriteRequest::decode(bytes.as_slice()).unwrap();
            let got: Vec<Decoded> = got.timeseries.into_iter().map(|ts| (
                ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                ts.samples.into_iter().map(|s| (s.timestamp, s.value.to_bits())).collect(),
            )).collect();
            prop_assert_eq!(got, want);
        }
    }
}
