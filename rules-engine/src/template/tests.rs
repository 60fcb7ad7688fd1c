//! Behaviour of the engine on its own; Prometheus's functions are tested in
//! `rules::template`, and the whole against the real promtool in `tests/rules/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

fn run(text: &str, data: Value) -> Result<String, String> {
    let t = Template::from_text("t", text, &NoFuncs).map_err(|e| e.0)?;
    t.execute("t", &data, &NoFuncs).map_err(|e| e.0)
}

fn ok(text: &str, data: Value) -> String {
    run(text, data).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn labels() -> Value {
    let mut m = BTreeMap::new();
    m.insert(
        "Labels".to_string(),
        Value::str_map([("job", "api"), ("instance", "h:1"), ("env", "prod")]),
    );
    m.insert("Value".to_string(), Value::Float(0.25));
    Value::Map(Arc::new(m), Elem::Any)
}

#[test]
fn actions_text_and_trimming() {
    assert_eq!(ok("a {{- \" b \" -}} c", Value::Nil), "a b c");
    assert_eq!(ok("x {{/* comment */}} y", Value::Nil), "x  y");
    assert_eq!(ok("x {{- /* comment */ -}} y", Value::Nil), "xy");
    assert_eq!(
        ok("{{ .Labels.job }}/{{ .Labels.missing }}/", labels()),
        "api//"
    );
    assert_eq!(ok("{{ .Value }}", labels()), "0.25");
}

#[test]
fn range_over_maps_is_sorted_and_binds_variables() {
    assert_eq!(
        ok(
            "{{ range $k, $v := .Labels }}{{ $k }}={{ $v }};{{ end }}",
            labels()
        ),
        "env=prod;instance=h:1;job=api;"
    );
    assert_eq!(
        ok("{{ range .Labels }}{{ . }},{{ end }}", labels()),
        "prod,h:1,api,"
    );
    assert_eq!(
        ok("{{ range .Nope }}x{{ else }}empty{{ end }}", labels()),
        "empty"
    );
    assert_eq!(
        ok(
            "{{ range $i, $v := .Labels }}{{ if eq $i \"instance\" }}{{ break }}{{ end }}{{ $v }}{{ end }}",
            labels()
        ),
        "prod"
    );
}

#[test]
fn if_else_with_and_variables() {
    let t = "{{ if gt .Value 0.5 }}high{{ else if gt .Value 0.1 }}mid{{ else }}low{{ end }}";
    assert_eq!(ok(t, labels()), "mid");
    assert_eq!(
        ok("{{ with .Labels.job }}job={{ . }}{{ end }}", labels()),
        "job=api"
    );
    assert_eq!(
        ok("{{ with .Labels.nope }}x{{ else }}none{{ end }}", labels()),
        "none"
    );
    assert_eq!(
        ok(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            Value::Nil
        ),
        "2"
    );
    assert_eq!(
        ok(
            "{{ and 1 0 }} {{ or 0 \"\" \"z\" }} {{ not 0 }}",
            Value::Nil
        ),
        "0 z true"
    );
}

#[test]
fn go_comparison_rules() {
    // An int constant against a float64 value is an error in Go.
    let e = run("{{ if gt .Value 1 }}x{{ end }}", labels()).unwrap_err();
    assert_eq!(
        e,
        "template: t:1:6: executing \"t\" at <gt .Value 1>: error calling gt: incompatible types for comparison"
    );
    assert_eq!(ok("{{ eq \"a\" \"b\" \"a\" }}", Value::Nil), "true");
}

#[test]
fn define_template_and_block() {
    let t = "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .Labels.job }}{{ block \"y\" 3 }}<{{ . }}>{{ end }}";
    assert_eq!(ok(t, labels()), "[api]<3>");
}

#[test]
fn printf_and_print() {
    assert_eq!(ok("{{ printf \"%.1f%%\" .Value }}", labels()), "0.2%");
    assert_eq!(ok("{{ print 1 2 \"x\" }}", Value::Nil), "1 2x");
    assert_eq!(ok("{{ .Value | printf \"%g\" }}", labels()), "0.25");
    assert_eq!(
        ok("{{ len .Labels }} {{ index .Labels \"job\" }}", labels()),
        "3 api"
    );
}

#[test]
fn execution_errors_name_the_place() {
    let e = run("a\n {{ .Value.x }}", labels()).unwrap_err();
    assert_eq!(
        e,
        "template: t:2:10: executing \"t\" at <.Value.x>: can't evaluate field x in type float64"
    );
    let e = run("{{ range .Value }}{{ end }}", labels()).unwrap_err();
    assert!(e.contains("range can't iterate over 0.25"), "{e}");
}

/// A map-like type with methods, as Alertmanager's `KV` is.
#[derive(Debug)]
struct Kv(BTreeMap<String, String>);

impl Object for Kv {
    fn type_name(&self) -> &'static str {
        "template.KV"
    }
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Names" => Some(Value::List(
                Arc::new(self.0.keys().map(|k| Value::from(k.as_str())).collect()),
                "[]string",
            )),
            _ => self.0.get(name).map(|v| Value::from(v.as_str())),
        }
    }
    fn method(&self, name: &str, args: Vec<Value>) -> Option<Result<Value, String>> {
        (name == "Remove").then(|| {
            let drop: Vec<String> = match args.first() {
                Some(Value::List(l, _)) => l
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => return Err("Remove wants a list of names".into()),
            };
            let mut m = self.0.clone();
            m.retain(|k, _| !drop.contains(k));
            Ok(Value::Object(Arc::new(Kv(m))))
        })
    }
    fn items(&self) -> Option<Vec<(Value, Value)>> {
        Some(
            self.0
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<Value> {
        self.0.get(key).map(|v| Value::from(v.as_str()))
    }
    fn go_v(&self) -> String {
        Value::str_map(self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))).go_v()
    }
}

#[test]
fn objects_have_fields_methods_and_ranges() {
    let kv = |pairs: &[(&str, &str)]| {
        Value::Object(Arc::new(Kv(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())))
    };
    let mut m = BTreeMap::new();
    m.insert(
        "Common".to_string(),
        kv(&[("a", "1"), ("b", "2"), ("c", "3")]),
    );
    m.insert("Group".to_string(), kv(&[("b", "2")]));
    let data = Value::Map(Arc::new(m), Elem::Any);
    assert_eq!(
        ok(
            "{{ range $k, $v := .Common.Remove .Group.Names }}{{ $k }}={{ $v }} {{ end }}",
            data.clone()
        ),
        "a=1 c=3 "
    );
    assert_eq!(
        ok(
            "{{ len .Common }} {{ index .Common \"b\" }} {{ .Common.a }} {{ .Common }}",
            data.clone()
        ),
        "3 2 1 map[a:1 b:2 c:3]"
    );
    let e = run("{{ .Common.Nope 1 }}", data).unwrap_err();
    assert!(
        e.contains("can't evaluate field Nope in type template.KV"),
        "{e}"
    );
}

#[test]
fn html_mode_escapes_printed_values_but_not_safe_html() {
    let t = Template::from_text("t", "{{ define \"x\" }}{{ . }}{{ end }}<b>{{ .Labels.job }}{{ \"<i>\" }}{{ template \"x\" \"a&b\" }}</b>", &NoFuncs)
        .unwrap();
    let mut m = BTreeMap::new();
    m.insert("Labels".to_string(), Value::str_map([("job", "<api>")]));
    let data = Value::Map(Arc::new(m), Elem::Any);
    assert_eq!(
        t.execute_html("t", &data, &NoFuncs).unwrap(),
        "<b>&lt;api&gt;&lt;i&gt;a&amp;b</b>"
    );
    assert_eq!(
        t.execute("t", &data, &NoFuncs).unwrap(),
        "<b><api><i>a&b</b>"
    );
    let mut m = BTreeMap::new();
    m.insert("H".to_string(), Value::Html("<i>ok</i>".into()));
    let t = Template::from_text("h", "{{ .H }}", &NoFuncs).unwrap();
    assert_eq!(
        t.execute_html("h", &Value::Map(Arc::new(m), Elem::Any), &NoFuncs)
            .unwrap(),
        "<i>ok</i>"
    );
}
