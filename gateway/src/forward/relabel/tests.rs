//! Cases re-expressed from Prometheus 2.42's `model/relabel/relabel_test.go` (its inputs,
//! configurations and expected outputs), plus the YAML validation of `config.go`.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> LabelPairs {
    let mut v: LabelPairs = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

fn cfgs(yaml: &str) -> Vec<RelabelConfig> {
    serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

#[track_caller]
fn check(input: &[(&str, &str)], yaml: &str, want: Option<&[(&str, &str)]>) {
    let got = process(labels(input), &cfgs(yaml));
    assert_eq!(got, want.map(labels), "{yaml}");
}

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

#[test]
fn replace_with_braced_group() {
    check(
        ABC,
        "- {source_labels: [a], regex: f(.*), target_label: d, separator: ';', replacement: 'ch${1}-ch${1}', action: replace}",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
    );
}

#[test]
fn replace_chain_sees_previous_step() {
    check(
        ABC,
        "- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}\n\
         - {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}",
        Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
    );
}

#[test]
fn drop_stops_processing() {
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: '.*o.*', action: drop}\n\
         - {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch$1-ch$1'}",
        None,
    );
    check(
        &[("a", "foo"), ("b", "bar")],
        "- {source_labels: [a], regex: '.*o.*', action: drop}",
        None,
    );
}

#[test]
fn regex_is_anchored() {
    check(
        &[("a", "abc")],
        "- {source_labels: [a], regex: '.*(b).*', target_label: d, replacement: '$1'}",
        Some(&[("a", "abc"), ("d", "b")]),
    );
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: no-match, action: drop}",
        Some(&[("a", "foo")]),
    );
    // `f|o` anchored is `^(?:f|o)$`: "foo" matches neither alternative whole.
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: 'f|o', action: drop}",
        Some(&[("a", "foo")]),
    );
}

#[test]
fn keep() {
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: no-match, action: keep}",
        None,
    );
    check(
        &[("a", "foo")],
        "- {source_labels: [a], regex: 'f.*', action: keep}",
        Some(&[("a", "foo")]),
    );
}

#[test]
fn no_match_no_replacement() {
    check(
        &[("a", "boo")],
        "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
        Some(&[("a", "boo")]),
    );
}

#[test]
fn hashmod_matches_prometheus_values() {
    check(
        ABC,
        "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
        Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
    );
    check(
        &[("a", "foo\nbar")],
        "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
        Some(&[("a", "foo\nbar"), ("b", "734")]),
    );
}

#[test]
fn labelmap() {
    check(
        &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
        "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
        Some(&[
            ("a", "foo"),
            ("b1", "bar"),
            ("b2", "baz"),
            ("bar_b1", "bar"),
            ("bar_b2", "baz"),
        ]),
    );
    check(
        &[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
        ],
        "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
        Some(&[
            ("a", "foo"),
            ("__meta_my_bar", "aaa"),
            ("__meta_my_baz", "bbb"),
            ("__meta_other", "ccc"),
            ("my_bar", "aaa"),
            ("my_baz", "bbb"),
        ]),
    );
}

#[test]
fn target_label_from_groups() {
    let input = &[("a", "some-name-value")];
    check(
        input,
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
        Some(&[("a", "some-name-value"), ("name", "value")]),
    );
    // An empty replacement deletes (here: nothing to delete).
    check(
        input,
        "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
        Some(input),
    );
    // Targets that expand to invalid names are not set. (Prometheus's test builds these
    // configurations in code: "0${3}" and "-${3}" would not pass YAML validation.)
    let direct = |target: &str| RelabelConfig {
        source_labels: vec!["a".into()],
        separator: ";".into(),
        regex: RelabelRegex::new("some-([^-]+)-([^,]+)").unwrap(),
        modulus: 0,
        target_label: target.into(),
        replacement: "${1}".into(),
        action: Action::Replace,
    };
    let steps = [direct("${3}"), direct("0${3}"), direct("-${3}")];
    assert_eq!(process(labels(input), &steps), Some(labels(input)));
}

#[test]
fn real_life_service_discovery_tags() {
    check(
        &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
        "- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', replacement: '${1}', target_label: __metrics_path__}\n\
         - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', replacement: '${1}', target_label: job}\n\
         - {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}",
        Some(&[
            ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
            ("__metrics_path__", "/secret"),
            ("job", "some-job"),
            ("foo", "bar"),
        ]),
    );
}

#[test]
fn labelkeep_and_labeldrop() {
    let input = &[("a", "foo"), ("b1", "bar"), ("b2", "baz")];
    check(
        input,
        "- {regex: '(b.*)', action: labelkeep}",
        Some(&[("b1", "bar"), ("b2", "baz")]),
    );
    check(
        input,
        "- {regex: '(b.*)', action: labeldrop}",
        Some(&[("a", "foo")]),
    );
    // Nothing left: the series is dropped.
    check(input, "- {regex: '.*', action: labeldrop}", None);
}

#[test]
fn upper_and_lower_case() {
    check(
        &[("foo", "bAr123Foo")],
        "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n\
         - {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
        Some(&[
            ("foo", "bAr123Foo"),
            ("foo_lowercase", "bar123foo"),
            ("foo_uppercase", "BAR123FOO"),
        ]),
    );
    // Go's simple case mapping: ß has no single upper-case character.
    assert_eq!(go_upper("straße"), "STRAßE");
    assert_eq!(go_lower("ΣΑΣ"), "σασ");
}

#[test]
fn keepequal_and_dropequal() {
    let input = &[
        ("__tmp_port", "1234"),
        ("__port1", "1234"),
        ("__port2", "5678"),
    ];
    check(
        input,
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
        Some(input),
    );
    check(
        input,
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
        None,
    );
    check(
        input,
        "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
        Some(input),
    );
    check(
        input,
        "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
        None,
    );
}

#[test]
fn defaults_and_case_insensitive_action() {
    // Defaults: replace, `(.*)`, `$1`, `;`: copies the joined source values.
    check(
        &[("a", "x"), ("b", "y")],
        "- {source_labels: [a, b], target_label: c}\n- {source_labels: [a], target_label: d, action: RePlAcE}",
        Some(&[("a", "x"), ("b", "y"), ("c", "x;y"), ("d", "x")]),
    );
    // A static label; an empty `regex:` only matches the empty string.
    check(
        &[("a", "x")],
        "- {target_label: env, replacement: prod}\n- {source_labels: [a], regex: , target_label: e, replacement: z}",
        Some(&[("a", "x"), ("env", "prod")]),
    );
    // Numbers in YAML are text, as yaml.v2 reads them.
    check(
        &[("a", "0")],
        "- {source_labels: [a], regex: 0, action: keep}",
        Some(&[("a", "0")]),
    );
}

#[test]
fn empty_value_deletes() {
    check(
        &[("a", "x"), ("b", "y")],
        "- {source_labels: [missing], target_label: b}",
        Some(&[("a", "x")]),
    );
}

#[test]
fn go_regex_classes_are_ascii() {
    // `\d` in Go's RE2 is [0-9]: an Arabic-Indic digit does not match it.
    check(
        &[("a", "\u{663}")],
        r"- {source_labels: [a], regex: '\d', action: drop}",
        Some(&[("a", "\u{663}")]),
    );
    check(
        &[("a", "é1")],
        r"- {source_labels: [a], regex: '[\w]\d', action: keep}",
        None,
    );
    check(
        &[("a", "x_1")],
        r"- {source_labels: [a], regex: '\w+\b', action: keep}",
        Some(&[("a", "x_1")]),
    );
    assert_eq!(go_classes(r"[^\d\]]x\\d"), r"[^0-9\]]x\\d");
    assert_eq!(
        go_classes(r"[[:alpha:]\s]\S"),
        r"[[:alpha:]\t\n\f\r ][^\t\n\f\r ]"
    );
}

#[test]
fn template_expansion_follows_go() {
    let re = Regex::new("^(?:(?P<x>a)(b)?)$").unwrap();
    let caps = re.captures("a").unwrap();
    assert_eq!(
        expand(&re, &caps, "$1-$x-${x}y-$xy-$2-$$-$-${x"),
        "a-a-ay---$-$-${x"
    );
    assert_eq!(expand(&re, &caps, "$01|$0|${1}0"), "|a|a0");
}

#[track_caller]
fn invalid(yaml: &str, msg: &str) {
    let e = serde_norway::from_str::<Vec<RelabelConfig>>(yaml)
        .err()
        .unwrap_or_else(|| panic!("accepted: {yaml}"))
        .to_string();
    assert!(e.contains(msg), "{yaml}: {e}");
}

#[test]
fn validation_as_prometheus() {
    invalid(
        "- {action: hashmod, target_label: x}",
        "requires non-zero modulus",
    );
    invalid(
        "- {source_labels: [a]}",
        "replace action requires 'target_label'",
    );
    invalid(
        "- {action: fold, target_label: x}",
        "unknown relabel action \"fold\"",
    );
    invalid(
        "- {action: '', target_label: x}",
        "relabel action cannot be empty",
    );
    invalid(
        "- {target_label: '-x'}",
        "\"-x\" is invalid 'target_label' for replace",
    );
    invalid(
        "- {action: lowercase, target_label: x, replacement: y}",
        "'replacement' can not be set for lowercase",
    );
    invalid(
        "- {action: labelmap, replacement: '-$1'}",
        "is invalid 'replacement' for labelmap",
    );
    invalid(
        "- {action: hashmod, target_label: '${1}', modulus: 2}",
        "invalid 'target_label' for hashmod",
    );
    invalid(
        "- {action: keepequal, target_label: x, regex: '(.*)'}",
        "keepequal action requires only 'source_labels' and `target_label`",
    );
    invalid(
        "- {action: labeldrop, regex: x, source_labels: [a]}",
        "labeldrop action requires only 'regex'",
    );
    invalid("- {regex: '(', target_label: x}", "invalid regex");
    invalid("- {target_label: x, sepparator: y}", "unknown field");
}

#[test]
fn target_label_validity() {
    for (s, ok) in [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ] {
        assert_eq!(valid_target(s), ok, "{s}");
    }
}

#[test]
fn config_errors_name_file_and_line() {
    let text = "remote_write:\n  - url: http://x:1/api/v1/write\n    write_relabel_configs:\n      \
                - {target_label: a}\n      - source_labels: [a]\n        action: hashmod\n        \
                target_label: b\n";
    let e = crate::config::Config::parse(text, "promgate.yml", |_| None)
        .expect_err("refused")
        .to_string();
    assert!(e.starts_with("promgate.yml:"), "{e}");
    assert!(
        e.contains("write_relabel_configs: [1]: relabel configuration for hashmod"),
        "the second entry: {e}"
    );
    assert!(e.contains("hashmod requires non-zero modulus"), "{e}");
}
