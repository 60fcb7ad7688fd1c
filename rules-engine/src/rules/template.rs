//! Alert label and annotation templates as Prometheus 2.42 expands them
//! (`template/template.go`, `rules/alerting.go`): Go templates (our [`crate::template`] engine)
//! over `.Labels`, `.ExternalLabels`, `.ExternalURL` and `.Value`, with the `$labels`,
//! `$externalLabels`, `$externalURL` and `$value` variables prepended as Prometheus prepends
//! them (so error positions match), `missingkey=zero`, and Prometheus's function map: `query`,
//! `first`, `label`, `value`, `strvalue`, `sortByLabel`, `args`, `reReplaceAll`, `safeHtml`,
//! `match`, `title`, `toUpper`, `toLower`, `graphLink`, `tableLink`, `stripPort`,
//! `stripDomain`, the `humanize*` family, `toTime`, `pathPrefix`, `externalURL` and
//! `parseDuration`. Like Prometheus's text expansion it has no `tmpl` (that exists only in
//! console templates): a rule using it fails to load here as it does in Prometheus, so rule
//! files stay portable between the two.
//!
//! Templates are parsed once when the rule is loaded, not at every expansion as Prometheus
//! does; a text without `{{` is used as is.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use super::RawLabels;
use crate::model::Labels;
use crate::template::gofmt::sprintf;
use crate::template::{Elem, Funcs, Param, Params, Template, Value, query_escape};

/// Prometheus prepends these to every alert template.
const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Runs an instant query at the evaluation time for the `query` function.
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<Vec<(Labels, f64)>, String>;

/// What a template can refer to.
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
    /// `None` where no engine is at hand: `query` then fails with an error.
    pub query: Option<QueryFn<'a>>,
    /// What the `externalURL` and `pathPrefix` functions see: the server's external URL.
    /// promtool has none (its functions then fail with Go's nil-pointer error) while
    /// `$externalURL` is the test's `external_url`; `None` reproduces that.
    pub server_url: Option<&'a str>,
}

enum Compiled {
    /// No action: the text is the result.
    Plain(String),
    Parsed(Template),
    /// Cannot happen for a rule that passed loading; kept so expansion reports it as
    /// Prometheus would.
    Invalid(String),
}

/// Names and expanded values.
pub type Expanded<'a> = Vec<(&'a str, String)>;

/// An alerting rule's label and annotation templates, parsed.
pub struct AlertTemplates {
    name: String,
    labels: Vec<(String, Compiled)>,
    annotations: Vec<(String, Compiled)>,
}

impl std::fmt::Debug for AlertTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertTemplates")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn compile(name: &str, text: &str) -> Compiled {
    if !text.contains("{{") {
        return Compiled::Plain(text.to_string());
    }
    let funcs = PromFuncs::for_parsing();
    match Template::from_text(name, &format!("{DEFS}{text}"), &funcs) {
        Ok(t) => Compiled::Parsed(t),
        Err(e) => Compiled::Invalid(format!("error parsing template {name}: {e}")),
    }
}

/// Checks that `text` parses as an alert template of rule `alert`; the error is Go's.
pub fn check(alert: &str, text: &str) -> Result<(), String> {
    if !text.contains("{{") {
        return Ok(());
    }
    let funcs = PromFuncs::for_parsing();
    Template::from_text(
        &format!("__alert_{alert}"),
        &format!("{DEFS}{text}"),
        &funcs,
    )
    .map(|_| ())
    .map_err(|e| e.0)
}

impl AlertTemplates {
    pub fn new(alert: &str, labels: &Labels, annotations: &RawLabels) -> Self {
        let name = format!("__alert_{alert}");
        AlertTemplates {
            labels: labels
                .iter()
                .map(|l| (l.name.clone(), compile(&name, &l.value)))
                .collect(),
            annotations: annotations
                .iter()
                .map(|l| (l.name.clone(), compile(&name, &l.value)))
                .collect(),
            name,
        }
    }

    /// The rule's labels and annotations expanded for one alert.
    pub fn expand(&self, data: &TemplateData<'_>) -> (Expanded<'_>, Expanded<'_>) {
        let needs_data = self
            .labels
            .iter()
            .chain(&self.annotations)
            .any(|(_, c)| matches!(c, Compiled::Parsed(_)));
        let dot = if needs_data {
            alert_data(data)
        } else {
            Value::Nil
        };
        let funcs = PromFuncs {
            server_url: data.server_url,
            query: data.query,
        };
        let run = |c: &Compiled| match c {
            Compiled::Plain(s) => s.clone(),
            Compiled::Parsed(t) => match t.execute(&self.name, &dot, &funcs) {
                Ok(s) => s,
                Err(e) => format!(
                    "<error expanding template: error executing template {}: {e}>",
                    self.name
                ),
            },
            Compiled::Invalid(e) => format!("<error expanding template: {e}>"),
        };
        (
            self.labels
                .iter()
                .map(|(n, c)| (n.as_str(), run(c)))
                .collect(),
            self.annotations
                .iter()
                .map(|(n, c)| (n.as_str(), run(c)))
                .collect(),
        )
    }
}

fn str_map(l: &Labels) -> Value {
    Value::str_map(l.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

/// Prometheus's `AlertTemplateData`: an anonymous struct.
fn alert_data(d: &TemplateData<'_>) -> Value {
    Value::structure(
        "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }",
        false,
        vec![
            ("Labels", str_map(d.labels)),
            ("ExternalLabels", str_map(d.external_labels)),
            ("ExternalURL", Value::from(d.external_url)),
            ("Value", Value::Float(d.value)),
        ],
    )
}

const SAMPLE: &str = "*template.sample";
const QUERY_RESULT: &str = "template.queryResult";

fn sample(labels: &Labels, v: f64) -> Value {
    Value::structure(
        SAMPLE,
        true,
        vec![("Labels", str_map(labels)), ("Value", Value::Float(v))],
    )
}

/// Prometheus's template functions, bound to one expansion.
struct PromFuncs<'a> {
    server_url: Option<&'a str>,
    query: Option<QueryFn<'a>>,
}

impl PromFuncs<'static> {
    fn for_parsing() -> Self {
        PromFuncs {
            server_url: None,
            query: None,
        }
    }
}

const NIL_POINTER: &str = "runtime error: invalid memory address or nil pointer dereference";

const STR1: Params = Params::fixed(&[Param::Str]);
const ANY1: Params = Params::fixed(&[Param::Any]);

impl Funcs for PromFuncs<'_> {
    fn params(&self, name: &str) -> Option<Params> {
        Some(match name {
            "query" | "safeHtml" | "title" | "toUpper" | "toLower" | "graphLink" | "tableLink"
            | "stripPort" | "stripDomain" | "parseDuration" => STR1,
            "first" | "value" | "strvalue" | "humanize" | "humanize1024" | "humanizeDuration"
            | "humanizePercentage" | "humanizeTimestamp" | "toTime" => ANY1,
            "label" | "sortByLabel" => Params::fixed(&[Param::Str, Param::Any]),
            "args" => Params::variadic(&[], Param::Any),
            "reReplaceAll" => Params::fixed(&[Param::Str, Param::Str, Param::Str]),
            "match" => Params::fixed(&[Param::Str, Param::Str]),
            "pathPrefix" | "externalURL" => Params::fixed(&[]),
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let s = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
        Ok(match name {
            "query" => {
                let q = self.query.ok_or("no query engine available")?;
                let rows = q(s(0))?;
                Value::List(
                    Arc::new(rows.iter().map(|(l, v)| sample(l, *v)).collect()),
                    QUERY_RESULT,
                )
            }
            "first" => match &args[0] {
                Value::List(l, QUERY_RESULT) => l
                    .first()
                    .cloned()
                    .ok_or("first() called on vector with no elements")?,
                other => return Err(wrong_type(QUERY_RESULT, other)),
            },
            "label" => Value::from(
                sample_field(&args[1], "Labels")
                    .and_then(|l| match l {
                        Value::Map(m, _) => Some(
                            m.get(s(0))
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        ),
                        _ => None,
                    })
                    .ok_or_else(|| wrong_type(SAMPLE, &args[1]))?,
            ),
            "value" => {
                sample_field(&args[0], "Value").ok_or_else(|| wrong_type(SAMPLE, &args[0]))?
            }
            "strvalue" => Value::from(
                sample_field(&args[0], "Labels")
                    .and_then(|l| match l {
                        Value::Map(m, _) => Some(
                            m.get("__value__")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        ),
                        _ => None,
                    })
                    .ok_or_else(|| wrong_type(SAMPLE, &args[0]))?,
            ),
            "sortByLabel" => match &args[1] {
                Value::List(l, QUERY_RESULT) => {
                    let mut v = l.as_ref().clone();
                    let key = |x: &Value| {
                        sample_field(x, "Labels")
                            .and_then(|m| match m {
                                Value::Map(m, _) => {
                                    m.get(s(0)).and_then(Value::as_str).map(str::to_string)
                                }
                                _ => None,
                            })
                            .unwrap_or_default()
                    };
                    v.sort_by_key(key);
                    Value::List(Arc::new(v), QUERY_RESULT)
                }
                other => return Err(wrong_type(QUERY_RESULT, other)),
            },
            "args" => Value::Map(
                Arc::new(
                    args.iter()
                        .enumerate()
                        .map(|(i, a)| (format!("arg{i}"), a.clone()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                Elem::Any,
            ),
            "reReplaceAll" => {
                let re =
                    Regex::new(s(0)).map_err(|e| format!("regexp: Compile({:?}): {e}", s(0)))?;
                Value::from(re.replace_all(s(2), s(1)).into_owned())
            }
            "match" => {
                let re = Regex::new(s(0)).map_err(|e| format!("error parsing regexp: {e}"))?;
                Value::Bool(re.is_match(s(1)))
            }
            "safeHtml" => Value::Html(s(0).into()),
            "title" => Value::from(go_title(s(0))),
            "toUpper" => Value::from(s(0).to_uppercase()),
            "toLower" => Value::from(s(0).to_lowercase()),
            "graphLink" => Value::from(format!("/graph?g0.expr={}&g0.tab=0", query_escape(s(0)))),
            "tableLink" => Value::from(format!("/graph?g0.expr={}&g0.tab=1", query_escape(s(0)))),
            "stripPort" => Value::from(strip_port(s(0)).0),
            "stripDomain" => Value::from(strip_domain(s(0))),
            "humanize" => Value::from(humanize(to_float(&args[0])?)),
            "humanize1024" => Value::from(humanize1024(to_float(&args[0])?)),
            "humanizeDuration" => Value::from(humanize_duration(to_float(&args[0])?)),
            "humanizePercentage" => Value::from(sprintf(
                "%.4g%%",
                &[Value::Float(to_float(&args[0])? * 100.0)],
            )),
            "humanizeTimestamp" => {
                let v = to_float(&args[0])?;
                if v.is_nan() || v.is_infinite() {
                    Value::from(g4(v))
                } else {
                    Value::from(crate::template::go_time_string(float_to_nanos(v)?))
                }
            }
            "toTime" => {
                let v = to_float(&args[0])?;
                if v.is_nan() || v.is_infinite() {
                    return Err("value is NaN or Inf".into());
                }
                Value::Time(float_to_nanos(v)?)
            }
            "pathPrefix" => Value::from(url_path(self.server_url.ok_or(NIL_POINTER)?)),
            "externalURL" => Value::from(self.server_url.ok_or(NIL_POINTER)?),
            "parseDuration" => {
                let ms = crate::duration::parse_model_duration(s(0))?;
                Value::Float(ms as f64 / 1000.0)
            }
            _ => return Err(format!("{name:?} is not a defined function")),
        })
    }
}

fn wrong_type(want: &str, got: &Value) -> String {
    format!(
        "wrong type for value; expected {want}; got {}",
        got.type_name()
    )
}

fn sample_field(v: &Value, field: &str) -> Option<Value> {
    match v {
        Value::Struct(s) if s.type_name == SAMPLE => s
            .fields
            .iter()
            .find(|(n, _)| *n == field)
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// Prometheus's `convertToFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_go_float(s)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms and Go's spellings of infinity.
fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan")
        || !body.contains(char::is_alphabetic)
        || body.contains('e')
    {
        return s.parse::<f64>().ok();
    }
    None
}

fn float_to_nanos(v: f64) -> Result<i64, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            crate::promql::functions::go_fmt_v(v)
        ));
    }
    Ok(ns as i64)
}

/// Go's `%.4g`.
fn g4(v: f64) -> String {
    sprintf("%.4g", &[Value::Float(v)])
}

fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let (mut x, mut prefix) = (v, "");
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if x.abs() < 1000.0 {
                break;
            }
            prefix = p;
            x /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if x.abs() >= 1.0 {
                break;
            }
            prefix = p;
            x *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(x))
}

fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let (mut x, mut prefix) = (v, "");
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if x.abs() < 1024.0 {
            break;
        }
        prefix = p;
        x /= 1024.0;
    }
    format!("{}{prefix}", g4(x))
}

fn humanize_duration(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let (sign, v) = if v < 0.0 { ("-", -v) } else { ("", v) };
        let d = crate::promql::functions::time::go_f64_to_i64(v);
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let (mut x, mut prefix) = (v, "");
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if x.abs() >= 1.0 {
            break;
        }
        prefix = p;
        x *= 1000.0;
    }
    format!("{}{prefix}s", g4(x))
}

/// Go's deprecated `strings.Title`: the first letter of each word upper-cased, where words are
/// separated by anything but letters, digits and `_`.
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_') && (c.is_ascii() || c.is_whitespace());
    }
    out
}

/// Go's `net.SplitHostPort`; `None` for the port when `s` is not `host:port`.
fn strip_port(s: &str) -> (String, Option<String>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:")
            && !host.contains(']')
        {
            return (host.to_string(), Some(port.to_string()));
        }
        return (s.to_string(), None);
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port.to_string())),
        _ => (s.to_string(), None),
    }
}

fn strip_domain(s: &str) -> String {
    let (host, port) = strip_port(s);
    if host.parse::<std::net::IpAddr>().is_ok() {
        return s.to_string();
    }
    let host = host.split('.').next().unwrap_or_default();
    match port {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The path of a URL (`http://host:9090/prom` → `/prom`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    match after_scheme.find('/') {
        Some(i) => {
            let p = &after_scheme[i..];
            p.split(['?', '#']).next().unwrap_or_default().to_string()
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_one(text: &str, value: f64) -> String {
        let labels =
            Labels::from_pairs([("__name__", "up"), ("instance", "h:1"), ("job", "j")]).unwrap();
        let ext = Labels::from_pairs([("cluster", "c1")]).unwrap();
        let query = |q: &str| -> Result<Vec<(Labels, f64)>, String> {
            match q {
                "up" => Ok(vec![
                    (Labels::from_pairs([("instance", "b")]).unwrap(), 2.0),
                    (Labels::from_pairs([("instance", "a")]).unwrap(), 1.0),
                ]),
                _ => Ok(vec![]),
            }
        };
        let data = TemplateData {
            labels: &labels,
            external_labels: &ext,
            external_url: "http://prom.example:9090/prefix",
            value,
            query: Some(&query),
            server_url: Some("http://prom.example:9090/prefix"),
        };
        let t = AlertTemplates::new("A", &Labels::empty(), &RawLabels::from_pairs([("x", text)]));
        let (_, ann) = t.expand(&data);
        ann.into_iter().next().map(|(_, v)| v).unwrap_or_default()
    }

    #[test]
    fn prometheus_functions() {
        assert_eq!(
            expand_one(
                "{{ $labels.instance }} {{ $value }} {{ $externalLabels.cluster }}",
                1.5
            ),
            "h:1 1.5 c1"
        );
        assert_eq!(expand_one("{{ humanize 1234567.0 }}", 0.0), "1.235M");
        assert_eq!(
            expand_one("{{ $value | humanizePercentage }}", 0.1234),
            "12.34%"
        );
        assert_eq!(expand_one("{{ humanizeDuration 3725 }}", 0.0), "1h 2m 5s");
        assert_eq!(expand_one("{{ humanize1024 1048576 }}", 0.0), "1Mi");
        assert_eq!(
            expand_one("{{ humanizeTimestamp 1435065584.128 }}", 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            expand_one(
                "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}",
                0.0
            ),
            "a=1 b=2 "
        );
        assert_eq!(
            expand_one(
                "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
                0.0
            ),
            "2"
        );
        assert_eq!(
            expand_one("{{ query \"up\" | first | label \"instance\" }}", 0.0),
            "b"
        );
        assert_eq!(
            expand_one("{{ query \"nothing\" | first }}", 0.0),
            "<error expanding template: error executing template __alert_A: template: __alert_A:1:133: executing \"__alert_A\" at <first>: error calling first: first() called on vector with no elements>"
        );
        assert_eq!(
            expand_one(
                "{{ reReplaceAll \"h:(.*)\" \"port $1\" $labels.instance }}",
                0.0
            ),
            "port 1"
        );
        assert_eq!(
            expand_one("{{ if match \"^h\" $labels.instance }}yes{{ end }}", 0.0),
            "yes"
        );
        assert_eq!(
            expand_one("{{ pathPrefix }} {{ externalURL }}", 0.0),
            "/prefix http://prom.example:9090/prefix"
        );
        assert_eq!(
            expand_one("{{ \"hello world\" | title }} {{ stripPort \"h:1\" }}", 0.0),
            "Hello World h"
        );
        assert_eq!(
            expand_one(
                "{{ with args 1 \"x\" }}{{ .arg1 }}{{ .arg0 }}{{ end }}",
                0.0
            ),
            "x1"
        );
        assert_eq!(expand_one("{{ parseDuration \"1m30s\" }}", 0.0), "90");
        assert_eq!(expand_one("plain", 0.0), "plain");
    }

    #[test]
    fn parse_errors_are_reported_at_load() {
        assert_eq!(
            check("A", "{{ tmpl \"x\" . }}").unwrap_err(),
            "template: __alert_A:1: function \"tmpl\" not defined"
        );
        assert!(check("A", "{{ $labels.x }}").is_ok());
    }
}
