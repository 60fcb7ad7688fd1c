//! The delimited protobuf push format: `io.prometheus.client.MetricFamily` messages, each
//! prefixed with its length as a varint, decoded with prost into [`Family`]s.
//!
//! As in Pushgateway, a later family of the same name replaces an earlier one; unlike text,
//! every metric's value kind must match the family's type (the `is not a GAUGE` error of
//! Pushgateway's consistency check, reported here at decode time).

use proto::Message;
use proto::client::{self, MetricType};

use super::family::{Family, Kind, Metric, Value};

/// A body that is not a valid stream of delimited `MetricFamily` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid delimited protobuf body at byte {offset}: {message}")]
pub struct ProtobufError {
    pub offset: usize,
    pub message: String,
}

/// Decodes the whole body.
pub fn parse(body: &[u8]) -> Result<Vec<Family>, ProtobufError> {
    let mut out: Vec<Family> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let start = pos;
        let fail = |message: String| ProtobufError {
            offset: start,
            message,
        };
        let (len, n) =
            varint(&body[pos..]).ok_or_else(|| fail("bad length prefix (varint)".into()))?;
        pos += n;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|e| *e <= body.len())
            .ok_or_else(|| {
                fail(format!(
                    "message length {len} runs past the end of the body ({} bytes)",
                    body.len()
                ))
            })?;
        let mf = client::MetricFamily::decode(&body[pos..end])
            .map_err(|e| fail(format!("MetricFamily: {e}")))?;
        pos = end;
        let family = convert(mf).map_err(fail)?;
        match out.iter_mut().find(|f| f.name == family.name) {
            Some(f) => *f = family,
            None => out.push(family),
        }
    }
    Ok(out)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &x) in b.iter().take(10).enumerate() {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

fn convert(mf: client::MetricFamily) -> Result<Family, String> {
    let name = mf.name.clone().unwrap_or_default();
    let kind = match mf.r#type() {
        MetricType::Counter => Kind::Counter,
        MetricType::Gauge => Kind::Gauge,
        MetricType::Summary => Kind::Summary,
        MetricType::Untyped => Kind::Untyped,
        MetricType::Histogram => Kind::Histogram,
        MetricType::GaugeHistogram => {
            return Err(format!(
                "metric family {name:?}: type GAUGE_HISTOGRAM is not supported"
            ));
        }
    };
    let mut metrics = Vec::with_capacity(mf.metric.len());
    for m in mf.metric {
        let labels: Vec<(String, String)> = m
            .label
            .into_iter()
            .map(|l| (l.name.unwrap_or_default(), l.value.unwrap_or_default()))
            .collect();
        let mismatch = || {
            format!(
                "metric {name:?} {{{}}} is not a {}",
                labels
                    .iter()
                    .map(|(n, v)| format!("{n}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(","),
                kind.proto_name()
            )
        };
        let value = match kind {
            Kind::Counter => Value::Simple(m.counter.ok_or_else(mismatch)?.value()),
            Kind::Gauge => Value::Simple(m.gauge.ok_or_else(mismatch)?.value()),
            Kind::Untyped => Value::Simple(m.untyped.ok_or_else(mismatch)?.value()),
            Kind::Summary => {
                let s = m.summary.ok_or_else(mismatch)?;
                Value::Summary {
                    count: s.sample_count(),
                    sum: s.sample_sum(),
                    quantiles: s
                        .quantile
                        .iter()
                        .map(|q| (q.quantile(), q.value()))
                        .collect(),
                }
            }
            Kind::Histogram => {
                let h = m.histogram.ok_or_else(mismatch)?;
                if h.schema.is_some() && h.bucket.is_empty() {
                    return Err(format!(
                        "metric family {name:?}: native histograms are not supported"
                    ));
                }
                Value::Histogram {
                    count: h
                        .sample_count
                        .unwrap_or(h.sample_count_float.unwrap_or(0.0) as u64),
                    sum: h.sample_sum(),
                    buckets: h
                        .bucket
                        .iter()
                        .map(|b| {
                            (
                                b.upper_bound(),
                                b.cumulative_count
                                    .unwrap_or(b.cumulative_count_float.unwrap_or(0.0) as u64),
                            )
                        })
                        .collect(),
                }
            }
        };
        metrics.push(Metric {
            labels,
            value,
            timestamp_ms: m.timestamp_ms,
        });
    }
    Ok(Family {
        name,
        help: mf.help,
        kind,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delimited(families: &[client::MetricFamily]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in families {
            f.encode_length_delimited(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn decodes_families() {
        let body = delimited(&[client::MetricFamily {
            name: Some("g".into()),
            help: Some("h".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![client::Metric {
                label: vec![client::LabelPair {
                    name: Some("a".into()),
                    value: Some("b".into()),
                }],
                gauge: Some(client::Gauge { value: Some(2.5) }),
                ..Default::default()
            }],
            unit: None,
        }]);
        let f = parse(&body).unwrap();
        assert_eq!(f[0].name, "g");
        assert_eq!(f[0].kind, Kind::Gauge);
        assert_eq!(f[0].metrics[0].value, Value::Simple(2.5));
        assert_eq!(f[0].metrics[0].labels, vec![("a".into(), "b".into())]);
    }

    #[test]
    fn mismatched_kind_and_garbage_are_errors() {
        let body = delimited(&[client::MetricFamily {
            name: Some("g".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![client::Metric {
                counter: Some(client::Counter { value: Some(1.0) }),
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert!(parse(&body).unwrap_err().message.contains("is not a GAUGE"));
        assert!(parse(&[0x05, 0x01]).is_err());
        assert!(parse(&[0xff; 3]).is_err());
    }
}
