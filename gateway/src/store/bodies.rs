//! The request bodies kept with a record in memory ([`super::recent`]) for targets that are
//! sent bodies as received (see [`super::ReceivedBody`]).
//!
//! A record keeps bodies only when every one of its entries came from one: a forwarder then
//! sends the bodies instead of re-encoding the record. Each body lists the series it holds,
//! so that a forwarder can keep each series on one connection at a time without decoding the
//! record.

use std::ops::Range;

use super::ReceivedBody;
use super::codec::{CorruptBlob, Cursor, put_varint, unzigzag, zigzag};

/// Appends one body, holding samples of the series `ids`, to a record's bodies.
pub fn encode_body(out: &mut Vec<u8>, ids: &[u64], body: &ReceivedBody) {
    put_varint(out, ids.len() as u64);
    let mut prev = 0u64;
    for id in ids {
        put_varint(out, zigzag(id.wrapping_sub(prev) as i64));
        prev = *id;
    }
    put_varint(out, u64::from(body.samples));
    put_varint(out, zigzag(body.newest));
    put_varint(out, body.data.len() as u64);
    out.extend_from_slice(&body.data);
}

/// One body of a record's bodies.
#[derive(Debug, PartialEq)]
pub struct BodyRef<'a> {
    /// Its series: a range of the ids [`decode_bodies`] collected.
    pub ids: Range<usize>,
    pub samples: u32,
    pub newest: i64,
    pub data: &'a [u8],
}

/// Decodes bodies written by [`encode_body`], appending the bodies' series to `ids`.
pub fn decode_bodies<'a>(
    blob: &'a [u8],
    ids: &mut Vec<u64>,
) -> Result<Vec<BodyRef<'a>>, CorruptBlob> {
    let mut c = Cursor::new(blob, "request bodies");
    let mut out = Vec::new();
    while !c.done() {
        let n = c.varint()?;
        let start = ids.len();
        let mut id = 0u64;
        for _ in 0..n {
            id = id.wrapping_add(unzigzag(c.varint()?) as u64);
            ids.push(id);
        }
        let samples = u32::try_from(c.varint()?).map_err(|_| c.corrupt())?;
        let newest = unzigzag(c.varint()?);
        let data = c.bytes()?;
        out.push(BodyRef {
            ids: start..ids.len(),
            samples,
            newest,
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        let a = ReceivedBody {
            data: bytes::Bytes::from_static(b"\x01\x02\x03"),
            samples: 7,
            newest: 1_700_000_000_123,
        };
        let b = ReceivedBody {
            data: bytes::Bytes::new(),
            samples: 0,
            newest: -5,
        };
        let mut blob = Vec::new();
        encode_body(&mut blob, &[9, 3, u64::MAX], &a);
        encode_body(&mut blob, &[4], &b);
        let mut ids = vec![77];
        let got = decode_bodies(&blob, &mut ids).unwrap();
        assert_eq!(ids, [77, 9, 3, u64::MAX, 4]);
        assert_eq!(
            got,
            vec![
                BodyRef {
                    ids: 1..4,
                    samples: 7,
                    newest: 1_700_000_000_123,
                    data: b"\x01\x02\x03"
                },
                BodyRef {
                    ids: 4..5,
                    samples: 0,
                    newest: -5,
                    data: b""
                },
            ]
        );
        // A blob cut anywhere but between bodies is an error, never a panic.
        let mut first = Vec::new();
        encode_body(&mut first, &[9, 3, u64::MAX], &a);
        for cut in (1..blob.len()).filter(|c| *c != first.len()) {
            assert!(
                decode_bodies(&blob[..cut], &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
    }
}
