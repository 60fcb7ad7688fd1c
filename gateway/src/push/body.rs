//! A push body's framing: its format from `Content-Type` (as Pushgateway decides it: delimited
//! protobuf only for the exact media type and parameters, OpenMetrics text for
//! `application/openmetrics-text`, the text format 0.0.4 for anything else), and its
//! `Content-Encoding` (gzip, or snappy in block or framed form) undone within the decoded-size
//! limit.

use std::io::Read;

use proto::headers;

use super::family::Family;
use crate::ingest::body::{FramingError, decompress_snappy};

/// The format a body is parsed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
    Protobuf,
}

pub fn format_of(content_type: Option<&str>) -> Format {
    let Some(ct) = content_type else {
        return Format::Text;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let (mut proto, mut encoding) = (None, None);
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(v.to_string()),
                "encoding" => encoding = Some(v.to_string()),
                _ => {}
            }
        }
    }
    if media == headers::PUSH_PROTOBUF_MEDIA_TYPE
        && proto.as_deref() == Some(headers::PUSH_PROTOBUF_PROTO)
        && encoding.as_deref() == Some(headers::PUSH_PROTOBUF_ENCODING)
    {
        Format::Protobuf
    } else if media == "application/openmetrics-text" {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// The body with its `Content-Encoding` undone, at most `max` bytes.
pub fn decode_encoding(
    body: bytes::Bytes,
    encoding: Option<&str>,
    max: usize,
) -> Result<bytes::Bytes, FramingError> {
    let enc = encoding.map(|e| e.trim().to_ascii_lowercase());
    let too_large = || {
        FramingError::TooLarge(format!(
            "decompressed push body over limits.max_decoded_bytes ({max} bytes)"
        ))
    };
    let read_all = |r: &mut dyn Read, what: &str| -> Result<bytes::Bytes, FramingError> {
        let mut out = Vec::new();
        r.take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| FramingError::Invalid(format!("invalid {what} body: {e}")))?;
        if out.len() > max {
            return Err(too_large());
        }
        Ok(out.into())
    };
    match enc.as_deref() {
        None | Some("") | Some("identity") => {
            if body.len() > max {
                return Err(too_large());
            }
            Ok(body)
        }
        Some("gzip") | Some("x-gzip") => {
            read_all(&mut flate2::read::MultiGzDecoder::new(&body[..]), "gzip")
        }
        Some("snappy") => {
            const STREAM_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";
            if body.starts_with(STREAM_MAGIC) {
                read_all(
                    &mut snap::read::FrameDecoder::new(&body[..]),
                    "snappy (framed)",
                )
            } else {
                decompress_snappy(&body, max).map(Into::into)
            }
        }
        Some(other) => Err(FramingError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?} for a push: expected gzip or snappy (or none)"
        ))),
    }
}

/// A body that does not parse, with the answer's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Text(#[from] super::text::ParseError),
    #[error(transparent)]
    Protobuf(#[from] super::protobuf::ProtobufError),
}

/// Sample lines of a text body (non-blank, not comments): a bound on its samples found in one
/// pass, so an oversized push is refused before it is parsed into memory.
pub fn sample_lines(body: &[u8]) -> usize {
    body.split(|b| *b == b'\n')
        .filter(|l| {
            l.iter()
                .find(|c| !matches!(c, b' ' | b'\t'))
                .is_some_and(|c| *c != b'#')
        })
        .count()
}

pub fn parse(format: Format, body: &[u8]) -> Result<Vec<Family>, BodyError> {
    Ok(match format {
        Format::Text => super::text::parse(body, false)?,
        Format::OpenMetrics => super::text::parse(body, true)?,
        Format::Protobuf => super::protobuf::parse(body)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_pushgateway() {
        assert_eq!(format_of(None), Format::Text);
        assert_eq!(format_of(Some("text/plain; version=0.0.4")), Format::Text);
        assert_eq!(
            format_of(Some(
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            )),
            Format::Protobuf
        );
        assert_eq!(
            format_of(Some(
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"
            )),
            Format::Text
        );
        assert_eq!(
            format_of(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn sample_lines_skip_comments_and_blanks() {
        assert_eq!(
            sample_lines(b"# HELP x y\n\n  \t\nx 1\n  y{a=\"#\"} 2\n# EOF\n"),
            2
        );
    }

    #[test]
    fn encodings_are_capped() {
        use std::io::Write;
        let plain = b"g 1\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = bytes::Bytes::from(gz.finish().unwrap());
        assert_eq!(
            &decode_encoding(gz.clone(), Some("gzip"), 1000).unwrap()[..],
            &plain[..]
        );
        assert!(matches!(
            decode_encoding(gz, Some("gzip"), 399),
            Err(FramingError::TooLarge(_))
        ));
        let sn = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
        assert_eq!(
            &decode_encoding(sn.into(), Some("snappy"), 1000).unwrap()[..],
            &plain[..]
        );
        assert!(matches!(
            decode_encoding(bytes::Bytes::from_static(b"x"), Some("br"), 10),
            Err(FramingError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            decode_encoding(bytes::Bytes::from_static(b"not gzip"), Some("gzip"), 10),
            Err(FramingError::Invalid(_))
        ));
    }
}
