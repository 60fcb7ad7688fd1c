use super::*;
use crate::push::text;

fn key(job: &str) -> GroupingKey {
    vec![("job".into(), job.into())]
}

fn fams(body: &str) -> Vec<Family> {
    text::parse(body.as_bytes(), false).unwrap()
}

const AGG: Behaviour = Behaviour {
    ttl_ms: None,
    aggregate: true,
};

#[test]
fn put_replaces_post_merges() {
    let mut g = Groups::default();
    let k = key("j");
    let a = g
        .plan_push(
            g.get(&k),
            &k,
            fams("a 1\nb 2\n"),
            true,
            Behaviour::default(),
            1,
        )
        .unwrap();
    g.set(&k, Some(a));
    let b = g
        .plan_push(g.get(&k), &k, fams("b 3\n"), false, Behaviour::default(), 2)
        .unwrap();
    assert_eq!(b.families.len(), 2);
    g.set(&k, Some(b));
    let c = g
        .plan_push(g.get(&k), &k, fams("b 4\n"), true, Behaviour::default(), 3)
        .unwrap();
    assert_eq!(c.families.keys().collect::<Vec<_>>(), vec!["b"]);
    let m = &c.families["b"].family.metrics[0];
    assert_eq!(
        m.labels,
        vec![
            ("instance".into(), String::new()),
            ("job".into(), "j".into())
        ]
    );
}

#[test]
fn conflicts_are_refused() {
    let mut g = Groups::default();
    let a = g
        .plan_push(
            g.get(&key("a")),
            &key("a"),
            fams("# TYPE x counter\nx 1\n"),
            true,
            Behaviour::default(),
            1,
        )
        .unwrap();
    g.set(&key("a"), Some(a));
    let e = g
        .plan_push(
            g.get(&key("b")),
            &key("b"),
            fams("# TYPE x gauge\nx 1\n"),
            true,
            Behaviour::default(),
            2,
        )
        .unwrap_err();
    assert!(e.0.contains("is not a COUNTER"), "{e}");
    let e = g
        .plan_push(
            g.get(&key("b")),
            &key("b"),
            fams("x 1 5\n"),
            true,
            Behaviour::default(),
            2,
        )
        .unwrap_err();
    assert!(e.0.contains("timestamps"), "{e}");
    let e = g
        .plan_push(
            g.get(&key("b")),
            &key("b"),
            fams("y 1\ny 2\n"),
            true,
            Behaviour::default(),
            2,
        )
        .unwrap_err();
    assert!(e.0.contains("collected before"), "{e}");
    let e = g
        .plan_push(
            g.get(&key("b")),
            &key("b"),
            fams("# TYPE s summary\ns_sum 1\ns_count 1\n# TYPE s_count gauge\n"),
            true,
            Behaviour::default(),
            2,
        )
        .err();
    assert!(e.is_none(), "an empty family is dropped: {e:?}");
    // A series another group already exposes (the group {job=a} has x{instance="i"} ...).
    let k2: GroupingKey = vec![("instance".into(), "i".into()), ("job".into(), "a".into())];
    let c = g
        .plan_push(
            g.get(&key("a")),
            &key("a"),
            fams("# TYPE x counter\nx{instance=\"i\"} 1\n"),
            true,
            Behaviour::default(),
            3,
        )
        .unwrap();
    g.set(&key("a"), Some(c));
    let e = g
        .plan_push(
            g.get(&k2),
            &k2,
            fams("# TYPE x counter\nx 1\n"),
            true,
            Behaviour::default(),
            4,
        )
        .unwrap_err();
    assert!(e.0.contains("collected before"), "{e}");
}

#[test]
fn aggregation_adds_counters_and_histograms() {
    let mut g = Groups::default();
    let k = key("agg");
    let body = "# TYPE c counter\nc{s=\"x\"} 2\n# TYPE g gauge\ng 5\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n";
    for i in 0..3 {
        let n = g
            .plan_push(g.get(&k), &k, fams(body), true, AGG, i)
            .unwrap();
        g.set(&k, Some(n));
    }
    let n = g
        .plan_push(g.get(&k), &k, fams("# TYPE g gauge\ng 7\n"), true, AGG, 9)
        .unwrap();
    let c = &n.families["c"].family.metrics[0].value;
    assert_eq!(*c, Value::Simple(6.0));
    assert_eq!(n.families["g"].family.metrics[0].value, Value::Simple(7.0));
    assert_eq!(
        n.families["h"].family.metrics[0].value,
        Value::Histogram {
            count: 9,
            sum: 12.0,
            buckets: vec![(1.0, 3), (f64::INFINITY, 9)]
        }
    );
    let e = g
        .plan_push(g.get(&k), &k, fams("# TYPE c gauge\nc 1\n"), true, AGG, 10)
        .unwrap_err();
    assert!(e.0.contains("aggregating"), "{e}");
}

#[test]
fn persisted_groups_round_trip() {
    let g = Groups::default();
    let body = "# HELP c C.\n# TYPE c counter\nc{s=\"x\"} 2\nu NaN\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    let n = g
        .plan_push(
            g.get(&key("p")),
            &key("p"),
            fams(body),
            true,
            Behaviour::default(),
            77,
        )
        .unwrap();
    let back = crate::push::persist::decode(&crate::push::persist::encode(&n)).unwrap();
    // NaN != NaN: compare the encodings.
    assert_eq!(
        crate::push::persist::encode(&back),
        crate::push::persist::encode(&n)
    );
    assert_eq!(back.families.len(), 4);
}

#[test]
fn large_groups_are_stored_compressed() {
    let g = Groups::default();
    let body: String = (0..200)
        .map(|i| format!("m{{strategy=\"momentum\",symbol=\"SYM{i:03}\"}} {i}\n"))
        .collect();
    let n = g
        .plan_push(
            None,
            &key("big"),
            fams(&body),
            true,
            Behaviour::default(),
            5,
        )
        .unwrap();
    let row = crate::push::persist::encode(&n);
    assert_eq!(row[0], 0x80, "compressed");
    let back = crate::push::persist::decode(&row).unwrap();
    assert_eq!(back, n);
    assert!(crate::push::persist::decode(&[0x80, 0xff, 0xff]).is_err());
}
