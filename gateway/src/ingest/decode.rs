//! Remote-write request decoding: a zero-copy walk over the protobuf wire format for both
//! `prometheus.WriteRequest` (1.0) and `io.prometheus.write.v2.Request` (2.0).
//!
//! Written by hand rather than decoded into prost's owned structs because ingest speed is
//! promgate's first benchmark: prost allocates a `String` per label name and value and a `Vec`
//! per series, which on this machine's kind runs at 0.72M samples/s for 1-sample series against
//! 3.4M/s for a borrowed walk (DESIGN.md, "Storage"). Label names and values stay byte slices
//! of the decompressed body: UTF-8 is checked later, and only for series the head does not
//! know yet (see `ingest::remote_write::prepare`), so one bad series is rejected alone and a
//! known series costs no validation. The prost types in `proto` remain the reference: the
//! tests encode with them and decode here.

use std::ops::Range;

use rules_engine::Sample;

use crate::validate::{MetricKind, Reason};

/// A request that is not valid protobuf for its message type. Rejects the whole request: the
/// bytes cannot be trusted past the first error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {message} protobuf at byte {offset}: {what}")]
pub struct DecodeError {
    pub message: &'static str,
    pub offset: usize,
    pub what: &'static str,
}

/// One decoded series: ranges into [`Decoded::labels`] and [`Decoded::samples`].
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSeries {
    pub labels: Range<u32>,
    pub samples: Range<u32>,
    pub histograms: u32,
    pub exemplars: u32,
    /// Declared type (2.0 per-series metadata, or 1.0 metadata matched by family name later).
    pub kind: Option<MetricKind>,
    /// A problem found while decoding that rejects this series alone.
    pub defect: Option<Reason>,
}

/// A label pair as it arrived: bytes, not yet checked to be UTF-8.
pub type RawLabel<'a> = (&'a [u8], &'a [u8]);

/// A decoded request. Label slices borrow from the decompressed body.
#[derive(Debug, Default)]
pub struct Decoded<'a> {
    pub series: Vec<DecodedSeries>,
    pub labels: Vec<RawLabel<'a>>,
    pub samples: Vec<Sample>,
    /// Metric metadata: (family name, type, help, unit).
    pub metadata: Vec<Metadata<'a>>,
}

/// Metric metadata as senders declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata<'a> {
    pub family: &'a str,
    pub kind: MetadataType,
    pub help: &'a str,
    pub unit: &'a str,
}

/// The metric type enum shared by both protocol versions (same numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataType {
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetadataType {
    fn from_wire(v: u64) -> Self {
        match v {
            1 => Self::Counter,
            2 => Self::Gauge,
            3 => Self::Histogram,
            4 => Self::GaugeHistogram,
            5 => Self::Summary,
            6 => Self::Info,
            7 => Self::StateSet,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
        }
    }

    pub fn lint_kind(self) -> Option<MetricKind> {
        match self {
            Self::Unknown => None,
            Self::Counter => Some(MetricKind::Counter),
            Self::Gauge => Some(MetricKind::Gauge),
            _ => Some(MetricKind::Other),
        }
    }
}

impl Decoded<'_> {
    /// Empty, with room for what a message of `len` bytes usually holds (a label pair takes
    /// 20-30 bytes, a series 200-500), so decoding rarely grows a vector by copying it.
    fn sized_for(len: usize) -> Self {
        Self {
            series: Vec::with_capacity(len / 128),
            labels: Vec::with_capacity(len / 24),
            samples: Vec::with_capacity(len / 48),
            metadata: Vec::new(),
        }
    }

    /// Samples in the request (float samples only).
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    pub fn series_labels(&self, s: &DecodedSeries) -> &[RawLabel<'_>] {
        &self.labels[s.labels.start as usize..s.labels.end as usize]
    }

    pub fn series_samples(&self, s: &DecodedSeries) -> &[Sample] {
        &self.samples[s.samples.start as usize..s.samples.end as usize]
    }
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A cursor over protobuf bytes; offsets in errors are relative to the whole request.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, message: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            message,
        }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        self.err_at(self.pos, what)
    }

    fn err_at(&self, pos: usize, what: &'static str) -> DecodeError {
        DecodeError {
            message: self.message,
            offset: self.base + pos,
            what,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Keys and label lengths are almost always one byte: that case stays inline.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// A field key: (field number, wire type).
    #[inline]
    fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(self.err("field number 0"));
        }
        Ok((field, (k & 7) as u8))
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.pos + 8;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            return Err(self.err("truncated fixed64"));
        };
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-delimited field's bytes, and the offset of their start in the request.
    #[inline]
    fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let at = self.pos;
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err_at(at, "length-delimited field runs past its message"))?;
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            I32 => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos = end;
                Ok(())
            }
            _ => Err(self.err("unsupported wire type (groups are not used by remote write)")),
        }
    }

    fn expect(&self, got: u8, want: u8) -> Result<(), DecodeError> {
        if got == want {
            Ok(())
        } else {
            Err(self.err("wrong wire type for field"))
        }
    }
}

/// Decodes one `Sample { double value = 1; int64 timestamp = 2; }`.
#[inline]
fn sample(buf: &[u8], base: usize) -> Result<Sample, DecodeError> {
    // What every sender writes: `09 <value: 8 bytes> 10 <timestamp varint>` and nothing else.
    // Decoded straight (a millisecond timestamp is a 6-byte varint, the slow path's case).
    if buf.len() > 10
        && buf[0] == 0x09
        && buf[9] == 0x10
        && let Some(t) = whole_varint(&buf[10..])
    {
        let mut v = [0u8; 8];
        v.copy_from_slice(&buf[1..9]);
        return Ok(Sample::new(t as i64, f64::from_bits(u64::from_le_bytes(v))));
    }
    let mut r = Reader::new(buf, base, "Sample");
    let (mut v, mut t) = (0.0, 0i64);
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, I64)?;
                v = f64::from_bits(r.fixed64()?);
            }
            (2, w) => {
                r.expect(w, VARINT)?;
                t = r.varint()? as i64;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(Sample::new(t, v))
}

/// The varint that is exactly `b`, if it is one (at most 10 bytes, only the last one below
/// 0x80).
#[inline]
fn whole_varint(b: &[u8]) -> Option<u64> {
    let (last, rest) = b.split_last()?;
    if *last >= 0x80 || rest.len() > 9 {
        return None;
    }
    let mut v = 0u64;
    for (i, x) in rest.iter().enumerate() {
        if *x < 0x80 {
            return None;
        }
        v |= u64::from(x & 0x7f) << (7 * i);
    }
    Some(v | u64::from(*last) << (7 * rest.len()))
}

/// Decodes a remote write 1.0 `WriteRequest`.
pub fn decode_v1(buf: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let mut out = Decoded::sized_for(buf.len());
    let mut r = Reader::new(buf, 0, "WriteRequest");
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, LEN)?;
                let (ts, base) = r.bytes()?;
                v1_series(ts, base, &mut out)?;
            }
            (3, w) => {
                r.expect(w, LEN)?;
                let (md, base) = r.bytes()?;
                out.metadata.push(v1_metadata(md, base)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(out)
}

fn v1_series<'a>(buf: &'a [u8], base: usize, out: &mut Decoded<'a>) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf, base, "TimeSeries");
    let labels_start = out.labels.len() as u32;
    let samples_start = out.samples.len() as u32;
    let mut series = DecodedSeries {
        labels: 0..0,
        samples: 0..0,
        histograms: 0,
        exemplars: 0,
        kind: None,
        defect: None,
    };
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, LEN)?;
                let (lb, lbase) = r.bytes()?;
                out.labels.push(v1_label(lb, lbase)?);
            }
            (2, w) => {
                r.expect(w, LEN)?;
                let (sb, sbase) = r.bytes()?;
                out.samples.push(sample(sb, sbase)?);
            }
            (3, w) => {
                r.expect(w, LEN)?;
                r.bytes()?;
                series.exemplars += 1;
            }
            (4, w) => {
                r.expect(w, LEN)?;
                r.bytes()?;
                series.histograms += 1;
            }
            (_, w) => r.skip(w)?,
        }
    }
    series.labels = labels_start..out.labels.len() as u32;
    series.samples = samples_start..out.samples.len() as u32;
    out.series.push(series);
    Ok(())
}

fn v1_label(buf: &[u8], base: usize) -> Result<(&[u8], &[u8]), DecodeError> {
    let mut r = Reader::new(buf, base, "Label");
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, LEN)?;
                name = r.bytes()?.0;
            }
            (2, w) => {
                r.expect(w, LEN)?;
                value = r.bytes()?.0;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((name, value))
}

/// Metadata is advisory: invalid UTF-8 there empties the field rather than failing the samples
/// it travels with.
fn text<'a>(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    let (b, _) = r.bytes()?;
    Ok(std::str::from_utf8(b).unwrap_or(""))
}

fn v1_metadata(buf: &[u8], base: usize) -> Result<Metadata<'_>, DecodeError> {
    let mut r = Reader::new(buf, base, "MetricMetadata");
    let mut md = Metadata {
        family: "",
        kind: MetadataType::Unknown,
        help: "",
        unit: "",
    };
    while !r.done() {
        match r.key()? {
            (1, w) => {
                r.expect(w, VARINT)?;
                md.kind = MetadataType::from_wire(r.varint()?);
            }
            (2, w) => {
                r.expect(w, LEN)?;
                md.family = text(&mut r)?;
            }
            (4, w) => {
                r.expect(w, LEN)?;
                md.help = text(&mut r)?;
            }
            (5, w) => {
                r.expect(w, LEN)?;
                md.unit = text(&mut r)?;
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok(md)
}

/// Decodes a remote write 2.0 `Request`. Symbols may follow the series on the wire, so label
/// references are resolved after the whole message is read.
pub fn decode_v2(buf: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let mut out = Decoded::sized_for(buf.len());
    let mut symbols: Vec<&[u8]> = Vec::new();
    // Per series: label refs range, help ref, unit ref, metadata type.
    let mut refs: Vec<u32> = Vec::new();
    let mut pending: Vec<(Range<u32>, u32, u32, MetadataType)> = Vec::new();
    let mut r = Reader::new(buf, 0, "Request");
    while !r.done() {
        match r.key()? {
            (4, w) => {
                r.expect(w, LEN)?;
                symbols.push(r.bytes()?.0);
            }
            (5, w) => {
                r.expect(w, LEN)?;
                let (ts, base) = r.bytes()?;
                pending.push(v2_series(ts, base, &mut refs, &mut out)?);
            }
            (_, w) => r.skip(w)?,
        }
    }
    let symbol = |i: u32| symbols.get(i as usize).copied();
    for (series, (label_refs, help_ref, unit_ref, kind)) in out.series.iter_mut().zip(pending) {
        let start = out.labels.len() as u32;
        let pairs = &refs[label_refs.start as usize..label_refs.end as usize];
        if !pairs.len().is_multiple_of(2) {
            series
                .defect
                .get_or_insert(Reason::invalid_symbol_reference);
        }
        for pair in pairs.chunks_exact(2) {
            match (symbol(pair[0]), symbol(pair[1])) {
                (Some(n), Some(v)) => out.labels.push((n, v)),
                _ => {
                    series
                        .defect
                        .get_or_insert(Reason::invalid_symbol_reference);
                }
            }
        }
        series.labels = start..out.labels.len() as u32;
        if kind != MetadataType::Unknown {
            series.kind = kind.lint_kind();
            let family = out.labels[series.labels.start as usize..series.labels.end as usize]
                .iter()
                .find(|(n, _)| *n == rules_engine::model::METRIC_NAME.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok());
            let text = |r: u32| symbol(r).and_then(|b| std::str::from_utf8(b).ok());
            if let (Some(family), Some(help), Some(unit)) = (family, text(help_ref), text(unit_ref))
            {
                out.metadata.push(Metadata {
                    family,
                    kind,
                    help,
                    unit,
                });
            }
        }
    }
    Ok(out)
}

fn v2_series<'a>(
    buf: &'a [u8],
    base: usize,
    refs: &mut Vec<u32>,
    out: &mut Decoded<'a>,
) -> Result<(Range<u32>, u32, u32, MetadataType), DecodeError> {
    let mut r = Reader::new(buf, base, "TimeSeries");
    let refs_start = refs.len() as u32;
    let samples_start = out.samples.len() as u32;
    let mut series = DecodedSeries {
        labels: 0..0,
        samples: 0..0,
        histograms: 0,
        exemplars: 0,
        kind: None,
        defect: None,
    };
    let (mut help, mut unit, mut kind) = (0u32, 0u32, MetadataType::Unknown);
    let mut push_ref = |v: u64, series: &mut DecodedSeries| match u32::try_from(v) {
        Ok(v) => refs.push(v),
        Err(_) => series.defect = Some(Reason::invalid_symbol_reference),
    };
    while !r.done() {
        match r.key()? {
            (1, LEN) => {
                let (packed, pbase) = r.bytes()?;
                let mut p = Reader::new(packed, pbase, "TimeSeries.labels_refs");
                while !p.done() {
                    push_ref(p.varint()?, &mut series);
                }
            }
            (1, VARINT) => {
                let v = r.varint()?;
                push_ref(v, &mut series);
            }
            (2, w) => {
                r.expect(w, LEN)?;
                let (sb, sbase) = r.bytes()?;
                out.samples.push(sample(sb, sbase)?);
            }
            (3, w) => {
                r.expect(w, LEN)?;
                r.bytes()?;
                series.histograms += 1;
            }
            (4, w) => {
                r.expect(w, LEN)?;
                r.bytes()?;
                series.exemplars += 1;
            }
            (5, w) => {
                r.expect(w, LEN)?;
                let (mb, mbase) = r.bytes()?;
                let mut m = Reader::new(mb, mbase, "Metadata");
                while !m.done() {
                    match m.key()? {
                        (1, VARINT) => kind = MetadataType::from_wire(m.varint()?),
                        (3, VARINT) => help = u32::try_from(m.varint()?).unwrap_or(u32::MAX),
                        (4, VARINT) => unit = u32::try_from(m.varint()?).unwrap_or(u32::MAX),
                        (1 | 3 | 4, _) => return Err(m.err("wrong wire type for field")),
                        (_, w) => m.skip(w)?,
                    }
                }
            }
            (1, _) => return Err(r.err("wrong wire type for field")),
            (_, w) => r.skip(w)?,
        }
    }
    series.samples = samples_start..out.samples.len() as u32;
    out.series.push(series);
    Ok((refs_start..refs.len() as u32, help, unit, kind))
}

#[cfg(test)]
mod tests;

/// The pairs as strings, if every name and value is valid UTF-8.
pub fn labels_as_str<'a>(pairs: &[RawLabel<'a>]) -> Option<Vec<(&'a str, &'a str)>> {
    pairs
        .iter()
        .map(|(n, v)| Some((std::str::from_utf8(n).ok()?, std::str::from_utf8(v).ok()?)))
        .collect()
}
