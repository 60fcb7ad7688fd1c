//! Groups as rows of the `push_group` table: the grouping key and a compact binary encoding
//! of the group (varints and little-endian floats; serde formats such as JSON cannot carry
//! the `NaN` and `±Inf` values and bounds pushes contain). Written in the same transaction as
//! the group's samples, so a push is durable as a whole or not at all.

use std::collections::BTreeMap;

use super::family::{Family, Kind, Metric, Value};
use super::grouping::GroupingKey;
use super::groups::{Group, Stored};
use crate::store::codec::{CorruptBlob, Cursor, put_varint};

const VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_varint(out, crate::store::codec::zigzag(v));
}

fn put_labels(out: &mut Vec<u8>, labels: &[(String, String)]) {
    put_varint(out, labels.len() as u64);
    for (n, v) in labels {
        put_str(out, n);
        put_str(out, v);
    }
}

/// The row key of a group.
pub fn encode_key(key: &GroupingKey) -> Vec<u8> {
    let mut out = Vec::new();
    put_labels(&mut out, key);
    out
}

/// A stored row: [`COMPRESSED`] and the snappy block of the encoding (label names and values
/// repeat across a group's metrics, so this is several times smaller, and every push rewrites
/// its group's row).
const COMPRESSED: u8 = 0x80;

pub fn encode(g: &Group) -> Vec<u8> {
    let plain = encode_plain(g);
    match snap::raw::Encoder::new().compress_vec(&plain) {
        Ok(c) if c.len() < plain.len() => {
            let mut out = Vec::with_capacity(c.len() + 1);
            out.push(COMPRESSED);
            out.extend_from_slice(&c);
            out
        }
        _ => plain,
    }
}

fn encode_plain(g: &Group) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(VERSION);
    put_labels(&mut out, &g.key);
    for v in [
        g.push_ns,
        g.push_set_ns,
        g.failure_ns,
        g.failure_set_ns,
        g.last_write_ms,
    ] {
        put_i64(&mut out, v);
    }
    // Overrides: 0 for unset, else the value + 1 (TTL) or 1/2 (aggregate).
    put_varint(
        &mut out,
        g.overrides.ttl_ms.map_or(0, |t| t.max(0) as u64 + 1),
    );
    out.push(match g.overrides.aggregate {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    });
    put_varint(&mut out, g.families.len() as u64);
    for s in g.families.values() {
        let f = &s.family;
        put_str(&mut out, &f.name);
        match &f.help {
            Some(h) => {
                out.push(1);
                put_str(&mut out, h);
            }
            None => out.push(0),
        }
        out.push(match f.kind {
            Kind::Counter => 0,
            Kind::Gauge => 1,
            Kind::Summary => 2,
            Kind::Untyped => 3,
            Kind::Histogram => 4,
        });
        put_i64(&mut out, s.at_ns);
        put_varint(&mut out, f.metrics.len() as u64);
        for m in &f.metrics {
            put_labels(&mut out, &m.labels);
            match &m.value {
                Value::Simple(v) => {
                    out.push(0);
                    put_f64(&mut out, *v);
                }
                Value::Summary {
                    count,
                    sum,
                    quantiles,
                } => {
                    out.push(1);
                    put_varint(&mut out, *count);
                    put_f64(&mut out, *sum);
                    put_varint(&mut out, quantiles.len() as u64);
                    for (q, v) in quantiles {
                        put_f64(&mut out, *q);
                        put_f64(&mut out, *v);
                    }
                }
                Value::Histogram {
                    count,
                    sum,
                    buckets,
                } => {
                    out.push(2);
                    put_varint(&mut out, *count);
                    put_f64(&mut out, *sum);
                    put_varint(&mut out, buckets.len() as u64);
                    for (le, n) in buckets {
                        put_f64(&mut out, *le);
                        put_varint(&mut out, *n);
                    }
                }
            }
        }
    }
    out
}

struct R<'a> {
    c: Cursor<'a>,
}

impl R<'_> {
    fn n(&mut self) -> Result<u64, CorruptBlob> {
        self.c.varint()
    }
    fn len(&mut self) -> Result<usize, CorruptBlob> {
        Ok(self.n()? as usize)
    }
    fn i64(&mut self) -> Result<i64, CorruptBlob> {
        Ok(crate::store::codec::unzigzag(self.n()?))
    }
    fn byte(&mut self) -> Result<u8, CorruptBlob> {
        self.c.byte()
    }
    fn f64(&mut self) -> Result<f64, CorruptBlob> {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.c.byte()?;
        }
        Ok(f64::from_bits(u64::from_le_bytes(b)))
    }
    fn str(&mut self) -> Result<String, CorruptBlob> {
        self.c.str().map(str::to_string)
    }
    fn labels(&mut self) -> Result<Vec<(String, String)>, CorruptBlob> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            out.push((self.str()?, self.str()?));
        }
        Ok(out)
    }
}

pub fn decode(buf: &[u8]) -> Result<Group, CorruptBlob> {
    if buf.first() == Some(&COMPRESSED) {
        let corrupt = || CorruptBlob {
            what: "push group (snappy)",
            offset: 1,
        };
        // Our own rows, but still bounded: no group encodes to more than 1 GiB.
        let plain =
            crate::ingest::body::decompress_snappy(&buf[1..], 1 << 30).map_err(|_| corrupt())?;
        return decode_plain(&plain);
    }
    decode_plain(buf)
}

fn decode_plain(buf: &[u8]) -> Result<Group, CorruptBlob> {
    let mut r = R {
        c: Cursor::new(buf, "push group"),
    };
    if r.byte()? != VERSION {
        return Err(r.c.corrupt());
    }
    let key = r.labels()?;
    let (push_ns, push_set_ns, failure_ns, failure_set_ns, last_write_ms) =
        (r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?);
    let ttl = r.n()?;
    let overrides = super::config::Overrides {
        ttl_ms: (ttl > 0).then(|| (ttl - 1) as i64),
        aggregate: match r.byte()? {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        },
    };
    let mut families = BTreeMap::new();
    for _ in 0..r.len()? {
        let name = r.str()?;
        let help = if r.byte()? == 1 { Some(r.str()?) } else { None };
        let kind = match r.byte()? {
            0 => Kind::Counter,
            1 => Kind::Gauge,
            2 => Kind::Summary,
            3 => Kind::Untyped,
            4 => Kind::Histogram,
            _ => return Err(r.c.corrupt()),
        };
        let at_ns = r.i64()?;
        let n = r.len()?;
        let mut metrics = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let labels = r.labels()?;
            let value = match r.byte()? {
                0 => Value::Simple(r.f64()?),
                1 => {
                    let (count, sum) = (r.n()?, r.f64()?);
                    let mut quantiles = Vec::new();
                    for _ in 0..r.len()? {
                        quantiles.push((r.f64()?, r.f64()?));
                    }
                    Value::Summary {
                        count,
                        sum,
                        quantiles,
                    }
                }
                2 => {
                    let (count, sum) = (r.n()?, r.f64()?);
                    let mut buckets = Vec::new();
                    for _ in 0..r.len()? {
                        buckets.push((r.f64()?, r.n()?));
                    }
                    Value::Histogram {
                        count,
                        sum,
                        buckets,
                    }
                }
                _ => return Err(r.c.corrupt()),
            };
            metrics.push(Metric {
                labels,
                value,
                timestamp_ms: None,
            });
        }
        families.insert(
            name.clone(),
            Stored {
                family: Family {
                    name,
                    help,
                    kind,
                    metrics,
                },
                at_ns,
            },
        );
    }
    Ok(Group {
        key,
        families,
        push_ns,
        push_set_ns,
        failure_ns,
        failure_set_ns,
        last_write_ms,
        overrides,
    })
}
