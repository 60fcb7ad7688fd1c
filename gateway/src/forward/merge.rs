//! Consecutive request bodies of one lane joined into one request without decompressing them.
//!
//! A remote-write body is a snappy block: a varint of the uncompressed length, then literal
//! and copy elements whose offsets count back from the current output position and never
//! reach before the block's own start. The elements of two blocks one after the other, behind
//! the sum of their lengths, therefore decode to the two uncompressed messages one after the
//! other; and protobuf reads two `WriteRequest`s one after the other as one holding both
//! lists of series (and metadata). A sender's small requests (Prometheus sends 500 samples by
//! default) then leave up to `max_samples_per_send` at a time, each series' samples still in
//! order. A body whose header does not read is sent on its own.

use bytes::{Bytes, BytesMut};

use super::send::Request;
use crate::store::codec::{Cursor, put_varint};

/// Largest uncompressed length a joined body may declare (snappy's limit is 2^32 - 1).
const MAX_RAW: u64 = 1 << 30;

/// The uncompressed length a snappy block declares, and where its elements start.
fn header(body: &[u8]) -> Option<(u64, usize)> {
    let mut c = Cursor::new(body, "snappy block");
    let raw = c.varint().ok()?;
    Some((raw, c.position()))
}

/// Consecutive requests being joined, with their totals.
#[derive(Default)]
struct Run {
    /// Each request, its uncompressed length and where its elements start.
    parts: Vec<(Request, u64, usize)>,
    samples: u64,
    raw: u64,
}

/// Joins runs of consecutive requests whose samples add up to at most `per_send`.
pub fn merge(requests: Vec<Request>, per_send: usize) -> Vec<Request> {
    let mut out = Vec::with_capacity(requests.len());
    let mut run = Run::default();
    for r in requests {
        let Some((raw, at)) = header(&r.body) else {
            run.flush(&mut out);
            out.push(r);
            continue;
        };
        if run.samples + r.samples > per_send as u64 || run.raw + raw > MAX_RAW {
            run.flush(&mut out);
        }
        run.samples += r.samples;
        run.raw += raw;
        run.parts.push((r, raw, at));
    }
    run.flush(&mut out);
    out
}

impl Run {
    /// Emits the run's requests (joined when more than one) and starts a new run.
    fn flush(&mut self, out: &mut Vec<Request>) {
        let Run { parts, raw, .. } = std::mem::take(self);
        if parts.len() <= 1 {
            out.extend(parts.into_iter().map(|(r, ..)| r));
            return;
        }
        let size: usize = parts.iter().map(|(r, _, at)| r.body.len() - at).sum();
        let mut head = Vec::with_capacity(10);
        put_varint(&mut head, raw);
        let mut body = BytesMut::with_capacity(head.len() + size);
        body.extend_from_slice(&head);
        let (mut samples, mut newest) = (0, i64::MIN);
        for (r, _, at) in parts {
            body.extend_from_slice(&r.body[at..]);
            samples += r.samples;
            newest = newest.max(r.newest);
        }
        out.push(Request {
            body: Bytes::from(body),
            samples,
            newest,
        });
    }
}

#[cfg(test)]
mod tests {
    use proto::{Message, v1};

    use super::*;

    fn request(first: usize, n: usize, t: i64) -> (Request, v1::WriteRequest) {
        let req = v1::WriteRequest {
            timeseries: (first..first + n)
                .map(|i| v1::TimeSeries {
                    labels: vec![v1::Label {
                        name: "__name__".into(),
                        value: format!("m{}", i % 3),
                    }],
                    samples: vec![v1::Sample {
                        value: i as f64,
                        timestamp: t,
                    }],
                    ..Default::default()
                })
                .collect(),
            metadata: vec![],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let r = Request {
            body: body.into(),
            samples: n as u64,
            newest: t,
        };
        (r, req)
    }

    #[allow(clippy::disallowed_methods)] // bodies built by the test, of bounded size
    fn decode(r: &Request) -> v1::WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
        v1::WriteRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn joined_bodies_decode_to_the_series_of_each_in_order() {
        let parts: Vec<_> = [(0, 3, 10), (3, 4, 20), (7, 2, 30), (9, 5, 40)]
            .iter()
            .map(|&(f, n, t)| request(f, n, t))
            .collect();
        let requests = parts.iter().map(|(r, _)| r.clone()).collect();
        // 3 + 4 + 2 fit in 10; the last 5 would not.
        let got = merge(requests, 10);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].samples, got[0].newest), (9, 30));
        let want: Vec<v1::TimeSeries> = parts[..3]
            .iter()
            .flat_map(|(_, q)| q.timeseries.clone())
            .collect();
        assert_eq!(decode(&got[0]).timeseries, want);
        // Alone in its run: the very body received.
        assert_eq!(got[1].body, parts[3].0.body);
    }

    #[test]
    fn a_body_without_a_readable_header_goes_alone() {
        let (a, _) = request(0, 1, 1);
        let (b, _) = request(1, 1, 2);
        let bad = Request {
            body: Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            samples: 1,
            newest: 3,
        };
        let got = merge(vec![a.clone(), bad.clone(), b.clone()], 100);
        let bodies: Vec<Bytes> = got.iter().map(|r| r.body.clone()).collect();
        assert_eq!(bodies, vec![a.body, bad.body, b.body]);
    }
}
