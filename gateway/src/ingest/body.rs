//! Request framing for remote write: content-type negotiation per the 1.0 and 2.0 specs, and
//! snappy block decompression whose declared length is checked against a cap before anything
//! is allocated.

use proto::headers;

/// The protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "1.0",
            Protocol::V2 => "2.0",
        }
    }
}

/// A request refused before its content is read, with the status the spec prescribes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413.
    #[error("{0}")]
    TooLarge(String),
    /// 400.
    #[error("{0}")]
    Invalid(String),
}

/// Picks the protocol from `Content-Type` and checks `Content-Encoding`. A missing
/// `Content-Type` means 1.0 and a missing `Content-Encoding` means snappy, as Prometheus's own
/// receiver assumes; anything else unknown is 415.
pub fn negotiate(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<Protocol, FramingError> {
    if let Some(enc) = content_encoding
        && !enc.trim().eq_ignore_ascii_case(headers::ENCODING_SNAPPY)
    {
        return Err(FramingError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {enc:?}: remote write bodies must be snappy (block format)"
        )));
    }
    let Some(ct) = content_type else {
        return Ok(Protocol::V1);
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(headers::CONTENT_TYPE_V1) {
        return Err(FramingError::UnsupportedMediaType(format!(
            "unsupported Content-Type {ct:?}: expected {} (remote write 1.0) or {} (2.0)",
            headers::CONTENT_TYPE_V1,
            headers::CONTENT_TYPE_V2
        )));
    }
    let mut proto = None;
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("proto")
        {
            proto = Some(v.trim().trim_matches('"'));
        }
    }
    match proto {
        None => Ok(Protocol::V1),
        Some(p) if p == headers::PROTO_V1 => Ok(Protocol::V1),
        Some(p) if p == headers::PROTO_V2 => Ok(Protocol::V2),
        Some(p) => Err(FramingError::UnsupportedMediaType(format!(
            "unsupported proto={p:?}: expected {} or {}",
            headers::PROTO_V1,
            headers::PROTO_V2
        ))),
    }
}

/// Most bytes of an oversized body read and thrown away so that the sender, still sending,
/// receives the 413 (closing a socket with unread data resets the connection, and the answer
/// with it). A body declared larger than this is refused without reading.
pub const DRAIN_CAP: u64 = 256 << 20;

/// Reads a request body of at most `limit` bytes. Past the limit the rest is drained (up to
/// [`DRAIN_CAP`]) and the answer is 413 naming the limit.
pub async fn read_capped(
    body: axum::body::Body,
    declared: Option<u64>,
    limit: usize,
) -> Result<bytes::Bytes, FramingError> {
    use http_body_util::BodyExt;

    let too_large = || {
        FramingError::TooLarge(format!(
            "request body over limits.max_body_bytes ({limit} bytes)"
        ))
    };
    if declared.is_some_and(|d| d > DRAIN_CAP) {
        return Err(too_large());
    }
    let mut body = body;
    let mut buf =
        bytes::BytesMut::with_capacity(declared.map_or(0, |d| d.min(limit as u64) as usize));
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(FramingError::Invalid(
                "the request body could not be read".into(),
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen <= limit as u64 {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > limit as u64 {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// Decompresses a snappy block, refusing before allocation when its header declares more than
/// `max` bytes.
pub fn decompress_snappy(body: &[u8], max: usize) -> Result<Vec<u8>, FramingError> {
    if body.is_empty() {
        return Err(FramingError::Invalid(
            "empty request body: expected a snappy-compressed protobuf message".into(),
        ));
    }
    let len = declared_len(body).ok_or_else(|| {
        FramingError::Invalid("invalid snappy block header: bad length varint".into())
    })?;
    if len > max as u64 {
        return Err(FramingError::TooLarge(format!(
            "snappy header declares {len} decoded bytes, over limits.max_decoded_bytes ({max})"
        )));
    }
    let mut out = vec![0; len as usize];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|e| FramingError::Invalid(format!("invalid snappy data: {e}")))?;
    out.truncate(n);
    Ok(out)
}

/// The decoded length a snappy block declares: its leading uvarint.
fn declared_len(body: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in body.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_specs() {
        assert_eq!(negotiate(None, None), Ok(Protocol::V1));
        assert_eq!(
            negotiate(Some("application/x-protobuf"), Some("snappy")),
            Ok(Protocol::V1)
        );
        assert_eq!(
            negotiate(
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                None
            ),
            Ok(Protocol::V1)
        );
        assert_eq!(
            negotiate(
                Some("application/x-protobuf; proto=\"io.prometheus.write.v2.Request\""),
                Some("snappy")
            ),
            Ok(Protocol::V2)
        );
        assert!(matches!(
            negotiate(Some("application/json"), None),
            Err(FramingError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            negotiate(Some("application/x-protobuf;proto=foo.Bar"), None),
            Err(FramingError::UnsupportedMediaType(_))
        ));
        let e = negotiate(None, Some("gzip")).unwrap_err();
        assert!(e.to_string().contains("gzip"), "{e}");
    }

    #[test]
    fn snappy_is_capped_before_allocation() {
        let data = vec![7u8; 1000];
        let enc = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress_snappy(&enc, 1000).unwrap(), data);
        assert!(matches!(
            decompress_snappy(&enc, 999),
            Err(FramingError::TooLarge(_))
        ));
        // A header declaring 4 GiB (varint 0x80 0x80 0x80 0x80 0x10) and no data.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
        assert!(matches!(
            decompress_snappy(&huge, 1 << 20),
            Err(FramingError::TooLarge(_))
        ));
        assert!(matches!(
            decompress_snappy(b"", 10),
            Err(FramingError::Invalid(_))
        ));
        assert!(matches!(
            decompress_snappy(&[0x05, 0xff, 0xff], 10),
            Err(FramingError::Invalid(_))
        ));
    }
}
