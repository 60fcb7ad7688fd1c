//! The values a template computes with, standing in for the Go types Prometheus and
//! Alertmanager hand to `text/template`, with Go's printing (`fmt`'s `%v`), truthiness and type
//! names (which appear in error messages).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::promql::functions::go_fmt_v;

/// What a map's missing key yields under `missingkey=zero`: the element type's zero value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// `map[string]string`: `""`.
    Str,
    /// `map[string]interface{}`: nil.
    Any,
}

/// A Go struct (or pointer to one): fields in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    /// Go's type name, for error messages (`*template.sample`).
    pub type_name: &'static str,
    pub pointer: bool,
    pub fields: Vec<(&'static str, Value)>,
}

/// A value of a caller's own type, with Go's fields and methods: what Alertmanager's
/// template data is (`KV` with `SortedPairs` and `Remove`, `Alerts` with `Firing`, ...).
pub trait Object: Send + Sync + std::fmt::Debug {
    /// Go's type name, for error messages.
    fn type_name(&self) -> &'static str;
    /// `.Name`: a field, or a method without arguments; `None` if there is neither.
    fn field(&self, name: &str) -> Option<Value>;
    /// `.Name arg...`: a method with arguments; `None` if there is no such method.
    fn method(&self, _name: &str, _args: Vec<Value>) -> Option<Result<Value, String>> {
        None
    }
    /// What `range` visits (key or index, element), for list- and map-like types.
    fn items(&self) -> Option<Vec<(Value, Value)>> {
        None
    }
    /// What `len` gives, for list- and map-like types.
    fn count(&self) -> Option<usize> {
        self.items().map(|i| i.len())
    }
    /// `index` by a string key, for map-like types.
    fn get(&self, _key: &str) -> Option<Value> {
        None
    }
    /// `index` by any key, tried before [`Object::get`]: for list-like types, which Go
    /// indexes by int; `None` when the type does not take this key.
    fn index(&self, _key: &Value) -> Option<Result<Value, String>> {
        None
    }
    /// Go's `%v`.
    fn go_v(&self) -> String;
    /// The text a `string`-typed parameter or comparison sees, for types whose Go kind is
    /// string.
    fn as_str(&self) -> Option<&str> {
        None
    }
    fn truth(&self) -> bool {
        self.count().is_none_or(|n| n > 0)
    }
}

#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Go's nil (an invalid or nil interface value).
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    /// `html/template.HTML` (what `safeHtml` and `tmpl` return): a string that prints as is.
    Html(Arc<str>),
    Map(Arc<BTreeMap<String, Value>>, Elem),
    List(Arc<Vec<Value>>, &'static str),
    Struct(Arc<Struct>),
    /// A `*time.Time`, in Unix nanoseconds, UTC.
    Time(i64),
    Object(Arc<dyn Object>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) | (Value::Html(a), Value::Html(b)) => a == b,
            (Value::Map(a, ea), Value::Map(b, eb)) => ea == eb && a == b,
            (Value::List(a, ta), Value::List(b, tb)) => ta == tb && a == b,
            (Value::Struct(a), Value::Struct(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl Value {
    /// A `map[string]string` (labels, annotations).
    pub fn str_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::Map(
            Arc::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), Value::from(v)))
                    .collect(),
            ),
            Elem::Str,
        )
    }

    pub fn structure(
        type_name: &'static str,
        pointer: bool,
        fields: Vec<(&'static str, Value)>,
    ) -> Value {
        Value::Struct(Arc::new(Struct {
            type_name,
            pointer,
            fields,
        }))
    }

    /// Go's type name, as errors print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::Map(_, Elem::Str) => "map[string]string",
            Value::Map(_, Elem::Any) => "map[string]interface {}",
            Value::List(_, t) => t,
            Value::Struct(s) => s.type_name,
            Value::Time(_) => "*time.Time",
            Value::Object(o) => o.type_name(),
        }
    }

    /// Go's `template.IsTrue`: the zero value of its type is false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::Map(m, _) => !m.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Struct(_) | Value::Time(_) => true,
            Value::Object(o) => o.truth(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s),
            Value::Object(o) => o.as_str(),
            _ => None,
        }
    }

    /// What `{{ . }}` prints: Go's `fmt.Fprint` of the value, `<no value>` for an invalid one.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            v => v.go_v(),
        }
    }

    /// Go's `%v`.
    pub fn go_v(&self) -> String {
        let mut out = String::new();
        self.write_v(&mut out, true);
        out
    }

    fn write_v(&self, out: &mut String, top: bool) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&go_fmt_v(*f)),
            Value::Str(s) | Value::Html(s) => out.push_str(s),
            Value::Map(m, _) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_v(out, false);
                }
                out.push(']');
            }
            Value::List(l, _) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_v(out, false);
                }
                out.push(']');
            }
            Value::Struct(s) => {
                // fmt prints a pointer to a struct as `&{...}` at the top level only; nested
                // pointers print as addresses, which no template relies on.
                if s.pointer && top {
                    out.push('&');
                }
                out.push('{');
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_v(out, false);
                }
                out.push('}');
            }
            Value::Time(ns) => out.push_str(&go_time_string(*ns)),
            Value::Object(o) => out.push_str(&o.go_v()),
        }
    }
}

/// Go's `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn go_time_string(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if frac != 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_go_fmt_does() {
        assert_eq!(Value::Float(1e6).go_v(), "1e+06");
        assert_eq!(Value::Float(123456.0).go_v(), "123456");
        assert_eq!(
            Value::str_map([("b", "2"), ("a", "1")]).go_v(),
            "map[a:1 b:2]"
        );
        assert_eq!(Value::Nil.print(), "<no value>");
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_string(1_435_065_584_128_000_000),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        let s = Value::structure(
            "*template.sample",
            true,
            vec![
                ("Labels", Value::str_map([("a", "b")])),
                ("Value", Value::Float(1.0)),
            ],
        );
        assert_eq!(s.print(), "&{map[a:b] 1}");
    }
}
