//! Execution of parsed templates, following `text/template/exec.go` (Go 1.19) with
//! `missingkey=zero`, as both Prometheus and Alertmanager configure it: dot and variables,
//! field chains on maps and structs, typed function arguments with Go's untyped constants,
//! lazy `and`/`or`, `range` over lists and (sorted) maps with `break`/`continue`, and execution
//! errors worded and located as Go does (`template: NAME:LINE:COL: executing "NAME" at <...>:`).

use std::sync::Arc;

use super::builtins::{self, html_escape};
use super::htmlctx;
use super::parse::{Arg, Branch, Cmd, Node, Number, Pipe, Pos, Span};
use super::value::{Elem, Value};
use super::{Funcs, Param, Template};

/// A template that failed while executing; the message is Go's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExecError(pub String);

/// How printed values (`{{ pipeline }}`) are escaped; values of type `template.HTML`
/// ([`Value::Html`]) never are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escaping {
    /// Printed as is (`text/template`).
    Text,
    /// HTML-escaped as Go's `template.HTMLEscapeString` does.
    Html,
    /// As `html/template` escapes text and quoted attribute values (`+` too), with values
    /// inside URL attributes (`href="..."`, `src`, ...) URL-normalized first. The context is
    /// read from the output so far; script and style contexts are not tracked.
    HtmlAttrs,
}

/// How deep `{{template}}` calls may nest (Go allows 100,000; a template that deep is a loop).
const MAX_DEPTH: usize = 10_000;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct State<'a> {
    pub tmpl: &'a Template,
    pub funcs: &'a dyn Funcs,
    pub out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    /// How printed values are escaped.
    escaping: Escaping,
    /// The executing tree: its name, source and the name it was parsed under.
    name: &'a str,
    src: &'a str,
    parse_name: &'a str,
    /// The node being evaluated, for error messages.
    at: Span,
}

type R<T> = Result<T, ExecError>;

/// Executes tree `name` of `tmpl` with `data` as dot.
pub(crate) fn execute(
    tmpl: &Template,
    name: &str,
    data: &Value,
    funcs: &dyn Funcs,
    escaping: Escaping,
) -> R<String> {
    let Some((tree_name, tree)) = tmpl.trees.get_key_value(name) else {
        return Err(ExecError(format!(
            "template: no template {name:?} associated with template {name:?}"
        )));
    };
    let mut s = State {
        tmpl,
        funcs,
        out: String::new(),
        vars: vec![("$".into(), data.clone())],
        depth: 0,
        escaping,
        name: tree_name,
        src: &tree.src,
        parse_name: &tree.parse_name,
        at: Span::default(),
    };
    s.walk(data, &tree.nodes)?;
    Ok(s.out)
}

impl State<'_> {
    fn error(&self, msg: impl std::fmt::Display) -> ExecError {
        let Span { pos, start, end } = self.at;
        let before = &self.src[..pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - (nl + 1),
            None => pos,
        };
        let node = self
            .src
            .get(start..end.max(start))
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        ExecError(format!(
            "template: {}:{}:{}: executing {:?} at <{}>: {}",
            self.parse_name, line, col, self.name, node, msg
        ))
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node]) -> R<Flow> {
        for n in nodes {
            match self.walk_one(dot, n)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_one(&mut self, dot: &Value, node: &Node) -> R<Flow> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(pipe) => {
                let v = self.pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    match (&v, self.escaping) {
                        (Value::Html(h), _) => self.out.push_str(h),
                        (v, Escaping::Text) => self.out.push_str(&v.print()),
                        (v, Escaping::Html) => self.out.push_str(&html_escape(&v.print())),
                        (v, Escaping::HtmlAttrs) => htmlctx::print(&mut self.out, &v.print()),
                    }
                }
            }
            Node::If(b) => return self.branch(dot, b, false),
            Node::With(b) => return self.branch(dot, b, true),
            Node::Range(b) => return self.range(dot, b),
            Node::Template { pos, name, pipe } => {
                self.at = span(*pos, *pos);
                if !self.tmpl.trees.contains_key(name.as_str()) {
                    return Err(self.error(format!(
                        "template: no template {name:?} associated with template {:?}",
                        self.name
                    )));
                }
                let new_dot = match pipe {
                    Some(p) => self.pipeline(dot, p)?,
                    None => Value::Nil,
                };
                if self.depth >= MAX_DEPTH {
                    return Err(
                        self.error(format!("exceeded maximum template depth ({MAX_DEPTH})"))
                    );
                }
                let out = std::mem::take(&mut self.out);
                if let Some((out, r)) = self.run_nested(name, &new_dot, out) {
                    self.out = out;
                    r?;
                }
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    /// Runs template `name` with `data` as dot and `$`, appending to `out`; `None` if the set
    /// has no such template.
    fn run_nested(&self, name: &str, data: &Value, out: String) -> Option<(String, R<Flow>)> {
        let (tree_name, tree) = self.tmpl.trees.get_key_value(name)?;
        let mut sub = State {
            tmpl: self.tmpl,
            funcs: self.funcs,
            out,
            vars: vec![("$".into(), data.clone())],
            depth: self.depth + 1,
            escaping: self.escaping,
            name: tree_name,
            src: &tree.src,
            parse_name: &tree.parse_name,
            at: Span::default(),
        };
        let r = sub.walk(data, &tree.nodes);
        Some((sub.out, r))
    }

    fn branch(&mut self, dot: &Value, b: &Branch, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let r = if v.truth() {
            if with {
                self.walk(&v, &b.list)
            } else {
                self.walk(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        r
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> R<Flow> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l, _) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m, _) => m
                .iter()
                .map(|(k, e)| (Value::from(k.as_str()), e.clone()))
                .collect(),
            Value::Object(o) if o.items().is_some() => o.items().unwrap_or_default(),
            Value::Nil => Vec::new(),
            other => {
                self.at = span(b.pipe.pos, b.pipe.end);
                return Err(self.error(format!("range can't iterate over {}", other.go_v())));
            }
        };
        let mut r = Ok(Flow::Normal);
        if items.is_empty()
            && let Some(e) = &b.else_list
        {
            r = self.walk(dot, e);
        }
        for (index, elem) in items {
            match b.pipe.decl.len() {
                0 => {}
                1 => self.set_or_top(&b.pipe, 0, elem.clone(), 1),
                _ => {
                    self.set_or_top(&b.pipe, 1, elem.clone(), 1);
                    self.set_or_top(&b.pipe, 0, index, 2);
                }
            }
            let inner = self.vars.len();
            let f = self.walk(&elem, &b.list);
            self.vars.truncate(inner);
            match f {
                Ok(Flow::Break) => break,
                Ok(_) => {}
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        self.vars.truncate(mark);
        r.map(|_| Flow::Normal)
    }

    /// Sets range variable `which` of the pipeline: by assignment, or the `top`-th newest.
    fn set_or_top(&mut self, pipe: &Pipe, which: usize, v: Value, top: usize) {
        if pipe.is_assign {
            self.set_var(&pipe.decl[which], v);
        } else if let Some(n) = self.vars.len().checked_sub(top) {
            self.vars[n].1 = v;
        }
    }

    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn var(&self, name: &str) -> R<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.error(format!("undefined variable: {name}")))
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut v: Option<Value> = None;
        for cmd in &pipe.cmds {
            v = Some(self.command(dot, cmd, v)?);
        }
        let v = v.unwrap_or_default();
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone());
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, cmd: &Cmd, final_: &Option<Value>, what: &str) -> R<()> {
        if cmd.args.len() > 1 || final_.is_some() {
            return Err(self.error(format!("can't give argument to non-function {what}")));
        }
        Ok(())
    }

    fn command(&mut self, dot: &Value, cmd: &Cmd, final_: Option<Value>) -> R<Value> {
        self.at = cmd.spans.first().copied().unwrap_or(span(cmd.pos, cmd.end));
        let rest = &cmd.args[1..];
        match &cmd.args[0] {
            Arg::Field(idents) => self.field_chain(dot, dot.clone(), idents, rest, final_),
            Arg::Chain(node, idents) => {
                let recv = self.arg_value(dot, node)?;
                self.field_chain(dot, recv, idents, rest, final_)
            }
            Arg::Var(name, idents) => {
                let v = self.var(name)?;
                if idents.is_empty() {
                    self.not_a_function(cmd, &final_, name)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, idents, rest, final_)
            }
            Arg::Ident(name) => self.function(dot, cmd, name, rest, final_),
            Arg::Pipe(p) => {
                self.not_a_function(cmd, &final_, "pipeline")?;
                self.pipeline(dot, p)
            }
            Arg::Nil => Err(self.error("nil is not a command")),
            lit => {
                self.not_a_function(cmd, &final_, &literal_text(lit))?;
                Ok(match lit {
                    Arg::Dot => dot.clone(),
                    Arg::Bool(b) => Value::Bool(*b),
                    Arg::Str(s) => Value::from(s.as_str()),
                    Arg::Number(n) => ideal(n),
                    _ => Value::Nil,
                })
            }
        }
    }

    /// The value of an operand used as an argument or a chain's receiver.
    fn arg_value(&mut self, dot: &Value, arg: &Arg) -> R<Value> {
        match arg {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Str(s) => Ok(Value::from(s.as_str())),
            Arg::Number(n) => Ok(ideal(n)),
            Arg::Field(idents) => self.field_chain(dot, dot.clone(), idents, &[], None),
            Arg::Var(name, idents) => {
                let v = self.var(name)?;
                if idents.is_empty() {
                    Ok(v)
                } else {
                    self.field_chain(dot, v, idents, &[], None)
                }
            }
            Arg::Chain(node, idents) => {
                let recv = self.arg_value(dot, node)?;
                self.field_chain(dot, recv, idents, &[], None)
            }
            Arg::Pipe(p) => self.pipeline(dot, p),
            Arg::Ident(name) => {
                let cmd = Cmd {
                    pos: self.at.start,
                    end: self.at.end,
                    args: vec![arg.clone()],
                    spans: vec![self.at],
                };
                self.function(dot, &cmd, name, &[], None)
            }
        }
    }

    fn field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        idents: &[String],
        args: &[Arg],
        final_: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == n;
            let has_args = last && (!args.is_empty() || final_.is_some());
            if has_args && let Value::Object(o) = &recv {
                // A method call with arguments: `.Labels.Remove .GroupLabels.Names`.
                let mut vals = Vec::with_capacity(args.len() + 1);
                for a in args {
                    vals.push(self.arg_value(dot, a)?);
                }
                vals.extend(final_.clone());
                return match o.method(name, vals) {
                    Some(r) => r.map_err(|e| self.error(format!("error calling {name}: {e}"))),
                    None => Err(self.error(format!(
                        "can't evaluate field {name} in type {}",
                        o.type_name()
                    ))),
                };
            }
            recv = self.field(dot, name, recv, has_args)?;
        }
        Ok(recv)
    }

    fn field(&mut self, _dot: &Value, name: &str, recv: Value, has_args: bool) -> R<Value> {
        match &recv {
            Value::Nil => Ok(Value::Nil),
            Value::Object(o) => o.field(name).ok_or_else(|| {
                self.error(format!(
                    "can't evaluate field {name} in type {}",
                    o.type_name()
                ))
            }),
            Value::Map(m, elem) => {
                if has_args {
                    return Err(self.error(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).cloned().unwrap_or(match elem {
                    Elem::Str => Value::from(""),
                    Elem::Any => Value::Nil,
                }))
            }
            Value::Struct(s) => match s.fields.iter().find(|(f, _)| *f == name) {
                Some((_, v)) => {
                    if has_args {
                        return Err(self.error(format!(
                            "{name} has arguments but cannot be invoked as function"
                        )));
                    }
                    Ok(v.clone())
                }
                None => Err(self.error(format!(
                    "can't evaluate field {name} in type {}",
                    recv.type_name()
                ))),
            },
            other => Err(self.error(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            ))),
        }
    }

    fn function(
        &mut self,
        dot: &Value,
        cmd: &Cmd,
        name: &str,
        args: &[Arg],
        final_: Option<Value>,
    ) -> R<Value> {
        if name == "and" || name == "or" {
            let mut v = Value::Nil;
            for a in args {
                v = self.arg_value(dot, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let params = builtins::params(name)
            .or_else(|| self.funcs.params(name))
            .ok_or_else(|| self.error(format!("{name:?} is not a defined function")))?;
        let got = args.len() + usize::from(final_.is_some());
        let want = params.fixed.len();
        if params.variadic.is_some() {
            if got < want {
                self.at = span(cmd.pos, cmd.end);
                return Err(self.error(format!(
                    "wrong number of args for {name}: want at least {want} got {got}"
                )));
            }
        } else if got != want {
            self.at = span(cmd.pos, cmd.end);
            return Err(self.error(format!(
                "wrong number of args for {name}: want {want} got {got}"
            )));
        }
        let param_at = |i: usize| -> Param {
            params
                .fixed
                .get(i)
                .copied()
                .or(params.variadic)
                .unwrap_or(Param::Any)
        };
        let mut vals = Vec::with_capacity(got);
        for (i, a) in args.iter().enumerate() {
            // Go points errors in an argument at the argument.
            self.at = cmd
                .spans
                .get(i + 1)
                .copied()
                .unwrap_or(span(cmd.pos, cmd.end));
            let v = self.typed_arg(dot, param_at(i), a)?;
            vals.push(v);
        }
        if let Some(f) = final_ {
            self.at = span(cmd.pos, cmd.end);
            let v = self.validate(param_at(got - 1), f)?;
            vals.push(v);
        }
        self.at = span(cmd.pos, cmd.end);
        let r = if name == "tmpl" {
            self.call_tmpl(vals)
        } else if builtins::params(name).is_some() {
            builtins::call(name, vals)
        } else {
            self.funcs.call(name, vals)
        };
        r.map_err(|e| self.error(format!("error calling {name}: {e}")))
    }

    /// `tmpl NAME DATA`: the output of another template of the set, as HTML.
    fn call_tmpl(&mut self, vals: Vec<Value>) -> Result<Value, String> {
        let name = vals
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let data = vals.get(1).cloned().unwrap_or_default();
        if self.depth >= MAX_DEPTH {
            return Err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
        }
        match self.run_nested(&name, &data, String::new()) {
            Some((out, Ok(_))) => Ok(Value::Html(Arc::from(out))),
            Some((_, Err(e))) => Err(e.0),
            None => Err(format!(
                "template: no template {name:?} associated with template {:?}",
                self.name
            )),
        }
    }

    fn typed_arg(&mut self, dot: &Value, p: Param, a: &Arg) -> R<Value> {
        match (a, p) {
            (Arg::Number(n), Param::Str) => {
                Err(self.error(format!("expected string; found {}", n.text)))
            }
            (Arg::Number(n), Param::Float) => n
                .float
                .map(Value::Float)
                .ok_or_else(|| self.error(format!("expected float; found {}", n.text))),
            (Arg::Number(n), Param::Int) => n
                .int
                .map(Value::Int)
                .ok_or_else(|| self.error(format!("expected integer; found {}", n.text))),
            (Arg::Bool(b), Param::Str | Param::Float | Param::Int) => {
                Err(self.error(format!("expected {}; found {b}", p.go_name())))
            }
            (Arg::Str(s), Param::Float | Param::Int) => {
                Err(self.error(format!("expected {}; found {s:?}", p.go_name())))
            }
            (Arg::Nil, Param::Str | Param::Float | Param::Int | Param::Bool) => {
                Err(self.error(format!("cannot assign nil to {}", p.go_name())))
            }
            _ => {
                let v = self.arg_value(dot, a)?;
                self.validate(p, v)
            }
        }
    }

    fn validate(&self, p: Param, v: Value) -> R<Value> {
        let ok = matches!(
            (p, &v),
            (Param::Any, _)
                | (Param::Str, Value::Str(_))
                | (Param::Float, Value::Float(_))
                | (Param::Int, Value::Int(_))
                | (Param::Bool, Value::Bool(_))
        );
        if ok {
            Ok(v)
        } else if v == Value::Nil {
            Err(self.error(format!("invalid value; expected {}", p.go_name())))
        } else {
            Err(self.error(format!(
                "wrong type for value; expected {}; got {}",
                p.go_name(),
                v.type_name()
            )))
        }
    }
}

fn span(start: Pos, end: Pos) -> Span {
    Span {
        pos: start,
        start,
        end,
    }
}

/// A numeric constant's value as an untyped Go constant: an int unless it is written as a
/// float.
fn ideal(n: &Number) -> Value {
    match (n.is_float_const, n.int, n.float) {
        (false, Some(i), _) => Value::Int(i),
        (_, _, Some(f)) => Value::Float(f),
        (_, Some(i), None) => Value::Int(i),
        _ => Value::Nil,
    }
}

fn literal_text(a: &Arg) -> String {
    match a {
        Arg::Dot => ".".into(),
        Arg::Bool(b) => b.to_string(),
        Arg::Str(s) => format!("{s:?}"),
        Arg::Number(n) => n.text.clone(),
        _ => String::new(),
    }
}
