use super::*;

fn one(body: &str) -> Vec<Family> {
    parse(body.as_bytes(), false).unwrap()
}

#[test]
fn families_with_help_type_and_labels() {
    let f = one(
        "# HELP foo_total A \\\\ counter.\\n\n# TYPE foo_total counter\nfoo_total{a=\"1\",b=\"x\\\"y\"} 3\nbar 1.5\nfoo_total{a=\"2\",} 4\n",
    );
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].name, "foo_total");
    assert_eq!(f[0].kind, Kind::Counter);
    assert_eq!(f[0].help.as_deref(), Some("A \\ counter.\n"));
    assert_eq!(f[0].metrics.len(), 2);
    assert_eq!(
        f[0].metrics[0].labels,
        vec![("a".into(), "1".into()), ("b".into(), "x\"y".into())]
    );
    assert_eq!(f[1].kind, Kind::Untyped);
    assert_eq!(f[1].metrics[0].value, Value::Simple(1.5));
}

#[test]
fn summaries_and_histograms_group_by_labels() {
    let f = one(
        "# TYPE s summary\ns{quantile=\"0.5\",x=\"a\"} 1\ns_sum{x=\"a\"} 10\ns_count{x=\"a\"} 3.7\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
    );
    assert_eq!(
        f[0].metrics[0].value,
        Value::Summary {
            count: 3,
            sum: 10.0,
            quantiles: vec![(0.5, 1.0)]
        }
    );
    assert_eq!(f[0].metrics[0].labels, vec![("x".into(), "a".into())]);
    assert_eq!(
        f[1].metrics[0].value,
        Value::Histogram {
            count: 2,
            sum: 3.0,
            buckets: vec![(1.0, 1), (f64::INFINITY, 2)]
        }
    );
}

#[test]
fn errors_name_the_line() {
    let e = parse(b"ok 1\ng{a=\"1\" 1\n", false).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = parse(b"g 1\n# TYPE g gauge\n", false).unwrap_err();
    assert!(e.message.contains("TYPE reported after samples"), "{e}");
    let e = parse(b"# HELP g a\n# HELP g b\n", false).unwrap_err();
    assert!(e.message.contains("second HELP"), "{e}");
    let e = parse(b"g abc\n", false).unwrap_err();
    assert!(e.message.contains("expected float"), "{e}");
    let e = parse(b"g{a=\"\xff\"} 1\n", false).unwrap_err();
    assert!(e.message.contains("UTF-8"), "{e}");
    let e = parse(b"\x00\x01binary", false).unwrap_err();
    assert_eq!(e.line, 1);
    let e = parse(b"# TYPE g foo\n", false).unwrap_err();
    assert!(e.message.contains("unknown metric type"), "{e}");
    let e = parse(b"g 1 2 3\n", false).unwrap_err();
    assert!(e.message.contains("spurious"), "{e}");
}

#[test]
fn timestamps_are_kept_for_the_caller_to_refuse() {
    let f = one("g 1 123\n");
    assert_eq!(f[0].metrics[0].timestamp_ms, Some(123));
}

#[test]
fn empty_families_are_dropped() {
    assert!(one("# TYPE g gauge\n# HELP g x\n\n").is_empty());
}

#[test]
fn openmetrics_counters_and_eof() {
    let f = parse(
        b"# TYPE c counter\n# HELP c Things.\nc_total{a=\"b\"} 3 # {trace=\"x\"} 1\nc_created{a=\"b\"} 17\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n",
        true,
    )
    .unwrap();
    assert_eq!(f[0].name, "c_total");
    assert_eq!(f[0].kind, Kind::Counter);
    assert_eq!(f[0].metrics.len(), 1);
    assert_eq!(f[1].name, "i_info");
    assert_eq!(f[1].kind, Kind::Gauge);
    assert!(parse(b"c 1\n", true).is_err());
}

proptest::proptest! {
    /// Any bytes: an answer (families or an error naming a line), never a panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = parse(&body, false);
        let _ = parse(&body, true);
        let _ = crate::push::protobuf::parse(&body);
    }

    /// Lines built from exposition tokens (the parser's interesting paths).
    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "# TYPE ", "# HELP ", "x", "x_sum", "x_count", "x_bucket", " summary", " histogram",
            " counter", "{", "}", "le=", "quantile=", "\"0.5\"", "\"+Inf\"", ",", " 1", " NaN",
            " 12", "\n", "\\", "\"", "# EOF", "_total", " # {a=\"b\"} 1",
        ]),
        0..64,
    )) {
        let body = parts.concat();
        let _ = parse(body.as_bytes(), false);
        let _ = parse(body.as_bytes(), true);
    }
}
