//! Tree walks; the same trees are run through the real `amtool config routes test` in
//! `gateway/tests/alert_routing.rs`.

use super::*;
use crate::alerting::config::RouteConfig;

fn tree(yaml: &str) -> Route {
    let cfg: RouteConfig = serde_norway::from_str(yaml).expect("route");
    Route::new(&cfg)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const TREE: &str = r#"
receiver: default
group_by: [alertname]
group_wait: 10s
routes:
  - matchers: ['severity="page"']
    receiver: pager
    continue: true
    group_by: ['...']
  - match: {team: trading}
    receiver: trading
    repeat_interval: 1h
    routes:
      - match_re: {alertname: "Drawdown.*"}
        receiver: risk
        group_interval: 1m
  - matchers: ['team=~"trad.*", env!="dev"']
    receiver: never-reached-for-trading
"#;

#[test]
fn first_match_wins_unless_continue() {
    let r = tree(TREE);
    let recv = |l: &[(&str, &str)]| -> Vec<String> {
        r.matches(&labels(l))
            .iter()
            .map(|r| r.opts.receiver.clone())
            .collect()
    };
    assert_eq!(recv(&[("alertname", "X")]), ["default"]);
    assert_eq!(recv(&[("severity", "page")]), ["pager"]);
    assert_eq!(
        recv(&[
            ("severity", "page"),
            ("team", "trading"),
            ("alertname", "DrawdownHigh")
        ]),
        ["pager", "risk"]
    );
    assert_eq!(recv(&[("team", "trading")]), ["trading"]);
    assert_eq!(recv(&[("team", "tradingx")]), ["never-reached-for-trading"]);
    assert_eq!(recv(&[("team", "tradingx"), ("env", "dev")]), ["default"]);
}

#[test]
fn options_inherit_and_default() {
    let r = tree(TREE);
    assert_eq!(r.opts.group_wait, Duration::from_secs(10));
    assert_eq!(r.opts.group_interval, DEFAULT_GROUP_INTERVAL);
    assert_eq!(r.opts.repeat_interval, DEFAULT_REPEAT_INTERVAL);
    let pager = &r.routes[0];
    assert!(pager.opts.group_by_all);
    assert_eq!(pager.opts.group_wait, Duration::from_secs(10));
    let risk = &r.routes[1].routes[0];
    assert_eq!(risk.opts.repeat_interval, Duration::from_secs(3600));
    assert_eq!(risk.opts.group_interval, Duration::from_secs(60));
    assert_eq!(
        risk.opts.group_by,
        BTreeSet::from(["alertname".to_string()])
    );
    let bare = tree("receiver: x\n");
    assert_eq!(bare.opts.group_wait, DEFAULT_GROUP_WAIT);
    assert!(bare.opts.group_by.is_empty() && !bare.opts.group_by_all);
}

#[test]
fn keys_are_alertmanagers() {
    let r = tree(TREE);
    assert_eq!(r.key, "{}");
    assert_eq!(r.routes[0].key, r#"{}/{severity="page"}"#);
    assert_eq!(r.routes[0].id, r#"{}/{severity="page"}/0"#);
    assert_eq!(
        r.routes[1].routes[0].key,
        r#"{}/{team="trading"}/{alertname=~"^(?:Drawdown.*)$"}"#
    );
    assert_eq!(r.routes[2].key, r#"{}/{env!="dev",team=~"trad.*"}"#);
}

#[test]
fn group_labels() {
    let r = tree(TREE);
    let l = labels(&[("alertname", "A"), ("severity", "page"), ("x", "1")]);
    assert_eq!(r.group_labels(&l), labels(&[("alertname", "A")]));
    assert_eq!(r.routes[0].group_labels(&l), l);
}

#[test]
fn config_errors_are_alertmanagers() {
    let err = |y: &str| {
        serde_norway::from_str::<RouteConfig>(y)
            .unwrap_err()
            .to_string()
    };
    assert!(err("group_by: [a, a]\n").contains(r#"duplicated label "a" in group_by"#));
    assert!(err("group_by: ['...', a]\n").contains("cannot have wildcard group_by"));
    assert!(err("group_by: ['a-b']\n").contains(r#"invalid label name "a-b" in group_by list"#));
    assert!(err("group_interval: 0s\n").contains("group_interval cannot be zero"));
    assert!(err("matchers: ['a=\"b']\n").contains("unescaped double quote"));
    assert!(err("match_re: {a: '('}\n").contains("error parsing regexp"));
    assert!(err("match: {'a b': c}\n").contains(r#"invalid label name "a b""#));
    assert!(err("recevier: x\n").contains("unknown field `recevier`"));
}
