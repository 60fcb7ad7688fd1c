//! Remote-write request builders, encoded with the `proto` crate's prost types and snappy
//! (block format), as Prometheus sends them.
//!
//! [`rw_v1`] and [`rw_v2`] build the simple synthetic request the tests use: series
//! `e2e_metric{job="e2e",series="<i>"}`, samples one second apart starting at `ts`, values
//! from [`value_of`], so a reader can check every sample it gets back.

use proto::Message;
use proto::v1::{Label, Sample, TimeSeries, WriteRequest};

/// Metric name of the synthetic series.
pub const METRIC: &str = "e2e_metric";
/// Spacing of the synthetic samples.
pub const STEP_MS: i64 = 1000;

/// The value of sample `j` of synthetic series `i`.
pub fn value_of(series: usize, sample: usize) -> f64 {
    (series * 1000 + sample) as f64 + 0.25
}

/// Label pairs, sorted by name (as the spec requires), as prost labels.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    let mut v: Vec<Label> = pairs
        .iter()
        .map(|(n, v)| Label {
            name: (*n).to_string(),
            value: (*v).to_string(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// One v1 series with the given (timestamp ms, value) samples. Labels are kept in the given
/// order (so tests can send unsorted or duplicate names).
pub fn series(labels: Vec<Label>, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// The synthetic series `i`'s labels.
pub fn synthetic_labels(i: usize) -> Vec<Label> {
    labels(&[
        ("__name__", METRIC),
        ("job", "e2e"),
        ("series", &i.to_string()),
    ])
}

/// A v1 request of `series` synthetic series × `samples_per_series` samples from `ts`.
pub fn v1_request(series_count: usize, samples_per_series: usize, ts: i64) -> WriteRequest {
    WriteRequest {
        timeseries: (0..series_count)
            .map(|i| {
                let samples: Vec<(i64, f64)> = (0..samples_per_series)
                    .map(|j| (ts + j as i64 * STEP_MS, value_of(i, j)))
                    .collect();
                series(synthetic_labels(i), &samples)
            })
            .collect(),
        metadata: Vec::new(),
    }
}

/// Snappy (block format) compression, as remote write uses it.
pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compress")
}

/// A v1 request, protobuf-encoded and snappy-compressed.
pub fn encode_v1(req: &WriteRequest) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

/// A v2 request, protobuf-encoded and snappy-compressed.
pub fn encode_v2(req: &proto::v2::Request) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

/// The synthetic request of [`v1_request`], encoded: what a 1.0 sender POSTs.
pub fn rw_v1(series_count: usize, samples_per_series: usize, ts: i64) -> Vec<u8> {
    encode_v1(&v1_request(series_count, samples_per_series, ts))
}

/// Converts a v1 request into the equivalent v2 request (symbols table, label references;
/// the empty string first, as the spec requires).
pub fn v1_to_v2(req: &WriteRequest) -> proto::v2::Request {
    let mut symbols: Vec<String> = vec![String::new()];
    let mut index: std::collections::HashMap<String, u32> = [(String::new(), 0)].into();
    let mut sym = |s: &str| -> u32 {
        if let Some(&i) = index.get(s) {
            return i;
        }
        let i = symbols.len() as u32;
        symbols.push(s.to_string());
        index.insert(s.to_string(), i);
        i
    };
    let timeseries = req
        .timeseries
        .iter()
        .map(|ts| proto::v2::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [sym(&l.name), sym(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| proto::v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    proto::v2::Request {
        symbols,
        timeseries,
    }
}

/// The synthetic request as remote write 2.0, encoded.
pub fn rw_v2(series_count: usize, samples_per_series: usize, ts: i64) -> Vec<u8> {
    encode_v2(&v1_to_v2(&v1_request(series_count, samples_per_series, ts)))
}

/// A label pair as raw bytes, for requests prost cannot express (invalid UTF-8).
pub type RawLabel = (Vec<u8>, Vec<u8>);

/// A series for [`raw_v1`]: raw labels and (timestamp ms, value) samples.
pub type RawSeries = (Vec<RawLabel>, Vec<(i64, f64)>);

/// Encodes a v1 `WriteRequest` by hand from raw label bytes (uncompressed protobuf), so a test
/// can send what a well-behaved encoder never would, such as a label value that is not UTF-8.
/// Every sample field is written, so -0.0 reaches the receiver: prost (like Prometheus's
/// gogo-protobuf) omits a value that compares equal to 0.0, and the receiver reads +0.0.
pub fn raw_v1(series: &[RawSeries]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes_field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
        out.push(tag);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut req = Vec::new();
    for (labels, samples) in series {
        let mut ts = Vec::new();
        for (name, value) in labels {
            let mut l = Vec::new();
            bytes_field(&mut l, 0x0a, name); // Label.name = 1
            bytes_field(&mut l, 0x12, value); // Label.value = 2
            bytes_field(&mut ts, 0x0a, &l); // TimeSeries.labels = 1
        }
        for &(t, v) in samples {
            let mut s = vec![0x09]; // Sample.value = 1, fixed64
            s.extend_from_slice(&v.to_le_bytes());
            s.push(0x10); // Sample.timestamp = 2, varint
            varint(&mut s, t as u64);
            bytes_field(&mut ts, 0x12, &s); // TimeSeries.samples = 2
        }
        bytes_field(&mut req, 0x0a, &ts); // WriteRequest.timeseries = 1
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // test-built input of known size
    fn v1_round_trip() {
        let body = rw_v1(3, 2, 1_000);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("valid snappy");
        let req = WriteRequest::decode(raw.as_slice()).expect("valid protobuf");
        assert_eq!(req.timeseries.len(), 3);
        assert_eq!(req.timeseries[2].samples[1].timestamp, 2_000);
        assert_eq!(req.timeseries[2].samples[1].value, value_of(2, 1));
        assert_eq!(req.timeseries[0].labels[0].name, "__name__");
    }

    #[test]
    fn raw_v1_matches_prost() {
        let req = v1_request(2, 3, 1_700_000_000_000);
        let raw: Vec<RawSeries> = req
            .timeseries
            .iter()
            .map(|ts| {
                (
                    ts.labels
                        .iter()
                        .map(|l| (l.name.clone().into_bytes(), l.value.clone().into_bytes()))
                        .collect(),
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
                )
            })
            .collect();
        assert_eq!(raw_v1(&raw), req.encode_to_vec());
    }

    #[test]
    fn v2_symbols_resolve_to_the_v1_labels() {
        let v1 = v1_request(2, 1, 5);
        let v2 = v1_to_v2(&v1);
        assert_eq!(v2.symbols[0], "");
        for (a, b) in v1.timeseries.iter().zip(&v2.timeseries) {
            let resolved: Vec<(String, String)> = b
                .labels_refs
                .chunks(2)
                .map(|p| {
                    (
                        v2.symbols[p[0] as usize].clone(),
                        v2.symbols[p[1] as usize].clone(),
                    )
                })
                .collect();
            let want: Vec<(String, String)> = a
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            assert_eq!(resolved, want);
        }
    }
}
