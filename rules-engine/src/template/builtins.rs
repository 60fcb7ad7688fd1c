//! Go's predefined template functions (`text/template/funcs.go`): comparison with Go's rules on
//! basic kinds, `not`, `len`, `index`, `slice`, `print`/`printf`/`println`, and the escapers
//! `html`, `js` and `urlquery`. `and` and `or` are evaluated lazily by the executor.

use std::cmp::Ordering;

use super::gofmt::{sprint, sprintf, sprintln};
use super::value::{Elem, Value};
use super::{Param, Params};

const ANY1: Params = Params::fixed(&[Param::Any]);
const ANY2: Params = Params::fixed(&[Param::Any, Param::Any]);
const VAR_ANY: Params = Params::variadic(&[], Param::Any);

pub(crate) fn is_builtin(name: &str) -> bool {
    params(name).is_some() || name == "and" || name == "or"
}

pub(crate) fn params(name: &str) -> Option<Params> {
    Some(match name {
        "and" | "or" => Params::variadic(&[Param::Any], Param::Any),
        "not" | "len" => ANY1,
        "index" | "slice" | "eq" => Params::variadic(&[Param::Any], Param::Any),
        "ne" | "lt" | "le" | "gt" | "ge" => ANY2,
        "print" | "println" | "html" | "js" | "urlquery" => VAR_ANY,
        "printf" => Params::variadic(&[Param::Str], Param::Any),
        _ => return None,
    })
}

pub(crate) fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    Ok(match name {
        "not" => Value::Bool(!args[0].truth()),
        "len" => Value::Int(match &args[0] {
            Value::Str(s) | Value::Html(s) => s.len() as i64,
            Value::Map(m, _) => m.len() as i64,
            Value::List(l, _) => l.len() as i64,
            Value::Object(o) if o.count().is_some() => o.count().unwrap_or(0) as i64,
            other => return Err(format!("len of type {}", other.type_name())),
        }),
        "index" => index(&args[0], &args[1..])?,
        "slice" => slice(&args[0], &args[1..])?,
        "eq" => {
            let mut truth = false;
            for b in &args[1..] {
                if eq(&args[0], b)? {
                    truth = true;
                    break;
                }
            }
            Value::Bool(truth)
        }
        "ne" => Value::Bool(!eq(&args[0], &args[1])?),
        "lt" => Value::Bool(lt(&args[0], &args[1])?),
        "le" => Value::Bool(lt(&args[0], &args[1])? || eq(&args[0], &args[1])?),
        "gt" => Value::Bool(!(lt(&args[0], &args[1])? || eq(&args[0], &args[1])?)),
        "ge" => Value::Bool(!lt(&args[0], &args[1])?),
        "print" => Value::from(sprint(&args)),
        "println" => Value::from(sprintln(&args)),
        "printf" => {
            let f = args[0].as_str().unwrap_or_default().to_string();
            Value::from(sprintf(&f, &args[1..]))
        }
        "html" => Value::from(html_escape(&eval_args(&args))),
        "js" => Value::from(js_escape(&eval_args(&args))),
        "urlquery" => Value::from(query_escape(&eval_args(&args))),
        _ => return Err(format!("{name:?} is not a defined function")),
    })
}

/// What the escapers escape: a lone string as is, else `fmt.Sprint` of the arguments.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.to_string(),
        _ => sprint(args),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn basic_kind(v: &Value) -> Option<Kind> {
    match v {
        Value::Bool(_) => Some(Kind::Bool),
        Value::Int(_) => Some(Kind::Int),
        Value::Float(_) => Some(Kind::Float),
        Value::Str(_) | Value::Html(_) => Some(Kind::Str),
        Value::Object(o) if o.as_str().is_some() => Some(Kind::Str),
        _ => None,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka != kb {
        if *a != Value::Nil && *b != Value::Nil {
            return Err(BAD_COMPARISON.into());
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        _ if ka == Some(Kind::Str) => a.as_str() == b.as_str(),
        (Value::Nil, Value::Nil) => true,
        (Value::Map(..) | Value::List(..), _) => {
            return Err(format!(
                "non-comparable type {}: {}",
                a.go_v(),
                a.type_name()
            ));
        }
        _ => a == b,
    })
}

fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (Some(ka), Some(kb)) = (basic_kind(a), basic_kind(b)) else {
        return Err(BAD_COMPARISON_TYPE.into());
    };
    if ka != kb {
        return Err(BAD_COMPARISON.into());
    }
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y) == Some(Ordering::Less),
        (Value::Bool(_), _) => return Err(BAD_COMPARISON_TYPE.into()),
        _ => a.as_str() < b.as_str(),
    })
}

fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    let mut v = item.clone();
    for i in indexes {
        if let Value::Object(o) = &v
            && let Some(r) = o.index(i)
        {
            v = r?;
            continue;
        }
        v = match (&v, i) {
            (Value::Nil, _) => return Err("index of untyped nil".into()),
            (Value::Map(m, elem), Value::Str(k)) => m.get(&**k).cloned().unwrap_or(match elem {
                Elem::Str => Value::from(""),
                Elem::Any => Value::Nil,
            }),
            (Value::Object(o), Value::Str(k)) if o.items().is_some() => {
                o.get(k).unwrap_or_else(|| Value::from(""))
            }
            (Value::Map(..), other) => {
                return Err(format!(
                    "value has type {}; should be string",
                    other.type_name()
                ));
            }
            (Value::List(l, _), Value::Int(x)) => {
                let n = usize::try_from(*x)
                    .ok()
                    .filter(|&n| n < l.len())
                    .ok_or_else(|| format!("index out of range: {x}"))?;
                l[n].clone()
            }
            (Value::Str(s), Value::Int(x)) => {
                let n = usize::try_from(*x)
                    .ok()
                    .filter(|&n| n < s.len())
                    .ok_or_else(|| format!("index out of range: {x}"))?;
                Value::Int(i64::from(s.as_bytes()[n]))
            }
            (Value::List(..) | Value::Str(_), other) => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                ));
            }
            (other, _) => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(v)
}

fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let bounds: Vec<usize> = idx
        .iter()
        .map(|i| match i {
            Value::Int(x) => usize::try_from(*x).map_err(|_| format!("index out of range: {x}")),
            other => Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            )),
        })
        .collect::<Result<_, _>>()?;
    let len = match item {
        Value::Str(s) => s.len(),
        Value::List(l, _) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let (lo, hi) = match bounds[..] {
        [] => (0, len),
        [lo] => (lo, len),
        [lo, hi] => (lo, hi),
        _ => return Err("too many slice indexes".into()),
    };
    if lo > hi || hi > len {
        return Err(format!("invalid slice index: {lo} > {hi}"));
    }
    Ok(match item {
        Value::Str(s) => Value::from(s.get(lo..hi).ok_or("invalid slice index")?),
        Value::List(l, t) => Value::List(std::sync::Arc::new(l[lo..hi].to_vec()), t),
        _ => Value::Nil,
    })
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
