//! Alertmanager's template data as values of the template engine
//! ([`rules_engine::template::Object`]): `*template.Data`, `template.Alerts` (a list with
//! `.Firing` and `.Resolved`), `template.Alert`, `template.KV` (a map with `.SortedPairs`,
//! `.Names`, `.Values` and `.Remove`), `template.Pairs`, `template.Pair` and `time.Time`
//! (`.Format`, `.Unix`, ...), each with Go's type name and `%v` printing.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rules_engine::template::{Object, Value};

use crate::data::{Alert, Data, KV, Status};

fn obj(o: impl Object + 'static) -> Value {
    Value::Object(Arc::new(o))
}

/// A Go `[]string`.
pub(crate) fn str_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(
        Arc::new(items.into_iter().map(|s| Value::from(s.as_ref())).collect()),
        "[]string",
    )
}

/// The value templates see as dot: `*template.Data`.
pub(crate) fn data(d: &Data) -> Value {
    obj(DataObj {
        receiver: Value::from(d.receiver.as_str()),
        status: d.status,
        alerts: AlertsObj(
            d.alerts
                .iter()
                .map(|a| Arc::new(AlertObj::new(a)))
                .collect(),
        ),
        group_labels: obj(KvObj(d.group_labels.clone())),
        common_labels: obj(KvObj(d.common_labels.clone())),
        common_annotations: obj(KvObj(d.common_annotations.clone())),
        external_url: Value::from(d.external_url.as_str()),
    })
}

#[derive(Debug)]
struct DataObj {
    receiver: Value,
    status: Status,
    alerts: AlertsObj,
    group_labels: Value,
    common_labels: Value,
    common_annotations: Value,
    external_url: Value,
}

impl Object for DataObj {
    fn type_name(&self) -> &'static str {
        "*template.Data"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Receiver" => self.receiver.clone(),
            "Status" => Value::from(self.status.as_str()),
            "Alerts" => obj(self.alerts.clone()),
            "GroupLabels" => self.group_labels.clone(),
            "CommonLabels" => self.common_labels.clone(),
            "CommonAnnotations" => self.common_annotations.clone(),
            "ExternalURL" => self.external_url.clone(),
            _ => return None,
        })
    }

    fn go_v(&self) -> String {
        format!(
            "&{{{} {} {} {} {} {} {}}}",
            self.receiver.go_v(),
            self.status.as_str(),
            self.alerts.go_v(),
            self.group_labels.go_v(),
            self.common_labels.go_v(),
            self.common_annotations.go_v(),
            self.external_url.go_v()
        )
    }
}

/// `template.Alerts`.
#[derive(Clone, Debug)]
struct AlertsObj(Vec<Arc<AlertObj>>);

impl AlertsObj {
    fn with_status(&self, s: Status) -> Value {
        obj(AlertsObj(
            self.0.iter().filter(|a| a.status == s).cloned().collect(),
        ))
    }
}

impl Object for AlertsObj {
    fn type_name(&self) -> &'static str {
        "template.Alerts"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Firing" => Some(self.with_status(Status::Firing)),
            "Resolved" => Some(self.with_status(Status::Resolved)),
            _ => None,
        }
    }

    fn items(&self) -> Option<Vec<(Value, Value)>> {
        Some(list_items(&self.0))
    }

    fn count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    fn index(&self, key: &Value) -> Option<Result<Value, String>> {
        Some(list_index(key, self.0.len()).map(|i| Value::Object(self.0[i].clone())))
    }

    fn go_v(&self) -> String {
        list_go_v(&self.0)
    }
}

/// Go's `index` of a slice of `len` elements by `key`.
/// What `range` visits over a Go slice of our objects: (index, element).
fn list_items<T: Object + 'static>(v: &[Arc<T>]) -> Vec<(Value, Value)> {
    v.iter()
        .enumerate()
        .map(|(i, e)| (Value::Int(i as i64), Value::Object(e.clone())))
        .collect()
}

/// Go's `%v` of a slice: `[a b c]`.
fn list_go_v<T: Object>(v: &[Arc<T>]) -> String {
    let items: Vec<String> = v.iter().map(|e| e.go_v()).collect();
    format!("[{}]", items.join(" "))
}

fn list_index(key: &Value, len: usize) -> Result<usize, String> {
    match key {
        Value::Int(x) => usize::try_from(*x)
            .ok()
            .filter(|&n| n < len)
            .ok_or_else(|| format!("index out of range: {x}")),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

/// `template.Alert`.
#[derive(Debug)]
struct AlertObj {
    status: Status,
    labels: Value,
    annotations: Value,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    generator_url: Value,
    fingerprint: Value,
}

impl AlertObj {
    fn new(a: &Alert) -> AlertObj {
        AlertObj {
            status: a.status,
            labels: obj(KvObj(a.labels.clone())),
            annotations: obj(KvObj(a.annotations.clone())),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: Value::from(a.generator_url.as_str()),
            fingerprint: Value::from(a.fingerprint.as_str()),
        }
    }
}

impl Object for AlertObj {
    fn type_name(&self) -> &'static str {
        "template.Alert"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Status" => Value::from(self.status.as_str()),
            "Labels" => self.labels.clone(),
            "Annotations" => self.annotations.clone(),
            "StartsAt" => obj(Time(self.starts_at)),
            "EndsAt" => obj(Time(self.ends_at)),
            "GeneratorURL" => self.generator_url.clone(),
            "Fingerprint" => self.fingerprint.clone(),
            _ => return None,
        })
    }

    fn go_v(&self) -> String {
        format!(
            "{{{} {} {} {} {} {} {}}}",
            self.status.as_str(),
            self.labels.go_v(),
            self.annotations.go_v(),
            go_time_string(&self.starts_at),
            go_time_string(&self.ends_at),
            self.generator_url.go_v(),
            self.fingerprint.go_v()
        )
    }
}

/// `template.KV`: a `map[string]string` with methods; a name that is no method is a key.
#[derive(Debug)]
struct KvObj(KV);

impl Object for KvObj {
    fn type_name(&self) -> &'static str {
        "template.KV"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "SortedPairs" => obj(Pairs(
                self.0
                    .0
                    .iter()
                    .map(|(k, v)| Arc::new(Pair(k.clone(), v.clone())))
                    .collect(),
            )),
            "Names" => str_list(self.0.names()),
            "Values" => str_list(self.0.values()),
            // missingkey=zero: a missing key gives "".
            _ => Value::from(self.0.get(name).unwrap_or("")),
        })
    }

    fn method(&self, name: &str, args: Vec<Value>) -> Option<Result<Value, String>> {
        match name {
            "Remove" => Some(match args.as_slice() {
                [Value::List(l, _)] => l
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Ok(&**s),
                        other => Err(format!(
                            "wrong type for value; expected string; got {}",
                            other.type_name()
                        )),
                    })
                    .collect::<Result<Vec<&str>, String>>()
                    .map(|keys| obj(KvObj(self.0.remove(&keys)))),
                [other] => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    other.type_name()
                )),
                _ => Err(format!(
                    "wrong number of args for Remove: want 1 got {}",
                    args.len()
                )),
            }),
            "SortedPairs" | "Names" | "Values" => Some(Err(format!(
                "wrong number of args for {name}: want 0 got {}",
                args.len()
            ))),
            _ => None,
        }
    }

    fn items(&self) -> Option<Vec<(Value, Value)>> {
        Some(
            self.0
                .0
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect(),
        )
    }

    fn count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    fn get(&self, key: &str) -> Option<Value> {
        Some(Value::from(self.0.get(key).unwrap_or("")))
    }

    fn go_v(&self) -> String {
        let mut out = String::from("map[");
        for (i, (k, v)) in self.0.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{k}:{v}");
        }
        out.push(']');
        out
    }
}

/// `template.Pairs`.
#[derive(Debug)]
struct Pairs(Vec<Arc<Pair>>);

impl Object for Pairs {
    fn type_name(&self) -> &'static str {
        "template.Pairs"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Names" => Some(str_list(self.0.iter().map(|p| &p.0))),
            "Values" => Some(str_list(self.0.iter().map(|p| &p.1))),
            _ => None,
        }
    }

    fn items(&self) -> Option<Vec<(Value, Value)>> {
        Some(list_items(&self.0))
    }

    fn count(&self) -> Option<usize> {
        Some(self.0.len())
    }

    fn index(&self, key: &Value) -> Option<Result<Value, String>> {
        Some(list_index(key, self.0.len()).map(|i| Value::Object(self.0[i].clone())))
    }

    fn go_v(&self) -> String {
        list_go_v(&self.0)
    }
}

/// `template.Pair`.
#[derive(Debug)]
struct Pair(String, String);

impl Object for Pair {
    fn type_name(&self) -> &'static str {
        "template.Pair"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.0.as_str())),
            "Value" => Some(Value::from(self.1.as_str())),
            _ => None,
        }
    }

    fn go_v(&self) -> String {
        format!("{{{} {}}}", self.0, self.1)
    }
}

/// `time.Time`, with the methods templates use.
#[derive(Debug)]
struct Time(DateTime<Utc>);

impl Object for Time {
    fn type_name(&self) -> &'static str {
        "time.Time"
    }

    fn field(&self, name: &str) -> Option<Value> {
        let t = &self.0;
        Some(match name {
            "Unix" => Value::Int(t.timestamp()),
            "UnixMilli" => Value::Int(t.timestamp_millis()),
            "UTC" | "Local" => obj(Time(*t)),
            "IsZero" => Value::Bool(*t == crate::data::go_zero_time()),
            "String" => Value::from(go_time_string(t)),
            _ => return None,
        })
    }

    fn method(&self, name: &str, args: Vec<Value>) -> Option<Result<Value, String>> {
        match name {
            "Format" => Some(match args.as_slice() {
                [Value::Str(layout)] => Ok(Value::from(go_format_time(&self.0, layout))),
                [other] => Err(format!(
                    "wrong type for value; expected string; got {}",
                    other.type_name()
                )),
                _ => Err(format!(
                    "wrong number of args for Format: want 1 got {}",
                    args.len()
                )),
            }),
            _ => None,
        }
    }

    fn go_v(&self) -> String {
        go_time_string(&self.0)
    }
}

/// Go's `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time_string(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        format!("{base} +0000 UTC")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{} +0000 UTC", frac.trim_end_matches('0'))
    }
}

/// Go's `time.Format` for the common layout elements.
fn go_format_time(t: &DateTime<Utc>, layout: &str) -> String {
    const MAP: [(&str, &str); 24] = [
        ("2006", "%Y"),
        ("January", "%B"),
        ("Jan", "%b"),
        ("Monday", "%A"),
        ("Mon", "%a"),
        ("MST", "UTC"),
        ("Z07:00", "Z"),
        ("-07:00", "+00:00"),
        ("-0700", "+0000"),
        (".000000000", "%.9f"),
        (".000000", "%.6f"),
        (".000", "%.3f"),
        ("01", "%m"),
        ("02", "%d"),
        ("_2", "%e"),
        ("15", "%H"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%-m"),
        ("2", "%-d"),
    ];
    let mut fmt = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (go, strf) in MAP {
            if let Some(r) = rest.strip_prefix(go) {
                fmt.push_str(strf);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '%' {
            fmt.push_str("%%");
        } else {
            fmt.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    // chrono's %.3f prints ".123"; Go's ".000" likewise.
    t.format(&fmt).to_string()
}
