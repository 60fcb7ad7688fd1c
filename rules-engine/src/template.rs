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
mod parse;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use builtins::{html_escape, query_escape};
pub use exec::ExecError;
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

/// A set of named templates: what one or more texts define.
#[derive(Default)]
pub struct Template {
    trees: HashMap<String, Tree>,
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
                Tree {
                    nodes,
                    src: src.clone(),
                    parse_name: parse_name.clone(),
                },
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

    /// Executes template `name` with `data` as dot.
    pub fn execute(
        &self,
        name: &str,
        data: &Value,
        funcs: &dyn Funcs,
    ) -> Result<String, ExecError> {
        exec::execute(self, name, data, funcs, false)
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
        exec::execute(self, name, data, funcs, true)
    }
}

#[cfg(test)]
mod tests;
