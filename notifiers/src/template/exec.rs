//! Executes parsed templates over [`Value`]s: Go `text/template` semantics (truthiness,
//! `fmt.Sprint` printing, method calls with arguments such as `.CommonLabels.Remove
//! .GroupLabels.Names`, sorted map ranging) plus Go's built-in functions and Alertmanager's
//! function map. With `html` set, every printed value that is not `safeHtml` is escaped as
//! `html/template` escapes text and attribute values, URL-normalized first inside `href`/`src`
//! values (a simplification of its contextual escaping: script and style are not tracked).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::parse::{Arg, List, Node, Pipe};
use crate::data::{Alert, Data, KV, Status};

/// A template value.
#[derive(Clone, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    /// `safeHtml` output: never escaped.
    Html(Rc<str>),
    List(Rc<Vec<Value>>),
    Kv(Rc<KV>),
    Pairs(Rc<Vec<(String, String)>>),
    Pair(Rc<(String, String)>),
    Alerts(Rc<Vec<Alert>>),
    Alert(Rc<Alert>),
    Data(Rc<Data>),
    Time(DateTime<Utc>),
}

impl Value {
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Rc::from(s.as_ref()))
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::List(_) => "[]string",
            Value::Kv(_) => "template.KV",
            Value::Pairs(_) => "template.Pairs",
            Value::Pair(_) => "template.Pair",
            Value::Alerts(_) => "template.Alerts",
            Value::Alert(_) => "template.Alert",
            Value::Data(_) => "*template.Data",
            Value::Time(_) => "time.Time",
        }
    }

    fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Kv(k) => !k.is_empty(),
            Value::Pairs(p) => !p.is_empty(),
            Value::Alerts(a) => !a.is_empty(),
            Value::Pair(_) | Value::Alert(_) | Value::Data(_) | Value::Time(_) => true,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }

    fn string_list(&self) -> Option<Vec<String>> {
        match self {
            Value::List(l) => l
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>(),
            _ => None,
        }
    }
}

fn str_list(items: impl IntoIterator<Item = impl AsRef<str>>) -> Value {
    Value::List(Rc::new(items.into_iter().map(Value::str).collect()))
}

/// `fmt.Sprint` of one value.
pub fn sprint(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&go_float(*f)),
        Value::Str(s) | Value::Html(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                sprint(x, out);
            }
            out.push(']');
        }
        Value::Kv(kv) => {
            out.push_str("map[");
            for (i, (k, v)) in kv.0.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{k}:{v}");
            }
            out.push(']');
        }
        Value::Pairs(ps) => {
            out.push('[');
            for (i, (k, v)) in ps.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{{{k} {v}}}");
            }
            out.push(']');
        }
        Value::Pair(p) => {
            let _ = write!(out, "{{{} {}}}", p.0, p.1);
        }
        Value::Alerts(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                sprint(&Value::Alert(Rc::new(x.clone())), out);
            }
            out.push(']');
        }
        Value::Alert(a) => {
            out.push('{');
            out.push_str(a.status.as_str());
            out.push(' ');
            sprint(&Value::Kv(Rc::new(a.labels.clone())), out);
            out.push(' ');
            sprint(&Value::Kv(Rc::new(a.annotations.clone())), out);
            out.push(' ');
            out.push_str(&go_time_string(&a.starts_at));
            out.push(' ');
            out.push_str(&go_time_string(&a.ends_at));
            let _ = write!(out, " {} {}}}", a.generator_url, a.fingerprint);
        }
        Value::Data(d) => {
            let _ = write!(out, "&{{{} {} ...}}", d.receiver, d.status);
        }
        Value::Time(t) => out.push_str(&go_time_string(t)),
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

/// Go's `%v` for a float64 (strconv 'g' with the shortest representation).
fn go_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f.is_nan() {
        return "NaN".into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust: 1e21, 1.5e-5 -> Go: 1e+21, 1.5e-05
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{f}")
}

/// An execution error (Go's `executing "name" at <...>: ...` in short).
#[derive(Debug, Clone)]
pub struct ExecError(pub String);

type Res<T> = Result<T, ExecError>;

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(ExecError(msg.into()))
}

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'t> {
    pub defs: &'t HashMap<String, List>,
    pub html: bool,
    vars: Vec<(String, Value)>,
    depth: usize,
    out: String,
}

/// Output over this size is an error: a template loop cannot eat the memory.
const MAX_OUTPUT: usize = 8 << 20;

impl<'t> Exec<'t> {
    pub fn new(defs: &'t HashMap<String, List>, html: bool) -> Exec<'t> {
        Exec {
            defs,
            html,
            vars: Vec::new(),
            depth: 0,
            out: String::new(),
        }
    }

    pub fn run(mut self, body: &List, dot: Value) -> Res<String> {
        self.vars.push(("$".into(), dot.clone()));
        self.walk(body, &dot)?;
        Ok(self.out)
    }

    fn walk(&mut self, list: &List, dot: &Value) -> Res<Flow> {
        for node in list {
            match self.node(node, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn scoped(&mut self, list: &List, dot: &Value) -> Res<Flow> {
        let mark = self.vars.len();
        let r = self.walk(list, dot);
        self.vars.truncate(mark);
        r
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Res<Flow> {
        let line = match node {
            Node::Action(_, l)
            | Node::If(.., l)
            | Node::With(.., l)
            | Node::Range(.., l)
            | Node::Template(.., l) => *l,
            _ => 0,
        };
        self.node_inner(node, dot).map_err(|e| {
            if e.0.starts_with("line ") || line == 0 {
                e
            } else {
                ExecError(format!("line {line}: {}", e.0))
            }
        })
    }

    fn node_inner(&mut self, node: &Node, dot: &Value) -> Res<Flow> {
        if self.out.len() > MAX_OUTPUT {
            return fail("template output exceeds 8 MiB");
        }
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p, _) => {
                let v = self.pipe(p, dot)?;
                if p.decl.is_empty() {
                    self.print(&v);
                }
            }
            Node::If(p, body, els, _) | Node::With(p, body, els, _) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                let flow = if v.truth() {
                    let d = if matches!(node, Node::With(..)) {
                        v
                    } else {
                        dot.clone()
                    };
                    self.scoped(body, &d)?
                } else if let Some(e) = els {
                    self.scoped(e, dot)?
                } else {
                    Flow::Normal
                };
                self.vars.truncate(mark);
                if !matches!(flow, Flow::Normal) {
                    return Ok(flow);
                }
            }
            Node::Range(p, body, els, _) => {
                let mark = self.vars.len();
                // The declared variables are bound per iteration, not to the pipeline.
                let v = self.pipe(
                    &Pipe {
                        decl: Vec::new(),
                        assign: false,
                        cmds: p.cmds.clone(),
                    },
                    dot,
                )?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::List(l) => l
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                        .collect(),
                    Value::Kv(kv) => {
                        kv.0.iter()
                            .map(|(k, v)| (Value::str(k), Value::str(v)))
                            .collect()
                    }
                    Value::Pairs(ps) => ps
                        .iter()
                        .enumerate()
                        .map(|(i, p)| (Value::Int(i as i64), Value::Pair(Rc::new(p.clone()))))
                        .collect(),
                    Value::Alerts(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::Int(i as i64), Value::Alert(Rc::new(x.clone()))))
                        .collect(),
                    Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                    Value::Nil => Vec::new(),
                    other => {
                        return fail(format!("range can't iterate over {}", other.type_name()));
                    }
                };
                if items.is_empty() {
                    if let Some(e) = els {
                        self.scoped(e, dot)?;
                    }
                } else {
                    for (k, x) in items {
                        let m = self.vars.len();
                        match p.decl.as_slice() {
                            [] => {}
                            [v] => self.vars.push((v.clone(), x.clone())),
                            [kn, vn, ..] => {
                                self.vars.push((kn.clone(), k));
                                self.vars.push((vn.clone(), x.clone()));
                            }
                        }
                        let flow = self.walk(body, &x)?;
                        self.vars.truncate(m);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                }
                self.vars.truncate(mark);
            }
            Node::Template(name, p, _) => {
                let Some(body) = self.defs.get(name) else {
                    return fail(format!("no such template {name:?}"));
                };
                let d = match p {
                    Some(p) => self.pipe(p, dot)?,
                    None => Value::Nil,
                };
                if self.depth > 1000 {
                    return fail("exceeded maximum template depth (1000)");
                }
                self.depth += 1;
                // A template call sees only `$` = its data.
                let saved = std::mem::replace(&mut self.vars, vec![("$".into(), d.clone())]);
                let r = self.walk(body, &d);
                self.vars = saved;
                self.depth -= 1;
                r?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, v: &Value) {
        let mut s = String::new();
        sprint(v, &mut s);
        if self.html && !matches!(v, Value::Html(_)) {
            if in_url_attr(&self.out) {
                s = url_normalize(&s);
            }
            html_template_escape(&s, &mut self.out);
        } else {
            self.out.push_str(&s);
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Res<Value> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if p.assign {
            for name in &p.decl {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return fail(format!("undefined variable: {name}")),
                }
            }
        } else {
            for name in &p.decl {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Res<Value> {
        let Some(first) = cmd.first() else {
            return fail("empty command");
        };
        match first {
            Arg::Ident(name) => {
                // and/or evaluate lazily.
                if name == "and" || name == "or" {
                    let mut args: Vec<&Arg> = cmd[1..].iter().collect();
                    let mut last = Value::Nil;
                    if args.is_empty() && piped.is_none() {
                        return fail(format!("wrong number of args for {name}"));
                    }
                    let piped_arg = piped;
                    for a in args.drain(..) {
                        last = self.arg(a, dot)?;
                        if (name == "and") != last.truth() {
                            return Ok(last);
                        }
                    }
                    if let Some(p) = piped_arg {
                        last = p;
                    }
                    return Ok(last);
                }
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.arg(a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                call(name, args)
            }
            Arg::Field(chain) => self.chain(dot.clone(), chain, &cmd[1..], dot, piped),
            Arg::Var(name, chain) => {
                let v = self.var(name)?;
                if chain.is_empty() {
                    no_args(cmd, &piped)?;
                    Ok(v)
                } else {
                    self.chain(v, chain, &cmd[1..], dot, piped)
                }
            }
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                if chain.is_empty() {
                    no_args(cmd, &piped)?;
                    Ok(v)
                } else {
                    self.chain(v, chain, &cmd[1..], dot, piped)
                }
            }
            other => {
                no_args(cmd, &piped)?;
                self.arg(other, dot)
            }
        }
    }

    /// Resolves `recv.A.B.C`, calling the last element with `args` (and the piped value) when
    /// it is a method.
    fn chain(
        &mut self,
        mut recv: Value,
        chain: &[String],
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Res<Value> {
        for (i, name) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let mut margs = Vec::new();
            if last {
                for a in args {
                    margs.push(self.arg(a, dot)?);
                }
                if let Some(p) = &piped {
                    margs.push(p.clone());
                }
            }
            recv = field(&recv, name, margs)?;
        }
        Ok(recv)
    }

    fn var(&self, name: &str) -> Res<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => fail(format!("undefined variable {name:?}")),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Res<Value> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(chain) => self.chain(dot.clone(), chain, &[], dot, None)?,
            Arg::Var(n, chain) => {
                let v = self.var(n)?;
                self.chain_noargs(v, chain)?
            }
            Arg::Ident(name) => call(name, Vec::new())?,
            Arg::Str(s) => Value::str(s),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                self.chain_noargs(v, chain)?
            }
        })
    }

    fn chain_noargs(&mut self, mut v: Value, chain: &[String]) -> Res<Value> {
        for name in chain {
            v = field(&v, name, Vec::new())?;
        }
        Ok(v)
    }
}

fn no_args(cmd: &[Arg], piped: &Option<Value>) -> Res<()> {
    if cmd.len() > 1 || piped.is_some() {
        return fail("can't give argument to non-function");
    }
    Ok(())
}

fn want_no_args(name: &str, args: &[Value]) -> Res<()> {
    if !args.is_empty() {
        return fail(format!("{name} is not a method but has arguments"));
    }
    Ok(())
}

/// Field or method `name` of `recv`.
fn field(recv: &Value, name: &str, args: Vec<Value>) -> Res<Value> {
    match recv {
        Value::Data(d) => {
            want_no_args(name, &args)?;
            Ok(match name {
                "Receiver" => Value::str(&d.receiver),
                "Status" => Value::str(d.status.as_str()),
                "Alerts" => Value::Alerts(Rc::new(d.alerts.clone())),
                "GroupLabels" => Value::Kv(Rc::new(d.group_labels.clone())),
                "CommonLabels" => Value::Kv(Rc::new(d.common_labels.clone())),
                "CommonAnnotations" => Value::Kv(Rc::new(d.common_annotations.clone())),
                "ExternalURL" => Value::str(&d.external_url),
                _ => {
                    return fail(format!(
                        "can't evaluate field {name} in type *template.Data"
                    ));
                }
            })
        }
        Value::Alert(a) => {
            want_no_args(name, &args)?;
            Ok(match name {
                "Status" => Value::str(a.status.as_str()),
                "Labels" => Value::Kv(Rc::new(a.labels.clone())),
                "Annotations" => Value::Kv(Rc::new(a.annotations.clone())),
                "StartsAt" => Value::Time(a.starts_at),
                "EndsAt" => Value::Time(a.ends_at),
                "GeneratorURL" => Value::str(&a.generator_url),
                "Fingerprint" => Value::str(&a.fingerprint),
                _ => {
                    return fail(format!(
                        "can't evaluate field {name} in type template.Alert"
                    ));
                }
            })
        }
        Value::Alerts(list) => {
            want_no_args(name, &args)?;
            let want = match name {
                "Firing" => Status::Firing,
                "Resolved" => Status::Resolved,
                _ => {
                    return fail(format!(
                        "can't evaluate field {name} in type template.Alerts"
                    ));
                }
            };
            Ok(Value::Alerts(Rc::new(
                list.iter().filter(|a| a.status == want).cloned().collect(),
            )))
        }
        Value::Kv(kv) => match name {
            "SortedPairs" => {
                want_no_args(name, &args)?;
                Ok(Value::Pairs(Rc::new(
                    kv.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                )))
            }
            "Names" => {
                want_no_args(name, &args)?;
                Ok(str_list(kv.names()))
            }
            "Values" => {
                want_no_args(name, &args)?;
                Ok(str_list(kv.values()))
            }
            "Remove" => {
                let [keys] = args.as_slice() else {
                    return fail("wrong number of args for Remove: want 1");
                };
                let Some(keys) = keys.string_list() else {
                    return fail("Remove wants a []string");
                };
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                Ok(Value::Kv(Rc::new(kv.remove(&keys))))
            }
            // A map key: missing keys give the zero value (missingkey=zero).
            _ => {
                want_no_args(name, &args)?;
                Ok(Value::str(kv.get(name).unwrap_or("")))
            }
        },
        Value::Pairs(ps) => {
            want_no_args(name, &args)?;
            match name {
                "Names" => Ok(str_list(ps.iter().map(|p| &p.0))),
                "Values" => Ok(str_list(ps.iter().map(|p| &p.1))),
                _ => fail(format!(
                    "can't evaluate field {name} in type template.Pairs"
                )),
            }
        }
        Value::Pair(p) => {
            want_no_args(name, &args)?;
            match name {
                "Name" => Ok(Value::str(&p.0)),
                "Value" => Ok(Value::str(&p.1)),
                _ => fail(format!("can't evaluate field {name} in type template.Pair")),
            }
        }
        Value::Time(t) => match name {
            "Unix" => {
                want_no_args(name, &args)?;
                Ok(Value::Int(t.timestamp()))
            }
            "UnixMilli" => {
                want_no_args(name, &args)?;
                Ok(Value::Int(t.timestamp_millis()))
            }
            "UTC" | "Local" => {
                want_no_args(name, &args)?;
                Ok(Value::Time(*t))
            }
            "IsZero" => {
                want_no_args(name, &args)?;
                Ok(Value::Bool(*t == crate::data::go_zero_time()))
            }
            "String" => {
                want_no_args(name, &args)?;
                Ok(Value::str(go_time_string(t)))
            }
            "Format" => {
                let [layout] = args.as_slice() else {
                    return fail("wrong number of args for Format: want 1");
                };
                let Some(layout) = layout.as_str() else {
                    return fail("Format wants a string layout");
                };
                Ok(Value::str(go_format_time(t, layout)))
            }
            _ => fail(format!("can't evaluate field {name} in type time.Time")),
        },
        Value::Nil => fail(format!("nil pointer evaluating interface {{}}.{name}")),
        other => fail(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        )),
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

/// Whether output so far ends inside a quoted URL attribute value (`href="...`, `src='...`):
/// a light stand-in for `html/template`'s context tracking, for the common case.
fn in_url_attr(out: &str) -> bool {
    let tail = &out[out.len().saturating_sub(256)..];
    let Some(q) = tail.rfind(['"', '\'']) else {
        return false;
    };
    // The quote must open the value: `name=` right before it, and no closing quote after.
    let before = tail[..q].trim_end();
    let Some(before) = before.strip_suffix('=') else {
        return false;
    };
    let name: String = before
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .chars()
        .rev()
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(
        name.as_str(),
        "href" | "src" | "action" | "formaction" | "cite" | "poster" | "background"
    )
}

/// `html/template`'s `urlNormalizer`: percent-encodes bytes that may not appear in a URL,
/// keeping reserved characters and existing escapes.
fn url_normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(char::from(b)),
            b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@' | b'!'
            | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b'%' => {
                out.push(char::from(b))
            }
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

/// `html/template`'s escaping of printed text and attribute values (`htmlEscaper`): like
/// [`html_escape`], and `+` as `&#43;`.
fn html_template_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '+' => out.push_str("&#43;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Go's `template.HTMLEscapeString` (the `html` function).
pub fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Res<()> {
    if args.len() != n {
        return fail(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_str<'a>(name: &str, v: &'a Value) -> Res<&'a str> {
    v.as_str().ok_or_else(|| {
        ExecError(format!(
            "wrong type for value; expected string; got {} in {name}",
            v.type_name()
        ))
    })
}

/// The names [`call`] knows, for the parser's "function not defined" check.
pub const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "toUpper",
    "toLower",
    "title",
    "join",
    "match",
    "safeHtml",
    "reReplaceAll",
    "stringSlice",
];

/// Go's built-in template functions and Alertmanager's `DefaultFuncs`.
fn call(name: &str, args: Vec<Value>) -> Res<Value> {
    match name {
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            arity(name, &args, 1)?;
            Ok(Value::Int(match &args[0] {
                Value::Str(s) | Value::Html(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Kv(k) => k.len(),
                Value::Pairs(p) => p.len(),
                Value::Alerts(a) => a.len(),
                other => return fail(format!("len of type {}", other.type_name())),
            } as i64))
        }
        "index" => {
            if args.is_empty() {
                return fail("wrong number of args for index");
            }
            let mut v = args[0].clone();
            for i in &args[1..] {
                v = match (&v, i) {
                    (Value::List(l), Value::Int(n)) => l
                        .get(usize::try_from(*n).unwrap_or(usize::MAX))
                        .cloned()
                        .ok_or_else(|| ExecError(format!("index out of range: {n}")))?,
                    (Value::Alerts(l), Value::Int(n)) => Value::Alert(Rc::new(
                        l.get(usize::try_from(*n).unwrap_or(usize::MAX))
                            .cloned()
                            .ok_or_else(|| ExecError(format!("index out of range: {n}")))?,
                    )),
                    (Value::Pairs(l), Value::Int(n)) => Value::Pair(Rc::new(
                        l.get(usize::try_from(*n).unwrap_or(usize::MAX))
                            .cloned()
                            .ok_or_else(|| ExecError(format!("index out of range: {n}")))?,
                    )),
                    (Value::Kv(kv), k) => Value::str(kv.get(want_str(name, k)?).unwrap_or("")),
                    (v, _) => return fail(format!("can't index item of type {}", v.type_name())),
                };
            }
            Ok(v)
        }
        "print" => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                // fmt.Sprint adds a space between operands when neither is a string.
                if i > 0 && a.as_str().is_none() && args[i - 1].as_str().is_none() {
                    s.push(' ');
                }
                sprint(a, &mut s);
            }
            Ok(Value::str(s))
        }
        "println" => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                sprint(a, &mut s);
            }
            s.push('\n');
            Ok(Value::str(s))
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return fail("wrong number of args for printf");
            };
            Ok(Value::str(printf(want_str(name, f)?, rest)))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            if args.len() < 2 {
                return fail(format!("wrong number of args for {name}"));
            }
            if name == "eq" {
                for b in &args[1..] {
                    if compare(&args[0], b)? == std::cmp::Ordering::Equal {
                        return Ok(Value::Bool(true));
                    }
                }
                return Ok(Value::Bool(false));
            }
            arity(name, &args, 2)?;
            let o = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "html" => {
            let mut s = String::new();
            for a in &args {
                sprint(a, &mut s);
            }
            let mut out = String::new();
            html_escape(&s, &mut out);
            Ok(Value::str(out))
        }
        "js" => {
            let mut s = String::new();
            for a in &args {
                sprint(a, &mut s);
            }
            let mut out = String::new();
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '"' => out.push_str("\\\""),
                    '<' => out.push_str("\\u003C"),
                    '>' => out.push_str("\\u003E"),
                    '&' => out.push_str("\\u0026"),
                    '=' => out.push_str("\\u003D"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
            Ok(Value::str(out))
        }
        "urlquery" => {
            let mut s = String::new();
            for a in &args {
                sprint(a, &mut s);
            }
            Ok(Value::str(query_escape(&s)))
        }
        "toUpper" => {
            arity(name, &args, 1)?;
            Ok(Value::str(want_str(name, &args[0])?.to_uppercase()))
        }
        "toLower" => {
            arity(name, &args, 1)?;
            Ok(Value::str(want_str(name, &args[0])?.to_lowercase()))
        }
        "title" => {
            arity(name, &args, 1)?;
            Ok(Value::str(title(want_str(name, &args[0])?)))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = want_str(name, &args[0])?;
            let Some(list) = args[1].string_list() else {
                return fail(format!(
                    "wrong type for value; expected []string; got {}",
                    args[1].type_name()
                ));
            };
            Ok(Value::str(list.join(sep)))
        }
        "match" => {
            arity(name, &args, 2)?;
            let re = regex::Regex::new(want_str(name, &args[0])?)
                .map_err(|e| ExecError(format!("match: {e}")))?;
            Ok(Value::Bool(re.is_match(want_str(name, &args[1])?)))
        }
        "reReplaceAll" => {
            arity(name, &args, 3)?;
            let re = regex::Regex::new(want_str(name, &args[0])?)
                .map_err(|e| ExecError(format!("reReplaceAll: {e}")))?;
            let repl = want_str(name, &args[1])?;
            Ok(Value::str(
                re.replace_all(want_str(name, &args[2])?, repl).as_ref(),
            ))
        }
        "safeHtml" => {
            arity(name, &args, 1)?;
            Ok(Value::Html(Rc::from(want_str(name, &args[0])?)))
        }
        "stringSlice" => {
            let mut out = Vec::new();
            for a in &args {
                out.push(want_str(name, a)?.to_string());
            }
            Ok(str_list(out))
        }
        _ => fail(format!("function {name:?} not defined")),
    }
}

fn compare(a: &Value, b: &Value) -> Res<std::cmp::Ordering> {
    use Value::*;
    Ok(match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
        (Int(x), Float(y)) => (*x as f64)
            .partial_cmp(y)
            .unwrap_or(std::cmp::Ordering::Equal),
        (Float(x), Int(y)) => x
            .partial_cmp(&(*y as f64))
            .unwrap_or(std::cmp::Ordering::Equal),
        (Str(x) | Html(x), Str(y) | Html(y)) => x.cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        (Nil, Nil) => std::cmp::Ordering::Equal,
        _ => {
            return fail(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            ));
        }
    })
}

/// `cases.Title(language.AmericanEnglish)`: the first letter of each word upper-cased, the
/// rest lower-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '\'' {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A subset of Go's `fmt.Sprintf`: `%s %v %d %q %f %.Nf %x %X %t %%`.
fn printf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' || n == '-' || n == '+' || n == ' ' || n == '#' {
                spec.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let prec = spec
            .split_once('.')
            .and_then(|(_, p)| p.parse::<usize>().ok());
        let s = match (verb, a) {
            ('d', Value::Int(i)) => i.to_string(),
            ('f', Value::Float(x)) => format!("{:.*}", prec.unwrap_or(6), x),
            ('f', Value::Int(i)) => format!("%!f(int={i})"),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('q', Value::Str(s)) => format!("{:?}", s.as_ref()),
            ('t', Value::Bool(b)) => b.to_string(),
            ('s' | 'v', v) => {
                let mut s = String::new();
                sprint(v, &mut s);
                s
            }
            ('g', Value::Float(x)) => go_float(*x),
            (v, a) => {
                let mut s = String::new();
                sprint(a, &mut s);
                format!("%!{v}({}={s})", a.type_name())
            }
        };
        // Width.
        let width = spec.split('.').next().and_then(|w| {
            w.trim_start_matches(['-', '+', ' ', '#'])
                .parse::<usize>()
                .ok()
        });
        match width {
            Some(w) if s.chars().count() < w => {
                let pad = " ".repeat(w - s.chars().count());
                if spec.starts_with('-') {
                    out.push_str(&s);
                    out.push_str(&pad);
                } else {
                    out.push_str(&pad);
                    out.push_str(&s);
                }
            }
            _ => out.push_str(&s),
        }
    }
    for extra in args {
        let mut s = String::new();
        sprint(extra, &mut s);
        let _ = write!(out, "%!(EXTRA {}={s})", extra.type_name());
    }
    out
}
