use super::*;
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0)
        .single()
        .expect("time")
}

fn sil(id: &str, start: i64, end: i64, matchers: &[(&str, &str, bool)]) -> Silence {
    Silence {
        id: id.into(),
        matchers: matchers
            .iter()
            .map(|(n, v, re)| SilenceMatcher {
                name: n.to_string(),
                value: v.to_string(),
                is_regex: *re,
                is_equal: true,
            })
            .collect(),
        starts_at: t(start),
        ends_at: t(end),
        updated_at: t(0),
        created_by: "me".into(),
        comment: "c".into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn active_silence_mutes_matching_alerts_only_in_its_window() {
    let mut s = Silences::default();
    let id = s
        .set(sil("", 10, 100, &[("alertname", "Drawdown.*", true)]), t(0))
        .expect("set")
        .pop()
        .expect("written")
        .id;
    assert_eq!(id.len(), 36);
    let l = labels(&[("alertname", "DrawdownHigh")]);
    assert!(s.mutes(&l, t(5)).is_empty(), "pending");
    assert_eq!(s.mutes(&l, t(50)), vec![id.clone()]);
    assert!(
        s.mutes(&labels(&[("alertname", "Other")]), t(50))
            .is_empty()
    );
    assert!(s.mutes(&l, t(101)).is_empty(), "expired");
}

#[test]
fn updates_keep_the_id_only_when_allowed() {
    let mut s = Silences::default();
    let a = s
        .set(sil("", 0, 100, &[("a", "b", false)]), t(0))
        .expect("set")
        .pop()
        .expect("one");
    // Active: extending the end keeps the id.
    let mut upd = a.clone();
    upd.ends_at = t(200);
    let w = s.set(upd, t(10)).expect("update");
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].id, a.id);
    // Changing the matchers expires the old silence and creates a new one.
    let mut changed = w[0].clone();
    changed.matchers[0].value = "c".into();
    let w = s.set(changed, t(20)).expect("replace");
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].id, a.id);
    assert_eq!(w[0].ends_at, t(20));
    assert_ne!(w[1].id, a.id);
    assert_eq!(
        s.get(&a.id).map(|x| x.state(t(21))),
        Some(SilenceState::Expired)
    );
    // Unknown id.
    assert_eq!(
        s.set(sil("nope", 0, 100, &[("a", "b", false)]), t(0)),
        Err(SilenceError::NotFound)
    );
}

#[test]
fn expire_and_validation() {
    let mut s = Silences::default();
    let p = s
        .set(sil("", 100, 200, &[("a", "b", false)]), t(0))
        .expect("set")
        .pop()
        .expect("one");
    let e = s.expire(&p.id, t(10)).expect("expire").pop().expect("one");
    assert_eq!(
        (e.starts_at, e.ends_at),
        (t(10), t(10)),
        "pending: both set to now"
    );
    assert_eq!(
        s.expire(&p.id, t(11)),
        Ok(vec![]),
        "expiring twice is no error"
    );
    assert_eq!(
        s.set(sil("", 0, 10, &[]), t(0)).unwrap_err().to_string(),
        "at least one matcher required"
    );
    assert!(
        s.set(sil("", 0, 10, &[("a", "(", true)]), t(0))
            .unwrap_err()
            .to_string()
            .starts_with("invalid label matcher 0: invalid regular expression")
    );
    assert_eq!(
        s.gc(t(10) + RETENTION + chrono::Duration::seconds(1)),
        vec![p.id]
    );
}

#[test]
fn filter_compares_with_silence_matcher_values() {
    let s = sil(
        "x",
        0,
        10,
        &[("alertname", "A", false), ("env", "prod", false)],
    );
    let f = |q: &str| {
        matches_filter(
            &s,
            &crate::alerting::matcher::parse_matchers(q).expect("filter"),
        )
    };
    assert!(f("alertname=A"));
    assert!(f("env=~pr.*"));
    assert!(!f("env=dev"));
    assert!(f("team!=x"));
    assert!(!f("alertname!=A"));
}
