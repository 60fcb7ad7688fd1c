use super::*;
use crate::data::{Alert, KV, Status};
use chrono::{TimeZone, Utc};

fn data() -> Data {
    let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
    let a = Alert::new(
        Status::Firing,
        KV::from_iter([
            ("alertname", "Drawdown"),
            ("job", "risk"),
            ("severity", "page"),
        ]),
        KV::from_iter([("summary", "Drawdown 12% > 10%")]),
        t,
        None,
        "http://prom/graph?g0.expr=x&g0.tab=1",
    );
    let b = Alert::new(
        Status::Resolved,
        KV::from_iter([
            ("alertname", "Drawdown"),
            ("job", "exec"),
            ("severity", "page"),
        ]),
        KV::new(),
        t,
        Some(t),
        "",
    );
    Data::new(
        "team-x",
        "{}:{alertname=\"Drawdown\"}",
        KV::from_iter([("alertname", "Drawdown")]),
        vec![a, b],
        "http://am:9093",
    )
}

#[test]
fn subject_like_alertmanager() {
    let t = Templates::default();
    let d = data();
    assert_eq!(
        t.execute(r#"{{ template "__subject" . }}"#, &d).unwrap(),
        "[FIRING:1] Drawdown (page)"
    );
    assert_eq!(
        t.execute(r#"{{ template "slack.default.fallback" . }}"#, &d)
            .unwrap(),
        "[FIRING:1] Drawdown (page) | http://am:9093/#/alerts?receiver=team-x"
    );
}

#[test]
fn text_alert_list() {
    let t = Templates::default();
    let d = data();
    assert_eq!(
        t.execute(r#"{{ template "__text_alert_list" .Alerts.Firing }}"#, &d)
            .unwrap(),
        "Labels:\n - alertname = Drawdown\n - job = risk\n - severity = page\nAnnotations:\n - summary = Drawdown 12% > 10%\nSource: http://prom/graph?g0.expr=x&g0.tab=1\n"
    );
}

#[test]
fn language() {
    let t = Templates::default();
    let d = data();
    let cases = [
        (
            "{{ if and .Alerts (eq .Status \"firing\") }}y{{ else }}n{{ end }}",
            "y",
        ),
        (
            "{{ range $i, $a := .Alerts }}{{ $i }}:{{ $a.Labels.job }} {{ end }}",
            "0:risk 1:exec ",
        ),
        (
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            "2",
        ),
        (
            "{{ .CommonLabels.missing }}|{{ len .Alerts.Resolved }}",
            "|1",
        ),
        ("{{ printf \"%s-%d-%.2f\" \"a\" 3 1.5 }}", "a-3-1.50"),
        (
            "{{ title \"hELLO wORLD\" }} {{ toUpper \"x\" }}",
            "Hello World X",
        ),
        ("{{ reReplaceAll \"(a+)\" \"<$1>\" \"baaad\" }}", "b<aaa>d"),
        ("{{ join \",\" (stringSlice \"a\" \"b\") }}", "a,b"),
        (
            "{{ range .CommonLabels }}{{ . }};{{ end }}",
            "Drawdown;page;",
        ),
        ("{{ (index .Alerts 0).Labels.job }}", "risk"),
        (
            "{{ if not (match \"^D\" .CommonLabels.alertname) }}n{{ else if eq 1 2 }}x{{ else }}m{{ end }}",
            "m",
        ),
        ("{{/* c */}}a  {{- \" b\" -}}  c", "a bc"),
        (
            "{{ (index .Alerts 0).StartsAt }}",
            "2024-01-02 03:04:05 +0000 UTC",
        ),
        (
            "{{ (index .Alerts 0).StartsAt.Format \"2006-01-02T15:04:05Z07:00\" }}",
            "2024-01-02T03:04:05Z",
        ),
        (
            "{{ define \"x\" }}X{{ . }}{{ end }}{{ template \"x\" 1 }}",
            "X1",
        ),
        (
            "{{ .CommonLabels.SortedPairs.Names }}",
            "[alertname severity]",
        ),
        (
            "{{ range .Alerts }}{{ if eq .Status \"resolved\" }}{{ break }}{{ end }}{{ .Labels.job }}{{ end }}",
            "risk",
        ),
        (
            "{{ \"a<b\" | html }} {{ \"a b&c\" | urlquery }}",
            "a&lt;b a+b%26c",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(t.execute(src, &d).unwrap(), want, "{src}");
    }
}

#[test]
fn errors_name_the_problem() {
    let t = Templates::default();
    let d = data();
    assert!(matches!(
        t.execute("{{ if }}", &d),
        Err(TemplateError::Parse { .. })
    ));
    assert!(t.execute("{{ .Nope }}", &d).is_err());
    assert!(t.execute("{{ nofunc 1 }}", &d).is_err());
    assert!(t.check("{{ template \"missing\" . }}").is_err());
    assert!(t.check("{{ if nofunc }}x{{ end }}").is_err());
    assert!(t.check("{{ template \"slack.default.title\" . }}").is_ok());
    assert!(t.execute("{{ range .Alerts }}", &d).is_err());
}

#[test]
fn html_escapes_but_not_safe_html() {
    let t = Templates::default();
    let d = data();
    assert_eq!(
        t.execute_html("{{ \"<b>\" }}{{ \"<i>\" | safeHtml }}", &d)
            .unwrap(),
        "&lt;b&gt;<i>"
    );
    let html = t
        .execute_html(r#"{{ template "email.default.html" . }}"#, &d)
        .unwrap();
    assert!(html.contains("[1] Firing"), "{html}");
    assert!(html.contains("Drawdown 12% &gt; 10%"), "{html}");
    assert!(html.contains("g0.expr=x&amp;g0.tab=1"), "{html}");
}

#[test]
fn user_files_override_and_add() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.tmpl"),
        r#"{{ define "slack.default.title" }}custom {{ .Status }}{{ end }}{{ define "mine" }}M{{ end }}"#,
    )
    .unwrap();
    let t = Templates::load(&[dir.path().join("*.tmpl")]).unwrap();
    let d = data();
    assert_eq!(
        t.execute(
            r#"{{ template "slack.default.title" . }}/{{ template "mine" . }}"#,
            &d
        )
        .unwrap(),
        "custom firing/M"
    );
    std::fs::write(dir.path().join("b.tmpl"), "{{ if }}").unwrap();
    let e = Templates::load(&[dir.path().join("*.tmpl")]).unwrap_err();
    assert!(e.to_string().contains("b.tmpl"), "{e}");
}
