use proptest::prelude::*;
use proto::Message;
use proto::{v1, v2};

use super::*;

fn strs<'a>(pairs: &[RawLabel<'a>]) -> Vec<(&'a str, &'a str)> {
    labels_as_str(pairs).expect("valid UTF-8")
}

fn v1_series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| v1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| v1::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn v1_decodes_labels_samples_and_metadata() {
    let req = v1::WriteRequest {
        timeseries: vec![
            v1_series(
                &[("__name__", "up"), ("job", "a")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            v1_series(
                &[("__name__", "x")],
                &[(-5, f64::from_bits(0x7ff0000000000002))],
            ),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "x_total".into(),
            help: "h".into(),
            unit: "".into(),
        }],
    };
    let buf = req.encode_to_vec();
    let d = decode_v1(&buf).unwrap();
    assert_eq!(d.series.len(), 2);
    assert_eq!(
        strs(d.series_labels(&d.series[0])),
        [("__name__", "up"), ("job", "a")]
    );
    assert_eq!(
        d.series_samples(&d.series[0]),
        &[Sample::new(1000, 1.0), Sample::new(2000, 0.0)]
    );
    assert_eq!(d.series_samples(&d.series[1])[0].t.0, -5);
    assert_eq!(
        d.series_samples(&d.series[1])[0].v.to_bits(),
        0x7ff0000000000002
    );
    assert_eq!(d.metadata[0].family, "x_total");
    assert_eq!(d.metadata[0].kind, MetadataType::Counter);
}

#[test]
fn v1_counts_histograms_and_exemplars_and_flags_bad_utf8() {
    let mut ts = v1_series(&[("__name__", "h")], &[]);
    ts.histograms.push(v1::Histogram::default());
    ts.exemplars.push(v1::Exemplar::default());
    let mut buf = v1::WriteRequest {
        timeseries: vec![
            ts,
            v1_series(&[("__name__", "ok"), ("a", "zz")], &[(1, 1.0)]),
        ],
        metadata: vec![],
    }
    .encode_to_vec();
    let d = decode_v1(&buf).unwrap();
    assert_eq!((d.series[0].histograms, d.series[0].exemplars), (1, 1));
    // Invalid UTF-8 decodes (it is checked per series later): only that series is affected.
    let pos = buf.windows(2).position(|w| w == b"zz").unwrap();
    buf[pos] = 0xff;
    let d = decode_v1(&buf).unwrap();
    assert!(labels_as_str(d.series_labels(&d.series[1])).is_none());
    assert!(labels_as_str(d.series_labels(&d.series[0])).is_some());
}

#[test]
fn malformed_input_is_an_error_with_offset() {
    assert!(decode_v1(&[0x0a]).unwrap_err().what.contains("truncated"));
    let e = decode_v1(&[0x0a, 0x05, 0x01]).unwrap_err();
    assert_eq!(e.offset, 1);
    assert!(e.to_string().contains("runs past"), "{e}");
    // Field 1 sent as varint instead of a message.
    assert!(
        decode_v1(&[0x08, 0x01])
            .unwrap_err()
            .what
            .contains("wire type")
    );
    assert!(decode_v1(&[0xff; 12]).is_err());
    assert!(decode_v1(b"").unwrap().series.is_empty());
}

#[test]
fn v2_resolves_symbols_and_metadata() {
    let req = v2::Request {
        symbols: [
            "",
            "__name__",
            "req_total",
            "job",
            "api",
            "Requests.",
            "seconds",
        ]
        .map(String::from)
        .to_vec(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 3.0,
                timestamp: 7,
            }],
            metadata: Some(v2::Metadata {
                r#type: 1,
                help_ref: 5,
                unit_ref: 0,
            }),
            ..Default::default()
        }],
    };
    let buf = req.encode_to_vec();
    let d = decode_v2(&buf).unwrap();
    assert_eq!(
        strs(d.series_labels(&d.series[0])),
        [("__name__", "req_total"), ("job", "api")]
    );
    assert_eq!(d.series[0].kind, Some(MetricKind::Counter));
    assert_eq!(d.metadata[0].help, "Requests.");
    assert_eq!(d.series_samples(&d.series[0]), &[Sample::new(7, 3.0)]);
}

#[test]
fn v2_bad_references_reject_the_series() {
    let req = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "x".into()],
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 9],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                ..Default::default()
            },
        ],
    };
    let buf = req.encode_to_vec();
    let d = decode_v2(&buf).unwrap();
    assert_eq!(d.series[0].defect, Some(Reason::invalid_symbol_reference));
    assert_eq!(d.series[1].defect, Some(Reason::invalid_symbol_reference));
    assert_eq!(d.series[2].defect, None);
}

#[test]
fn v2_symbols_after_series_still_resolve() {
    // Hand-built: the TimeSeries (field 5) comes before the symbols (field 4).
    let ts = v2::TimeSeries {
        labels_refs: vec![1, 2],
        ..Default::default()
    }
    .encode_to_vec();
    let mut buf = vec![0x2a, ts.len() as u8];
    buf.extend_from_slice(&ts);
    for s in ["", "__name__", "m"] {
        buf.push(0x22);
        buf.push(s.len() as u8);
        buf.extend_from_slice(s.as_bytes());
    }
    let d = decode_v2(&buf).unwrap();
    assert_eq!(strs(d.series_labels(&d.series[0])), [("__name__", "m")]);
}

/// A series as label pairs and (timestamp, value bits) samples.
type ArbSeries = (Vec<(String, String)>, Vec<(i64, u64)>);

fn arb_series() -> impl Strategy<Value = ArbSeries> {
    (
        prop::collection::vec(("[a-z_]{1,8}", "\\PC{0,12}"), 0..6),
        prop::collection::vec((any::<i64>(), any::<u64>()), 0..5),
    )
}

proptest! {
    #[test]
    fn v1_round_trips_prost(series in prop::collection::vec(arb_series(), 0..8)) {
        let req = v1::WriteRequest {
            timeseries: series.iter().map(|(l, s)| v1::TimeSeries {
                labels: l.iter().map(|(n, v)| v1::Label { name: n.clone(), value: v.clone() }).collect(),
                samples: s.iter().map(|&(t, bits)| v1::Sample { value: f64::from_bits(bits), timestamp: t }).collect(),
                ..Default::default()
            }).collect(),
            metadata: vec![],
        };
        let buf = req.encode_to_vec();
        let d = decode_v1(&buf).unwrap();
        prop_assert_eq!(d.series.len(), series.len());
        for (ds, (l, s)) in d.series.iter().zip(&series) {
            let got: Vec<(String, String)> = strs(d.series_labels(ds)).iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            prop_assert_eq!(&got, l);
            let got: Vec<(i64, u64)> = d.series_samples(ds).iter().map(|x| (x.t.0, x.v.to_bits())).collect();
            prop_assert_eq!(&got, s);
        }
    }

    #[test]
    fn v2_round_trips_prost(series in prop::collection::vec(arb_series(), 0..8)) {
        let mut symbols = vec![String::new()];
        let mut timeseries = Vec::new();
        for (l, s) in &series {
            let mut refs = Vec::new();
            for (n, v) in l {
                for x in [n, v] {
                    refs.push(symbols.len() as u32);
                    symbols.push(x.clone());
                }
            }
            timeseries.push(v2::TimeSeries {
                labels_refs: refs,
                samples: s.iter().map(|&(t, bits)| v2::Sample { value: f64::from_bits(bits), timestamp: t }).collect(),
                ..Default::default()
            });
        }
        let buf = v2::Request { symbols, timeseries }.encode_to_vec();
        let d = decode_v2(&buf).unwrap();
        for (ds, (l, s)) in d.series.iter().zip(&series) {
            let got: Vec<(String, String)> = strs(d.series_labels(ds)).iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            prop_assert_eq!(&got, l);
            let got: Vec<(i64, u64)> = d.series_samples(ds).iter().map(|x| (x.t.0, x.v.to_bits())).collect();
            prop_assert_eq!(&got, s);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_v1(&bytes);
        let _ = decode_v2(&bytes);
    }
}

#[test]
fn samples_decode_in_any_field_order_and_with_unknown_fields() {
    let t: i64 = 1_700_000_000_123;
    let mut ts = Vec::new();
    let mut x = t as u64;
    while x >= 0x80 {
        ts.push((x as u8) | 0x80);
        x >>= 7;
    }
    ts.push(x as u8);
    let value = 2.5f64.to_bits().to_le_bytes();
    let usual = [&[0x09][..], &value, &[0x10], &ts].concat();
    let reversed = [&[0x10][..], &ts, &[0x09], &value].concat();
    let extra = [&usual[..], &[0x18, 0x01]].concat();
    for buf in [usual, reversed, extra] {
        assert_eq!(sample(&buf, 0).unwrap(), Sample::new(t, 2.5), "{buf:02x?}");
    }
    // A timestamp varint cut short is an error, on either path.
    let cut = [&[0x09][..], &value, &[0x10, 0x80]].concat();
    assert!(sample(&cut, 0).is_err());
}
