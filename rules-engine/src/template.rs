//! Go's `text/template`, the language of Prometheus alert templates and Alertmanager
//! notification templates, implemented here rather than taken from a crate. The one Rust port
//! there is (`gtmpl` 0.7) differs from Go where templates show it: it ranges over maps in hash
//! order (Go sorts keys), prints floats with Rust's formatting (Go prints `1e+06`), treats
//! `10` and `10.0` alike (Go's `gt $value 10` is an error, which rule authors meet), takes
//! functions as plain pointers (so `query` could reach the engine only through a global), and
//! words errors differently (they show up verbatim in annotations). The parts:
//! [`parse`] (lexer and parser), [`exec`] (the executor), [`value`] (values with Go's printing
//! and truthiness), [`gofmt`] (`Sprintf` and friends) and [`builtins`] (Go's predefined
//! functions). Callers add their own functions through [`Funcs`].

mod builtins;
mod exec;
pub mod gofmt;
mod htmlctx;
mod parse;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use builtins::{html_escape, query_escape};
pub use exec::{Escaping, ExecError};
pub use parse::ParseError;
pub use value::{Elem, Object, Struct, Value, go_time_string};

/// The Go type of a function parameter, which decides how constants convert and which values
/// are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// `interface{}`: anything; numeric constants become int or float64 as written.
    Any,
    Str,
    Float,
    Int,
    Bool,
}

impl Param {
    fn go_name(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::Float => "float64",
            Param::Int => "int",
            Param::Bool => "bool",
        }
    }
}

/// A function's parameters: fixed ones, then optionally any number of one more type.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub fixed: &'static [Param],
    pub variadic: Option<Param>,
}

impl Params {
    pub const fn fixed(fixed: &'static [Param]) -> Self {
        Params {
            fixed,
            variadic: None,
        }
    }

    pub const fn variadic(fixed: &'static [Param], rest: Param) -> Self {
        Params {
            fixed,
            variadic: Some(rest),
        }
    }
}

/// The functions a template may call besides Go's predefined ones. A function named `tmpl`,
/// when declared, is executed by the engine itself: it renders another template of the set.
pub trait Funcs {
    /// The parameters of `name`, or `None` when no such function exists (a parse error).
    fn params(&self, name: &str) -> Option<Params>;
    /// Calls `name` with arguments already checked against [`Funcs::params`]; an error is
    /// reported as `error calling NAME: ...`.
    fn call(&self, name: &str, args: Vec<Value>) -> Result<Value, String>;
}

/// A function set with nothing beyond Go's predefined functions.
pub struct NoFuncs;

impl Funcs for NoFuncs {
    fn params(&self, _: &str) -> Option<Params> {
        None
    }
    fn call(&self, name: &str, _: Vec<Value>) -> Result<Value, String> {
        Err(format!("{name:?} is not a defined function"))
    }
}

struct Tree {
    nodes: Vec<parse::Node>,
    src: Arc<str>,
    parse_name: Arc<str>,
}

/// A set of named templates: what one or more texts define. Cloning is cheap (the parsed
/// trees are shared), so a caller can add a text to a copy of a loaded set per execution, as
/// Alertmanager does with `Clone` + `Parse`.
#[derive(Clone, Default)]
pub struct Template {
    trees: HashMap<String, Arc<Tree>>,
}

/// A `{{template "NAME"}}` call naming a template the set does not define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingTemplate {
    /// The name of the text the call is in, as given to [`Template::parse`].
    pub parse_name: String,
    /// The call's line in that text, from 1.
    pub line: usize,
    /// The template it calls.
    pub called: String,
}

impl Template {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `text` as template `name`, adding it and everything it `define`s to the set.
    pub fn parse(&mut self, name: &str, text: &str, funcs: &dyn Funcs) -> Result<(), ParseError> {
        let trees = parse::parse(name, text, funcs)?;
        let src: Arc<str> = Arc::from(text);
        let parse_name: Arc<str> = Arc::from(name);
        for (n, nodes) in trees {
            self.trees.insert(
                n,
                Arc::new(Tree {
                    nodes,
                    src: src.clone(),
                    parse_name: parse_name.clone(),
                }),
            );
        }
        Ok(())
    }

    /// Parses one text as a template set of its own.
    pub fn from_text(name: &str, text: &str, funcs: &dyn Funcs) -> Result<Self, ParseError> {
        let mut t = Template::new();
        t.parse(name, text, funcs)?;
        Ok(t)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// The names of the templates in the set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.trees.keys().map(String::as_str)
    }

    /// Every `{{template}}` call in the set naming a template it does not define (Go finds
    /// these only when executing; configuration checks want them earlier).
    pub fn missing_templates(&self) -> Vec<MissingTemplate> {
        let mut out = Vec::new();
        for tree in self.trees.values() {
            let mut calls = Vec::new();
            parse::template_calls(&tree.nodes, &mut calls);
            for (pos, called) in calls {
                if !self.trees.contains_key(called) {
                    let before = &tree.src[..pos.min(tree.src.len())];
                    out.push(MissingTemplate {
                        parse_name: tree.parse_name.to_string(),
                        line: 1 + before.matches('\n').count(),
                        called: called.to_string(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.parse_name, a.line).cmp(&(&b.parse_name, b.line)));
        out
    }

    /// Executes template `name` with `data` as dot.
    pub fn execute(
        &self,
        name: &str,
        data: &Value,
        funcs: &dyn Funcs,
    ) -> Result<String, ExecError> {
        exec::execute(self, name, data, funcs, Escaping::Text)
    }

    /// As [`Template::execute`], HTML-escaping every printed value that is not already
    /// `template.HTML` (what `safeHtml` returns), as `html/template` escapes text: for the
    /// HTML bodies of notifications.
    pub fn execute_html(
        &self,
        name: &str,
        data: &Value,
        funcs: &dyn Funcs,
    ) -> Result<String, ExecError> {
        exec::execute(self, name, data, funcs, Escaping::Html)
    }

    /// Executes template `name` with printed values escaped as `escaping` says:
    /// [`Escaping::HtmlAttrs`] is what Alertmanager's HTML email bodies need.
    pub fn execute_escaped(
        &self,
        name: &str,
        data: &Value,
        funcs: &dyn Funcs,
        escaping: Escaping,
    ) -> Result<String, ExecError> {
        exec::execute(self, name, data, funcs, escaping)
    }
}

#[cfg(test)]
mod tests;
