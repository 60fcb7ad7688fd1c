//! Cases from Alertmanager 0.25's `pkg/labels/parse_test.go` and `matcher_test.go`.

use super::*;

#[track_caller]
fn one(input: &str) -> String {
    let m = parse_matchers(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    Matchers(m).to_string()
}

#[track_caller]
fn err(input: &str) -> String {
    parse_matchers(input).expect_err(input).to_string()
}

#[test]
fn parses_like_alertmanager() {
    assert_eq!(one(r#"{foo="bar"}"#), r#"{foo="bar"}"#);
    assert_eq!(one(r#"{foo=~"bar.*"}"#), r#"{foo=~"bar.*"}"#);
    assert_eq!(one(r#"{foo!="bar"}"#), r#"{foo!="bar"}"#);
    assert_eq!(one(r#"{foo!~"bar.*"}"#), r#"{foo!~"bar.*"}"#);
    assert_eq!(
        one(r#"{foo="bar", baz!="quux"}"#),
        r#"{foo="bar",baz!="quux"}"#
    );
    assert_eq!(one("foo=bar,baz!=quux"), r#"{foo="bar",baz!="quux"}"#);
    assert_eq!(one("{foo=bar}}"), r#"{foo="bar}"}"#);
    assert_eq!(one("{foo=}"), r#"{foo=""}"#);
    assert_eq!(
        one(r#"{foo="bar,quux", job="job1"}"#),
        r#"{foo="bar,quux",job="job1"}"#
    );
    assert_eq!(
        one(r#"{foo = "bar", dings != "bums", }"#),
        r#"{foo="bar",dings!="bums"}"#
    );
    assert_eq!(
        one(r#"contains_quote != "\"" , contains_comma !~ "foo,bar" , "#),
        r#"{contains_quote!="\"",contains_comma!~"foo,bar"}"#
    );
    // `\=` is a spurious escape and stays literal.
    let m = parse_matcher(r#"trickier==\\=\=\""#).unwrap();
    assert_eq!(m.value, r#"=\=\=""#);
    assert_eq!(m.kind, MatchType::Equal);
    // A trailing lone backslash is literal.
    assert_eq!(parse_matcher(r"foo=bar\").unwrap().value, r"bar\");
    assert_eq!(
        parse_matcher(r#"foo="new\nline""#).unwrap().value,
        "new\nline"
    );
    assert_eq!(parse_matcher("job:x=~a|b").unwrap().name, "job:x");
    assert_eq!(parse_matcher(r#"foo="あ""#).unwrap().value, "あ");
}

#[test]
fn refuses_like_alertmanager() {
    assert_eq!(
        err(r#"{foo="bar\"}"#),
        r#"matcher value contains unescaped double quote: "bar\""#
    );
    assert_eq!(
        err(r#"{foo=bar"baz}"#),
        r#"matcher value contains unescaped double quote: bar"baz"#
    );
    assert!(err(r#"{foo=~"invalid[regexp"}"#).starts_with("invalid regular expression"));
    assert_eq!(
        err(r#"{"foo"="bar"}"#),
        r#"bad matcher format: "foo"="bar""#
    );
    assert_eq!(err("{foo}"), "bad matcher format: foo");
    assert_eq!(err("{1foo=bar}"), "bad matcher format: 1foo=bar");
}

#[test]
fn regexes_are_anchored_and_absent_is_empty() {
    let m = parse_matcher("a=~b.*").unwrap();
    assert!(m.matches("bc"));
    assert!(!m.matches("abc"));
    let ne = parse_matcher(r#"a!="""#).unwrap();
    let labels = BTreeMap::from([("b".to_string(), "x".to_string())]);
    assert!(
        !ne.matches_labels(&labels),
        "absent label is the empty value"
    );
    assert!(parse_matcher("a=~|x").unwrap().matches_labels(&labels));
}

#[test]
fn sorting_and_printing() {
    let mut ms = Matchers(parse_matchers(r#"b="2",a=~"x",a="x",c!="a\\b""#).unwrap());
    ms.sort();
    assert_eq!(ms.to_string(), r#"{a="x",a=~"x",b="2",c!="a\\b"}"#);
}
